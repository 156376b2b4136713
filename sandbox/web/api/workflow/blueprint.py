"""JSON API of the regulation workflow (issue 6): applications, approvals, suspensions,
alerts, objections, the catalog, tiers, risk reports, transparency and accounts.

Views parse and delegate; rights, validation, the store and the audit log are in the
service functions. A bearer token is optional here: the catalog, the transparency page, the
commitment text and open-data downloads are public (第八、十四条); every other view's
service function refuses an anonymous caller with 401.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from sandbox.errors import Unauthorized
from sandbox.governance import (
    alerts,
    applications,
    attachments,
    classification,
    dataset_caps,
    deadlines,
    enforcement,
    objections,
    open_catalog,
    opening_plans,
    operator_settings,
    organisations,
    public_objections,
    publication,
    self_service,
    suspensions,
    tier_disputes,
    transparency,
)
from sandbox.governance.workflow import COMMITMENT_SHA256, COMMITMENT_TEXT
from sandbox.service import bounding_report, operations, public_dummy
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


# -- applications and approvals (第十五条) ----------------------------------------------------
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


# -- suspensions (第二十二、二十六条) ----------------------------------------------------------------
@bp.post("/api/v1/suspensions")
def post_suspension():
    return jsonify(suspensions.create(sandbox(), g.user, json_body())), 201


@bp.post("/api/v1/suspensions/<int:suspension_id>/lift")
def lift_suspension(suspension_id: int):
    return jsonify(suspensions.lift(sandbox(), g.user, suspension_id, json_body()))


@bp.get("/api/v1/suspensions")
def list_suspensions():
    return jsonify({"suspensions": suspensions.list_suspensions(sandbox(), g.user)})


# -- alerts (第二十二、二十三条) -----------------------------------------------------------------------
@bp.get("/api/v1/alerts")
def list_alerts():
    args = request.args
    return jsonify({"alerts": alerts.list_alerts(sandbox(), g.user, kind=args.get("kind"),
                                                 approval_id=args.get("approval_id"))})


# -- objections (第十七条) ---------------------------------------------------------------------------
@bp.post("/api/v1/objections")
def post_objection():
    return jsonify(objections.file(sandbox(), g.user, json_body())), 201


@bp.get("/api/v1/objections")
def list_objections():
    return jsonify({"objections": objections.list_objections(sandbox(), g.user)})


@bp.get("/api/v1/objections/<int:objection_id>")
def get_objection(objection_id: int):
    return jsonify(objections.get(sandbox(), g.user, objection_id))


@bp.post("/api/v1/objections/<int:objection_id>/answer")
def answer_objection(objection_id: int):
    return jsonify(objections.answer(sandbox(), g.user, objection_id, json_body()))


# -- catalog, tiers, risk, downloads (第八、十、十一、十二、十四条) ---------------------------------------
@bp.get("/api/v1/catalog")
def get_catalog():
    return jsonify({"datasets": open_catalog.list_entries(sandbox(), g.user)})


@bp.get("/api/v1/catalog/<name>")
def get_catalog_entry(name: str):
    return jsonify(open_catalog.get_entry(sandbox(), g.user, name))


@bp.get("/catalog.jsonld")
def get_catalog_jsonld():
    body = open_catalog.jsonld(sandbox(), g.user, request.host_url)
    return Response(jsonify(body).get_data(), mimetype="application/ld+json")


@bp.get("/api/v1/datasets/<name>/download")
def download(name: str):
    fmt = request.args.get("format", "csv")
    payload, mimetype, filename = open_catalog.download(sandbox(), g.user, name, fmt)
    return Response(payload, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _accepted_if_review(result: dict[str, Any]):
    """202 when the change waits for the regulator's co-signature (issue 14), 200 when done."""
    return jsonify(result), (202 if "review_id" in result and result.get("status") != "approved" else 200)


@bp.post("/api/v1/datasets/<name>/tier")
def post_tier(name: str):
    return _accepted_if_review(open_catalog.change_tier(sandbox(), g.user, name, json_body()))


