"""JSON API under /api/v1 (DESIGN.md "Contracts"). Views parse and delegate; no logic."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from sandbox import operations
from sandbox.errors import BadRequest, Unauthorized
from sandbox.service import QueryRequest, Sandbox
from sandbox.users import User, authenticate_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


def current_user() -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API token; send the header Authorization: Bearer <token>")
    return authenticate_token(sandbox().conn(), token.strip())


@bp.before_request
def authenticate() -> None:
    g.user = current_user()


def json_body() -> dict[str, Any]:
    if not request.data:
        raise BadRequest("the request body is empty; send a JSON object", code="invalid_json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # SECURITY: absurdly nested JSON must not become a 500
        raise BadRequest("the request body is nested too deeply", code="invalid_json") from None
    if body is None:
        raise BadRequest("the request body is not valid JSON", code="invalid_json")
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object", code="invalid_json")
    return body


@bp.post("/queries")
def post_query():
    body = json_body()
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise BadRequest("field 'sql' is required and must be a string", code="missing_sql")
    if "approval_id" not in body:
        raise BadRequest("field 'approval_id' is required", code="missing_approval")
    confidence = body.get("confidence", 0.95)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise BadRequest("confidence must be a number")
    req = QueryRequest(body["approval_id"], sql, body.get("epsilon"), float(confidence))
    return jsonify(sandbox().run_query(g.user, req))


@bp.get("/approvals/<approval_id>/budget")
def get_budget(approval_id: str):
    return jsonify(sandbox().budget(g.user, approval_id))


@bp.get("/datasets")
def list_datasets():
    return jsonify({"datasets": operations.list_datasets(sandbox(), g.user)})
