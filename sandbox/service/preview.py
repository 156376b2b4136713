"""Preview a query: its cost and each output column's expected accuracy, free.

Nothing runs and nothing is charged: the answer depends only on the checked plan, the
approval and the requested ε or target accuracy (``privacy.preview``), never on data.
The approval, the request's ranges (``sandbox.store.request_limits``), the guard and the
calibration are the real query's own stages (``pipeline.check`` and ``pipeline.plan``): a
refusal is logged as one, so previews cannot probe the scope for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import privacy
from sandbox.errors import BadRequest
from sandbox.governance import ledger
from sandbox.governance.workflow import Approval
from sandbox.service import pipeline
from sandbox.service.jsonable import finite_or_none
from sandbox.service.pipeline import DEFAULT_CONFIDENCE, QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store import request_limits
from sandbox.store.users import User


@dataclass
class AccuracyTarget:
    """"±half_width at confidence" for one output column. The numbers are the request's raw
    JSON values: :func:`preview_query` checks them (``sandbox.store.request_limits``)."""

    column: str
    half_width: Any
    confidence: Any = DEFAULT_CONFIDENCE


@dataclass
class PreviewRequest:
    """A preview: the fields of ``QueryRequest`` plus a target accuracy and the researcher's
    guess of a group's size. Numbers are raw JSON values, checked by :func:`preview_query`."""

    approval_id: Any
    sql: Any
    epsilon: Any = None
    confidence: Any = DEFAULT_CONFIDENCE
    accuracy: AccuracyTarget | None = None
    expected_rows: Any = None


def query_delta(approval: Approval) -> float:
    """The δ one query of this approval may use (``privacy.per_query_delta``)."""
    return privacy.per_query_delta(approval.delta_total, pure=approval.pure_dp)


def preview_query(sb: Sandbox, user: User, req: PreviewRequest) -> dict[str, Any]:
    """Cost, expected accuracy per output column, and whether the budget affords it."""
    clean: dict[str, Any] = {}
    query = QueryRequest(req.approval_id, req.sql, req.epsilon, req.confidence)
    p = pipeline.plan(sb, pipeline.check(sb, user, query))  # the real query's stages
    with pipeline.refusals_logged(sb, user, query, p.approval.id):  # the preview's own, logged alike
        clean["expected_rows"] = request_limits.expected_rows(req.expected_rows)
        if req.accuracy is not None:
            clean["half_width"] = request_limits.half_width(req.accuracy.half_width)
            clean["confidence"] = request_limits.confidence(req.accuracy.confidence)
    approval, plan, rows = p.approval, p.plan, clean["expected_rows"]
    epsilon, confidence = p.epsilon, p.confidence
    notes: list[str] = []
    try:
        if req.accuracy is not None:
            confidence = clean["confidence"]
            epsilon = privacy.epsilon_for_accuracy(plan, req.accuracy.column, clean["half_width"],
                                                   confidence, delta=p.delta, pure=p.pure,
                                                   expected_rows=rows)
            if epsilon < request_limits.EPSILON_MIN:
                notes.append(f"the target needs only ε = {epsilon:.3g}; a query uses at least "
                             f"ε = {request_limits.EPSILON_MIN:g}, so that is previewed")
                epsilon = request_limits.EPSILON_MIN
        pv = privacy.preview(plan, epsilon=epsilon, delta=p.delta, confidence=confidence,
                             pure=p.pure, expected_rows=rows)
    except privacy.PrivacyError as err:
        raise BadRequest(err.message, code=err.code) from None
    budget = ledger.budget(sb.conn(), approval.id)
    within_cap = epsilon <= approval.epsilon_per_query + ledger.TOLERANCE
    affordable = within_cap and privacy.fits(budget.totals, pv.charge, budget.epsilon_total,
                                             budget.delta_total, pure=budget.pure_dp, route=budget.route)
    body = pv.as_dict()
    columns: dict[str, dict[str, Any]] = body["columns"]  # type: ignore[assignment]
    for col in columns.values():
        col["half_width"] = finite_or_none(col["half_width"])
    return {
        "preview": True,
        "epsilon": epsilon,
        **body,
        "within_per_query_cap": within_cap,
        "affordable": affordable,
        "budget": budget.as_dict(),
        "notes": list(plan.notes) + notes + ([] if within_cap else [
            f"the target needs ε = {epsilon:g}, above this approval's per-query cap "
            f"{approval.epsilon_per_query:g}"]),
    }
