"""The workflow API's one blueprint (endpoints ``api_workflow.*``) and what its areas share.

Views parse and delegate; rights, validation, the store and the audit log are in the
service functions. A bearer token is optional here: the catalog, the transparency page, the
commitment text and open-data downloads are public (第八、十四条); every other view's
service function refuses an anonymous caller with 401.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from sandbox.errors import Unauthorized
from sandbox.store.users import authenticate_token
from sandbox.web.api.base import json_body, sandbox

bp = Blueprint("api_workflow", __name__)  # CSRF-exempt in create_app: bearer tokens only


@bp.before_request
def optional_login() -> None:
    """A token, if sent, must be valid; none at all means an anonymous caller."""
    header = request.headers.get("Authorization", "")
    g.user = None
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send the header Authorization: Bearer <token>")
        g.user = authenticate_token(sandbox().conn(), token.strip())


def optional_body() -> dict[str, Any]:
    return json_body() if request.data else {}


def accepted_if_review(result: dict[str, Any]):
    """202 when the change waits for the regulator's co-signature (issue 14), 200 when done."""
    return jsonify(result), (202 if "review_id" in result and result.get("status") != "approved" else 200)