@bp.get("/api/v1/datasets/<name>/risk")
def get_risk(name: str):
    return jsonify(open_catalog.risk_report(sandbox(), g.user, name))


@bp.get("/api/v1/datasets/<name>/bounding-report")
def get_bounding_report(name: str):
    return jsonify(bounding_report.read(sandbox(), g.user, name))


@bp.post("/api/v1/datasets/<name>/risk/ack")
def post_risk_ack(name: str):
    return _accepted_if_review(open_catalog.acknowledge_risk(sandbox(), g.user, name, optional_body()))


# -- termination (第二十六条), rectification (第二十五条), time limits, settings (issue 14) -------------------
@bp.post("/api/v1/terminations")
def post_termination():
    return jsonify(enforcement.terminate(sandbox(), g.user, json_body())), 201


@bp.get("/api/v1/terminations")
def list_terminations():
    return jsonify({"terminations": enforcement.list_terminations(sandbox(), g.user)})


@bp.post("/api/v1/terminations/<termination_id>/reverse")
def reverse_termination(termination_id: str):
    return jsonify(enforcement.reverse(sandbox(), g.user, termination_id, json_body()))


@bp.post("/api/v1/rectifications")
def post_rectification():
    return jsonify(enforcement.issue_order(sandbox(), g.user, json_body())), 201


@bp.get("/api/v1/rectifications")
def list_rectifications():
    return jsonify({"rectifications": enforcement.list_orders(sandbox(), g.user)})


@bp.get("/api/v1/rectifications/<order_id>")
def get_rectification(order_id: str):
    return jsonify(enforcement.get_order(sandbox(), g.user, order_id))


@bp.post("/api/v1/rectifications/<order_id>/response")
def post_rectification_response(order_id: str):
    return jsonify(enforcement.respond(sandbox(), g.user, order_id, json_body()))


@bp.post("/api/v1/rectifications/<order_id>/close")
def post_rectification_close(order_id: str):
    return jsonify(enforcement.close(sandbox(), g.user, order_id, json_body()))


@bp.get("/api/v1/overdue")
def list_overdue():
    return jsonify({"overdue": deadlines.list_overdue(sandbox(), g.user)})


@bp.get("/api/v1/settings")
def list_settings():
    return jsonify({"settings": operator_settings.list_settings(sandbox(), g.user)})


@bp.put("/api/v1/settings/<name>")
def put_setting(name: str):
    return jsonify(operator_settings.change_setting(sandbox(), g.user, name, json_body()))


@bp.post("/api/v1/organisations")
def post_organisation():
    return jsonify(organisations.create(sandbox(), g.user, json_body())), 201


@bp.get("/api/v1/organisations")
def list_organisations():
    return jsonify({"organisations": organisations.list_all(sandbox(), g.user)})


@bp.put("/api/v1/users/<username>/organisation")
def put_user_organisation(username: str):
    return jsonify(organisations.assign(sandbox(), g.user, username, json_body()))


@bp.post("/api/v1/public-objections")
def post_public_objection():
    """No login (第十七条): rate-limited per address, evidence checked by content."""
    return jsonify(public_objections.file(sandbox(), json_body(), address=request.remote_addr or "?")), 201


@bp.get("/api/v1/public-objections/<code>")
def track_public_objection(code: str):
    return jsonify(public_objections.track(sandbox(), code))


@bp.get("/api/v1/public-objections")
def list_public_objections():
    return jsonify({"public_objections": public_objections.list_for(sandbox(), g.user)})


@bp.post("/api/v1/public-objections/<int:objection_id>/answer")
def answer_public_objection(objection_id: int):
    return jsonify(public_objections.answer(sandbox(), g.user, objection_id, json_body()))


@bp.get("/api/v1/tokens")
def list_tokens():
    return jsonify({"tokens": self_service.list_tokens(sandbox(), g.user)})


@bp.post("/api/v1/tokens")
def post_token():
    return jsonify(self_service.create_token(sandbox(), g.user, json_body())), 201


