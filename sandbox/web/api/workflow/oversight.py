"""Workflow API: oversight: suspensions and terminations, alerts, objections (also the public's),
rectification orders, overdue items and the settings of time limits (第十七、二十二至二十六条)."""

from __future__ import annotations

from flask import g, jsonify, request

from sandbox.governance import (
    alerts,
    deadlines,
    enforcement,
    objections,
    operator_settings,
    public_objections,
    suspensions,
)
from sandbox.web.api.base import json_body, sandbox
from sandbox.web.api.workflow.blueprint import bp


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


@bp.post("/api/v1/alerts/<alert_id>/handle")
def handle_alert(alert_id: str):
    return jsonify(alerts.handle(sandbox(), g.user, alert_id, json_body()))


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


# -- public objections (第十七条, no login) ----------------------------------------------------------------
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
