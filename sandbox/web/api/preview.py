"""JSON API for spending nothing: ``POST /api/v1/queries/preview`` and ``/queries/dummy``.

Same body as ``POST /api/v1/queries`` (``approval_id``, ``sql``, ``epsilon``?,
``confidence``?), plus for the preview an optional ``"accuracy": {"column",
"half_width", "confidence"?}`` (the smallest ε reaching it is used) and
``"expected_rows"`` (the researcher's own guess of a group's size, for averages).
Views parse and delegate; no logic: every number is checked, and every refusal logged, by
the same stages as a real query's (``sandbox.service.pipeline.check`` and ``plan``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from sandbox.errors import BadRequest
from sandbox.service.dummy import run_dummy
from sandbox.service.preview import AccuracyTarget, PreviewRequest, preview_query
from sandbox.store import request_limits
from sandbox.web.api.base import current_user, json_body, query_request, sandbox

bp = Blueprint("api_preview", __name__, url_prefix="/api/v1")


@bp.before_request
def authenticate() -> None:
    g.user = current_user()


def _target(body: dict[str, Any]) -> AccuracyTarget | None:
    """The ``accuracy`` object's shape; its numbers are checked with the query's
    (``sandbox.service.preview.preview_query`` → ``sandbox.store.request_limits``)."""
    raw = body.get("accuracy")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("column"), str):
        raise BadRequest('accuracy must be {"column": name, "half_width": number, '
                         '"confidence"?: number}', code="bad_accuracy")
    if "half_width" not in raw:
        raise BadRequest("accuracy.half_width is required", code="bad_accuracy")
    return AccuracyTarget(raw["column"], raw["half_width"],
                          raw.get("confidence", request_limits.CONFIDENCE_DEFAULT))


@bp.post("/queries/preview")
def post_preview():
    body = json_body()
    q = query_request(body)
    req = PreviewRequest(q.approval_id, q.sql, q.epsilon, q.confidence, _target(body),
                         body.get("expected_rows"))
    return jsonify(preview_query(sandbox(), g.user, req))


@bp.post("/queries/dummy")
def post_dummy():
    body = json_body()
    if body.get("dummy", True) is not True:
        raise BadRequest('this endpoint only runs dummy queries; omit "dummy" or send true',
                         code="bad_dummy")
    return jsonify(run_dummy(sandbox(), g.user, query_request(body)))
