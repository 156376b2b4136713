"""JSON API under /api/v1 (DESIGN.md "Contracts"). Views parse and delegate; no logic.

This blueprint also installs the app-wide request rate limit (``sandbox.store.rate_limits``): every
request but static files and ``/healthz`` counts against its client address, and one with a
bearer token against that token too, before anything else runs (authentication included).
Over a limit: HTTP 429 with ``Retry-After`` and the usual error shape (code
``rate_limited``); console pages get the friendly error page.
"""

from __future__ import annotations

from typing import Any, Final

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask_babel import gettext as _

from sandbox.errors import BadRequest, Unauthorized
from sandbox.service import operations
from sandbox.service.pipeline import QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store import rate_limits, request_limits
from sandbox.store.users import User, authenticate_token
from sandbox.web.console.base import render_error
from sandbox.web.errors import error_body, wants_json

bp = Blueprint("api", __name__, url_prefix="/api/v1")

#: Never rate limited: the health check (load balancers poll it) and static files.
UNLIMITED_ENDPOINTS: Final = frozenset({"healthz", "static"})


def sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


@bp.record_once
def _install_rate_limiter(state) -> None:
    sb: Sandbox = state.app.extensions["sandbox"]
    state.app.extensions["rate_limiter"] = rate_limits.RateLimiter(
        rate_limits.CounterStore(sb.ws.db_path), now=sb.now)
    # First of all the app's before-request functions (before the CSRF check too), so that
    # every request is counted and a refused one costs nothing more.
    state.app.before_request_funcs.setdefault(None, []).insert(0, rate_limit)


def rate_limit() -> Response | None:
    if request.endpoint in UNLIMITED_ENDPOINTS:
        return None
    scheme, _sep, token = request.headers.get("Authorization", "").partition(" ")
    limiter: rate_limits.RateLimiter = current_app.extensions["rate_limiter"]
    decision = limiter.check(token=token.strip() if scheme.lower() == "bearer" else None,
                             address=request.remote_addr or "?")
    if decision.allowed:
        return None
    who = "API token" if decision.scope == "token" else "client address"
    if wants_json():
        resp = jsonify(error_body("rate_limited", (
            f"too many requests from this {who}: at most {decision.limit} per {decision.window} s; "
            f"retry in {decision.retry_after} s")))
        resp.status_code = 429
    else:
        body, status = render_error(429, _("Too many requests. Try again in %(seconds)d seconds.",
                                           seconds=decision.retry_after))
        resp = current_app.make_response((body, status))
    resp.headers["Retry-After"] = str(decision.retry_after)
    return resp


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


def query_request(body: dict[str, Any]) -> QueryRequest:
    """The query fields of a request body, as sent. Only their presence and the SQL's type
    are checked here; their ranges are checked by the service (``sandbox.store.request_limits``)
    after the approval, so each such refusal is logged and counted like any other (issue
    12, finding 4). SECURITY: no number is converted here: a 401-digit integer or 1e-300
    must reach ``request_limits`` as it is, not overflow or hang in a view."""
    sql = body.get("sql")
    if not isinstance(sql, str):
        raise BadRequest("field 'sql' is required and must be a string", code="missing_sql")
    if "approval_id" not in body:
        raise BadRequest("field 'approval_id' is required", code="missing_approval")
    return QueryRequest(body["approval_id"], sql, body.get("epsilon"),
                        body.get("confidence", request_limits.CONFIDENCE_DEFAULT))


@bp.post("/queries")
def post_query():
    # the service runs the after-query hooks (alerts), whatever the outcome
    return jsonify(sandbox().run_query(g.user, query_request(json_body())))


@bp.get("/approvals/<approval_id>/budget")
def get_budget(approval_id: str):
    return jsonify(sandbox().budget(g.user, approval_id))


@bp.get("/datasets")
def list_datasets():
    return jsonify({"datasets": operations.list_datasets(sandbox(), g.user)})