@bp.post("/api/v1/tokens/<token_id>/revoke")
def revoke_token(token_id: str):
    return jsonify(self_service.revoke_token(sandbox(), g.user, token_id))


@bp.post("/api/v1/approvals/<approval_id>/requests")
def post_approval_request(approval_id: str):
    return jsonify(self_service.request_change(sandbox(), g.user, approval_id, json_body())), 201


@bp.get("/api/v1/opening-plans")
def list_opening_plans():
    return jsonify({"opening_plans": opening_plans.list_plans(sandbox())})


@bp.post("/api/v1/opening-plans")
def post_opening_plan():
    return jsonify(opening_plans.publish(sandbox(), g.user, json_body())), 201


@bp.post("/api/v1/opening-plans/<plan_id>/comments")
def post_opening_plan_comment(plan_id: str):
    """No login (第十三条: public consultation); rate-limited per address."""
    return jsonify(opening_plans.comment(sandbox(), plan_id, json_body(), address=request.remote_addr or "?")), 201


@bp.get("/api/v1/opening-plans/<plan_id>/comments")
def list_opening_plan_comments(plan_id: str):
    return jsonify({"comments": opening_plans.comments(sandbox(), g.user, plan_id)})


@bp.put("/api/v1/datasets/<name>/legal-basis")
def put_legal_basis(name: str):
    return jsonify(open_catalog.set_legal_basis(sandbox(), g.user, name, json_body()))


@bp.post("/api/v1/queries/dummy-public")
def post_public_dummy():
    """Issue 14: a free dummy run before any approval, on the public schema's stand-in."""
    return jsonify(public_dummy.run(sandbox(), g.user, json_body()))


@bp.post("/api/v1/alerts/<alert_id>/handle")
def handle_alert(alert_id: str):
    return jsonify(alerts.handle(sandbox(), g.user, alert_id, json_body()))


# -- publication and tier reviews (第十、十二条; issue 14) ----------------------------------------------
@bp.get("/api/v1/reviews")
def list_reviews():
    return jsonify({"reviews": publication.list_reviews(sandbox(), g.user)})


@bp.get("/api/v1/reviews/<review_id>")
def get_review(review_id: str):
    return jsonify(publication.get_review(sandbox(), g.user, review_id))


@bp.post("/api/v1/reviews/<review_id>/decision")
def post_review_decision(review_id: str):
    return jsonify(publication.decide(sandbox(), g.user, review_id, json_body()))


@bp.post("/api/v1/reviews/<review_id>/answer")
def post_review_answer(review_id: str):
    return _accepted_if_review(tier_disputes.answer(sandbox(), g.user, review_id, json_body()))


@bp.post("/api/v1/reviews/<review_id>/expert-review")
def post_expert_review(review_id: str):
    return jsonify(tier_disputes.expert_review(sandbox(), g.user, review_id, json_body()))


@bp.put("/api/v1/datasets/<name>/classification")
def put_classification(name: str):
    return jsonify(classification.set_classification(sandbox(), g.user, name, json_body()))


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


@bp.post("/api/v1/reviews/<review_id>/city-decision")
def post_city_decision(review_id: str):
    return jsonify(tier_disputes.city_decision(sandbox(), g.user, review_id, json_body()))


@bp.get("/api/v1/datasets/<name>/budget-cap")
def get_budget_cap(name: str):
    return jsonify(dataset_caps.read(sandbox(), g.user, name))


@bp.put("/api/v1/datasets/<name>/budget-cap")
def put_budget_cap(name: str):
    return jsonify(dataset_caps.set_cap(sandbox(), g.user, name, json_body()))


@bp.get("/api/v1/transparency")
def get_transparency():
    return jsonify(transparency.page(sandbox(), g.user))


# -- accounts -----------------------------------------------------------------------------------
@bp.post("/api/v1/users")
def post_user():
    return jsonify(operations.create_user(sandbox(), g.user, json_body())), 201


@bp.post("/api/v1/users/<username>/tokens/rotate")
def rotate_token(username: str):
    return jsonify(operations.rotate_token(sandbox(), g.user, username))
