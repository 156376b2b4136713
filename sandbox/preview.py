"""Preview a query: its cost and each output column's expected accuracy, free.

Nothing runs and nothing is charged: the answer depends only on the checked plan, the
approval and the requested ε or target accuracy (``privacy.preview``), never on data.
The approval and the guard are checked exactly as for a real query (a guard refusal is
logged as one, so previews cannot probe the scope for free).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import privacy
import query_guard
from query_guard import GuardError, QueryPlan
from sandbox import datasets, ledger
from sandbox.datasets import DatasetVersion
from sandbox.errors import BadRequest
from sandbox.service import DEFAULT_CONFIDENCE, QueryRefused, QueryRequest, Sandbox
from sandbox.users import User
from sandbox.workflow import Approval


@dataclass
class AccuracyTarget:
    """"±half_width at confidence" for one output column."""

    column: str
    half_width: float
    confidence: float = DEFAULT_CONFIDENCE


@dataclass
class PreviewRequest:
    approval_id: Any
    sql: str
    epsilon: float | None = None
    confidence: float = DEFAULT_CONFIDENCE
    accuracy: AccuracyTarget | None = None
    expected_rows: int | None = None


def checked_plan(sb: Sandbox, user: User, approval_id: Any, sql: Any
                 ) -> tuple[Approval, list[DatasetVersion], QueryPlan]:
    """The steps of ``Sandbox.run_query`` up to the plan: approval, scope, guard."""
    conn = sb.conn()
    if not isinstance(sql, str) or not sql.strip():
        raise BadRequest("sql must be a non-empty string", code="missing_sql")
    req = QueryRequest(approval_id, sql)
    approval = sb._approval_or_log(conn, user, req)
    versions = [v for v in datasets.latest_versions(conn) if v.name in approval.scenario.datasets]
    try:
        plan = query_guard.plan(sql, approval.scenario, datasets.build_catalog(versions))
    except GuardError as err:
        sb._log_refusal(conn, user, req, approval.id, err.code, err.message, err.position)
        raise QueryRefused(err) from None
    return approval, [v for v in versions if v.name in plan.datasets], plan


def query_delta(approval: Approval) -> float:
    """The δ one query of this approval may use (``privacy.per_query_delta``)."""
    return privacy.per_query_delta(approval.delta_total, pure=ledger.is_pure(approval))


def requested_epsilon(approval: Approval, requested: Any) -> float:
    """ε as ``Sandbox.run_query`` reads it: default min(cap, 1); must be in (0, cap]."""
    if requested is None:
        return min(approval.epsilon_per_query, 1.0)
    if isinstance(requested, bool) or not isinstance(requested, int | float) or not math.isfinite(requested):
        raise BadRequest("epsilon must be a positive number", code="bad_epsilon")
    if not 0 < requested <= approval.epsilon_per_query + ledger.TOLERANCE:
        raise BadRequest(f"epsilon must be above 0 and at most this approval's per-query cap "
                         f"{approval.epsilon_per_query:g}", code="bad_epsilon")
    return float(requested)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def preview_query(sb: Sandbox, user: User, req: PreviewRequest) -> dict[str, Any]:
    """Cost, expected accuracy per output column, and whether the budget affords it."""
    approval, _versions, plan = checked_plan(sb, user, req.approval_id, req.sql)
    if not 0.5 <= req.confidence < 1:
        raise BadRequest("confidence must be at least 0.5 and below 1")
    pure = ledger.is_pure(approval)
    delta = query_delta(approval)
    confidence = req.confidence
    try:
        if req.accuracy is not None:
            t = req.accuracy
            epsilon = privacy.epsilon_for_accuracy(plan, t.column, t.half_width, t.confidence,
                                                   delta=delta, pure=pure,
                                                   expected_rows=req.expected_rows)
            confidence = t.confidence
        else:
            epsilon = requested_epsilon(approval, req.epsilon)
        p = privacy.preview(plan, epsilon=epsilon, delta=delta, confidence=confidence, pure=pure,
                            expected_rows=req.expected_rows)
    except privacy.PrivacyError as err:
        raise BadRequest(err.message, code=err.code) from None
    budget = ledger.budget(sb.conn(), approval.id)
    within_cap = epsilon <= approval.epsilon_per_query + ledger.TOLERANCE
    affordable = within_cap and privacy.fits(budget.totals, p.charge, budget.epsilon_total,
                                             budget.delta_total, pure=budget.pure_dp)
    body = p.as_dict()
    columns: dict[str, dict[str, Any]] = body["columns"]  # type: ignore[assignment]
    for col in columns.values():
        col["half_width"] = _num(col["half_width"])
    return {
        "preview": True,
        "epsilon": epsilon,
        **body,
        "within_per_query_cap": within_cap,
        "affordable": affordable,
        "budget": budget.as_dict(),
        "notes": list(plan.notes) + ([] if within_cap else [
            f"the target needs ε = {epsilon:g}, above this approval's per-query cap "
            f"{approval.epsilon_per_query:g}"]),
    }
