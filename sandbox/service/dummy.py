"""Dummy runs: the same query on a synthetic stand-in built from the policy alone.

PRIVACY: the stand-in is generated only from a dataset's *public schema* — column types,
declared bounds and public values, the contribution limits — and a seed derived from the
dataset's name. It never reads the private data (not even its row count), so a dummy
run costs no budget. Everything it returns is marked ``"dummy": true`` and its audit
entry is ``query.dummy``. Researchers use it to debug SQL before spending budget, as
OpenSAFELY's dummy data and PySyft's mock data allow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

import numpy as np
import pyarrow as pa

import privacy
from audit_log.actions import Action
from sandbox.engine.embedded import with_rowid
from sandbox.errors import BadRequest
from sandbox.governance.policy import ColumnPolicy, DatasetPolicy
from sandbox.service import pipeline
from sandbox.service.accuracy import ACCURACY_NOTE, accuracy
from sandbox.service.pipeline import QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store.users import User
from sandbox.store.workspace import transaction

#: persons in every stand-in (a constant: the real size is not public).
DUMMY_UNITS = 1_000
NOTE = ("dummy run: synthetic data generated from the policy's public schema only; the "
        "figures mean nothing and no budget was spent")


def _seed(policy: DatasetPolicy) -> int:
    return int.from_bytes(hashlib.sha256(f"dummy:{policy.name}".encode()).digest()[:8], "big")


def _numbers(col: ColumnPolicy, n: int, rng: np.random.Generator) -> pa.Array:
    bounds = col.numeric_bounds() or ((0.0, 100.0) if col.type == "int" else (0.0, 1000.0))
    lo, hi = bounds
    if col.type == "int":
        return pa.array(rng.integers(int(lo), int(hi) + 1, size=n), type=pa.int64())
    return pa.array(rng.uniform(lo, hi, size=n), type=pa.float64())


def _column(col: ColumnPolicy, n: int, units: np.ndarray, unit_name: str,
            rng: np.random.Generator) -> pa.Array:
    if col.name == unit_name:
        if col.type == "text":
            return pa.array([f"unit-{u:06d}" for u in units], type=pa.string())
        return pa.array(units, type=pa.int64())
    if col.public_values:
        picks = rng.integers(0, len(col.public_values), size=n)
        values = [col.public_values[i] for i in picks]
        if col.type == "date":
            values = [v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in values]
        return pa.array(values, type=_ARROW[col.type])
    if col.type in ("int", "float"):
        return _numbers(col, n, rng)
    if col.type == "date":
        lo, hi = (dt.date(2020, 1, 1), dt.date(2024, 12, 31)) if col.bounds is None else col.bounds
        days = rng.integers(0, (hi - lo).days + 1, size=n)
        return pa.array([lo + dt.timedelta(days=int(d)) for d in days], type=pa.date32())
    if col.type == "bool":
        return pa.array(rng.integers(0, 2, size=n).astype(bool), type=pa.bool_())
    if col.sensitivity == "identifier":
        return pa.array([f"dummy-{i:06d}" for i in range(n)], type=pa.string())
    return pa.array([f"dummy_{k}" for k in rng.integers(1, 21, size=n)], type=pa.string())


_ARROW = {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "date": pa.date32(),
          "bool": pa.bool_()}


def dummy_table(policy: DatasetPolicy, *, units: int = DUMMY_UNITS) -> pa.Table:
    """A stand-in with the policy's columns and types, values inside the declared bounds
    and public values, and each person on up to L0 × L∞ rows (one if one-row-per-person)."""
    rng = np.random.default_rng(_seed(policy))
    if policy.one_row_per_unit:
        unit_ids = np.arange(1, units + 1)
    else:
        most = max(1, min(20, policy.max_partitions * policy.max_rows_per_partition))
        per_unit = rng.integers(1, most + 1, size=units)
        unit_ids = np.repeat(np.arange(1, units + 1), per_unit)
    n = len(unit_ids)
    columns = {c.name: _column(c, n, unit_ids, policy.privacy_unit, rng) for c in policy.columns.values()}
    return with_rowid(pa.table(columns))


def run_dummy(sb: Sandbox, user: User, req: QueryRequest) -> dict[str, Any]:
    """Plan the query as for real, run it on stand-ins, add noise as for real; charge nothing."""
    p = pipeline.plan(sb, pipeline.check(sb, user, req))  # the real query's stages; refusals logged
    approval, versions, plan = p.approval, p.used, p.plan
    tables = {v.name: dummy_table(v.policy) for v in versions}  # PRIVACY: never sb.tables
    exact = sb.engine.execute(plan.engine_sql("duckdb"), tables).to_pydict()
    try:
        rel = pipeline.release(p, exact)
    except privacy.PrivacyError as err:
        raise BadRequest(err.message, code=err.code) from None
    shown = pipeline.post_process(plan, rel)
    query_id = "d_" + secrets.token_hex(8)
    conn = sb.conn()
    with transaction(conn):
        entry = sb.audit(conn, user, Action.QUERY_DUMMY, f"query/{query_id}", {
            "query_id": query_id, "approval_id": approval.id, "sql": p.sql,
            "fingerprint": plan.fingerprint, "dummy": True, "epsilon": 0.0, "delta": 0.0,
            "datasets": {v.name: {"version": v.version, "stand_in": "policy schema"} for v in versions},
        })
    return {
        "dummy": True,
        "query_id": query_id,
        "columns": shown.columns,
        "rows": shown.rows,
        # the same shape as a real release's (intervals, public range, not_informative)
        "accuracy": accuracy(rel.confidence, rel.methods, rel.ranges, shown.columns, shown.intervals),
        "accuracy_note": ACCURACY_NOTE,
        "epsilon_spent": 0.0,
        "delta_spent": 0.0,
        "would_cost": {"epsilon": rel.epsilon, "delta": rel.delta, "rho": rel.rho},
        "receipt": {"query_id": query_id, "log_index": entry.seq, "dummy": True},
        "cached": False,
        "notes": [NOTE, *plan.notes, *shown.notes],
    }


__all__ = ["DUMMY_UNITS", "dummy_table", "run_dummy"]
