"""A free dummy run before any approval, from the public schema (issue 14; 第十五条).

A researcher deciding what to apply for can try SQL on the synthetic stand-in of any dataset in
the open list (:func:`sandbox.service.dummy.dummy_table`: built from the policy's public schema only,
never the data) under the widest scenario an approval could grant — every column that may be
queried, every aggregate — with the same guard, the same calibration and the same noise as a
real release. It costs nothing, reads nothing private and is logged as ``query.dummy`` with
``"public_schema": true``. Every answer is marked ``"dummy": true``.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any, Final

import privacy
import query_guard
from audit_log.actions import Action
from query_guard import GuardError, Scenario
from sandbox.errors import BadRequest, Unauthorized
from sandbox.governance import datasets
from sandbox.service import pipeline
from sandbox.service.accuracy import ACCURACY_NOTE, accuracy
from sandbox.service.dummy import NOTE, dummy_table
from sandbox.service.pipeline import QueryRefused
from sandbox.store import fields, request_limits
from sandbox.store.users import User
from sandbox.store.workspace import transaction

if TYPE_CHECKING:
    from sandbox.service.query_service import Sandbox

EPSILON: Final = 1.0
DELTA: Final = 1e-6


def run(sb: Sandbox, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/queries/dummy-public`` ``{"datasets", "sql", "epsilon"?}`` (signed in)."""

    if user is None:
        raise Unauthorized("this needs a login; send the header Authorization: Bearer <token>")
    names = fields.names(body.get("datasets"), "datasets")
    conn = sb.conn()
    public = {v.name: v for v in datasets.latest_versions(conn) if v.tier in ("conditional", "unconditional")}
    for name in names:
        if name not in public:  # SECURITY: not-open, unpublished and missing read the same
            raise BadRequest(f"no dataset named {name!r} in the catalog", code="unknown_dataset")
    versions = [public[n] for n in names]
    sql = request_limits.sql_text(body.get("sql"))
    epsilon = body.get("epsilon", EPSILON)
    if isinstance(epsilon, bool) or not isinstance(epsilon, int | float) or not 0.01 <= epsilon <= 10:
        raise BadRequest("epsilon must be a number from 0.01 to 10", code="bad_epsilon")
    scenario = Scenario(datasets=frozenset(names))  # the widest scope an approval could give
    try:
        plan = query_guard.plan(sql, scenario, datasets.build_catalog(versions))
    except GuardError as err:
        raise QueryRefused(err) from None
    used = [v for v in versions if v.name in plan.datasets]
    try:
        noise = privacy.calibrate(plan, float(epsilon), DELTA, pure=False)
        privacy.check_plan(plan)
        tables = {v.name: dummy_table(v.policy) for v in used}  # PRIVACY: never sb.tables
        exact = sb.engine.execute(plan.engine_sql("duckdb"), tables).to_pydict()
        rel = privacy.release(plan, exact, epsilon=float(epsilon), delta=DELTA, confidence=0.95, pure=False,
                              noise=noise)
    except privacy.PrivacyError as err:
        raise BadRequest(err.message, code=err.code) from None
    shown = pipeline.post_process(plan, rel)
    query_id = "d_" + secrets.token_hex(8)
    with transaction(conn):
        entry = sb.audit(conn, user, Action.QUERY_DUMMY, f"query/{query_id}", {
            "query_id": query_id, "approval_id": None, "public_schema": True, "sql": sql,
            "fingerprint": plan.fingerprint, "dummy": True, "epsilon": 0.0, "delta": 0.0,
            "datasets": {v.name: {"version": v.version, "stand_in": "policy schema"} for v in used}})
    return {
        "dummy": True, "public_schema": True, "query_id": query_id, "columns": shown.columns,
        "rows": shown.rows,
        "accuracy": accuracy(rel.confidence, rel.methods, rel.ranges, shown.columns, shown.intervals),
        "accuracy_note": ACCURACY_NOTE, "epsilon_spent": 0.0, "delta_spent": 0.0,
        "would_cost": {"epsilon": rel.epsilon, "delta": rel.delta, "rho": rel.rho},
        "receipt": {"query_id": query_id, "log_index": entry.seq, "dummy": True},
        "notes": [NOTE, "no approval yet: the widest scope an approval could grant was assumed", *plan.notes,
                  *shown.notes],
    }
