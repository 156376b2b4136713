"""JSON API for spending nothing: ``POST /api/v1/queries/preview`` and ``/queries/dummy``.

Same body as ``POST /api/v1/queries`` (``approval_id``, ``sql``, ``epsilon``?,
``confidence``?), plus for the preview an optional ``"accuracy": {"column",
"half_width", "confidence"?}`` (the smallest ε reaching it is used) and
``"expected_rows"`` (the researcher's own guess of a group's size, for averages).
Views parse and delegate; no logic.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from sandbox.dummy import run_dummy
from sandbox.errors import BadRequest
from sandbox.preview import AccuracyTarget, PreviewRequest, preview_query
from sandbox.service import DEFAULT_CONFIDENCE, QueryRequest
from sandbox.web.api import current_user, json_body, sandbox

bp = Blueprint("api_preview", __name__, url_prefix="/api/v1")


@bp.before_request
def authenticate() -> None:
    g.user = current_user()


def _number(body: dict[str, Any], name: str, default: float | None) -> float | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name} must be a number", code=f"bad_{name}")
    return float(value)


def _query_fields(body: dict[str, Any]) -> tuple[Any, str, Any, float]:
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise BadRequest("field 'sql' is required and must be a string", code="missing_sql")
    if "approval_id" not in body:
        raise BadRequest("field 'approval_id' is required", code="missing_approval")
    confidence = _number(body, "confidence", DEFAULT_CONFIDENCE)
    return body["approval_id"], sql, body.get("epsilon"), float(confidence or DEFAULT_CONFIDENCE)


def _target(body: dict[str, Any]) -> AccuracyTarget | None:
    raw = body.get("accuracy")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("column"), str):
        raise BadRequest('accuracy must be {"column": name, "half_width": number, '
                         '"confidence"?: number}', code="bad_accuracy")
    half_width = _number(raw, "half_width", None)
    if half_width is None:
        raise BadRequest("accuracy.half_width is required", code="bad_accuracy")
    confidence = _number(raw, "confidence", DEFAULT_CONFIDENCE)
    return AccuracyTarget(raw["column"], half_width, float(confidence or DEFAULT_CONFIDENCE))


@bp.post("/queries/preview")
def post_preview():
    body = json_body()
    approval_id, sql, epsilon, confidence = _query_fields(body)
    rows = body.get("expected_rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise BadRequest("expected_rows must be a positive integer", code="bad_expected_rows")
    req = PreviewRequest(approval_id, sql, epsilon, confidence, _target(body), rows)
    return jsonify(preview_query(sandbox(), g.user, req))


@bp.post("/queries/dummy")
def post_dummy():
    body = json_body()
    if body.get("dummy", True) is not True:
        raise BadRequest('this endpoint only runs dummy queries; omit "dummy" or send true',
                         code="bad_dummy")
    approval_id, sql, epsilon, confidence = _query_fields(body)
    return jsonify(run_dummy(sandbox(), g.user, QueryRequest(approval_id, sql, epsilon, confidence)))
