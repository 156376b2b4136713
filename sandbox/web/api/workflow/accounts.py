"""Workflow API: accounts: users, their API tokens, organisations."""

from __future__ import annotations

from flask import g, jsonify

from sandbox.governance import organisations, self_service
from sandbox.service import operations
from sandbox.web.api.base import json_body, sandbox
from sandbox.web.api.workflow.blueprint import bp


@bp.post("/api/v1/users")
def post_user():
    return jsonify(operations.create_user(sandbox(), g.user, json_body())), 201


@bp.post("/api/v1/users/<username>/tokens/rotate")
def rotate_token(username: str):
    return jsonify(operations.rotate_token(sandbox(), g.user, username))


@bp.get("/api/v1/tokens")
def list_tokens():
    return jsonify({"tokens": self_service.list_tokens(sandbox(), g.user)})


@bp.post("/api/v1/tokens")
def post_token():
    return jsonify(self_service.create_token(sandbox(), g.user, json_body())), 201


@bp.post("/api/v1/tokens/<token_id>/revoke")
def revoke_token(token_id: str):
    return jsonify(self_service.revoke_token(sandbox(), g.user, token_id))


@bp.post("/api/v1/organisations")
def post_organisation():
    return jsonify(organisations.create(sandbox(), g.user, json_body())), 201


@bp.get("/api/v1/organisations")
def list_organisations():
    return jsonify({"organisations": organisations.list_all(sandbox(), g.user)})


@bp.put("/api/v1/users/<username>/organisation")
def put_user_organisation(username: str):
    return jsonify(organisations.assign(sandbox(), g.user, username, json_body()))
