"""Workflow API: applications and approvals (第十五条), changes to an approval, attachments,
and the free dummy run before any approval."""

from __future__ import annotations

from flask import Response, g, jsonify

from sandbox.governance import applications, attachments, self_service
from sandbox.governance.workflow import COMMITMENT_SHA256, COMMITMENT_TEXT
from sandbox.service import public_dummy
from sandbox.web.api.base import json_body, sandbox
from sandbox.web.api.workflow.blueprint import bp


@bp.post("/api/v1/applications")
def post_application():
    return jsonify(applications.submit(sandbox(), g.user, json_body())), 201


@bp.get("/api/v1/applications")
def list_applications():
    return jsonify({"applications": applications.list_applications(sandbox(), g.user)})


@bp.get("/api/v1/applications/<int:application_id>")
def get_application(application_id: int):
    return jsonify(applications.get_application(sandbox(), g.user, application_id))


@bp.post("/api/v1/applications/<int:application_id>/decision")
def post_decision(application_id: int):
    return jsonify(applications.decide(sandbox(), g.user, application_id, json_body()))


@bp.get("/api/v1/approvals")
def list_approvals():
    return jsonify({"approvals": applications.list_approvals(sandbox(), g.user)})


@bp.get("/api/v1/approvals/<int:approval_id>")
def get_approval(approval_id: int):
    return jsonify(applications.read_approval(sandbox(), g.user, approval_id))


@bp.get("/api/v1/commitment")
def get_commitment():
    return jsonify({"text": COMMITMENT_TEXT, "sha256": COMMITMENT_SHA256})


@bp.post("/api/v1/approvals/<approval_id>/requests")
def post_approval_request(approval_id: str):
    return jsonify(self_service.request_change(sandbox(), g.user, approval_id, json_body())), 201


@bp.post("/api/v1/queries/dummy-public")
def post_public_dummy():
    """Issue 14: a free dummy run before any approval, on the public schema's stand-in."""
    return jsonify(public_dummy.run(sandbox(), g.user, json_body()))


@bp.get("/api/v1/attachments/<attachment_id>")
def get_attachment(attachment_id: str):
    """An application's attachment or an objection's evidence, for the parties only (issue 14)."""
    return attachment_response(*attachments.read(sandbox(), g.user, attachment_id))


def attachment_response(data: bytes, media_type: str, name: str) -> Response:
    """Always a download, never rendered: attachment disposition, no sniffing, a sandboxing CSP."""
    resp = Response(data, mimetype=media_type.split(";")[0], content_type=media_type)
    resp.headers.set("Content-Disposition", "attachment", filename=name)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return resp
