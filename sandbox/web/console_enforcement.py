"""Console pages of enforcement and time limits (第二十五、二十六条; issue 14): rectification
orders, terminations, overdue items, alert handling, and the admin's settings page.

Views parse forms and delegate to :mod:`sandbox.enforcement`, :mod:`sandbox.deadlines` and
:mod:`sandbox.alerts`; every change is logged there.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox import alerts, deadlines, enforcement
from sandbox.errors import NotFound, SandboxError
from sandbox.web.console import role_required, sandbox, signed_in

bp = Blueprint("enforcement", __name__)


def _do(action, *args: Any, done: str, back: str):
    try:
        action(sandbox(), signed_in(), *args)
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash(err.message, "error")
    else:
        flash(done, "success")
    return redirect(back, code=303)


@bp.get("/enforcement")
@role_required("owner", "regulator", "researcher")
def index():
    user = signed_in()
    sb = sandbox()
    orders = enforcement.list_orders(sb, user) if user.role != "researcher" else []
    overdue = deadlines.list_overdue(sb, user) if user.role != "researcher" else []
    return render_template("enforcement/index.html", orders=orders, overdue=overdue,
                           terminations=enforcement.list_terminations(sb, user))


@bp.post("/enforcement/rectifications")
@role_required("regulator")
def issue():
    body = {k: request.form.get(k, "").strip() for k in ("owner", "dataset", "what", "due")}
    body = {k: v for k, v in body.items() if v or k == "what"}
    return _do(enforcement.issue_order, body, done=_("Rectification order issued."),
               back=url_for("enforcement.index"))


@bp.post("/enforcement/rectifications/<int:order_id>/response")
@role_required("owner")
def respond(order_id: int):
    return _do(enforcement.respond, order_id, {"response": request.form.get("response", "")},
               done=_("Submitted for the regulator's sign-off."), back=url_for("enforcement.index"))


@bp.post("/enforcement/rectifications/<int:order_id>/close")
@role_required("regulator")
def close(order_id: int):
    body = {"accept": request.form.get("accept") != "0", "note": request.form.get("note", "")}
    done = _("Signed off: the order is closed.") if body["accept"] else _("Returned to the owner.")
    return _do(enforcement.close, order_id, body, done=done, back=url_for("enforcement.index"))


@bp.post("/enforcement/terminations")
@role_required("owner", "regulator")
def terminate():
    target = request.form.get("target", "").strip()
    body: dict[str, Any] = {"reason": request.form.get("reason", "")}
    if target.isdigit():
        body["approval_id"] = int(target)
    else:
        body["user"] = target
    return _do(enforcement.terminate, body, done=_("Terminated. This is final unless reversed on objection."),
               back=url_for("enforcement.index"))


@bp.post("/enforcement/terminations/<int:termination_id>/reverse")
@role_required("regulator")
def reverse(termination_id: int):
    body = {"reason": request.form.get("reason", ""), "objection_id": request.form.get("objection_id", "")}
    return _do(enforcement.reverse, termination_id, body, done=_("Termination reversed."),
               back=url_for("enforcement.index"))


@bp.post("/alerts/<int:alert_id>/handle")
@role_required("owner", "regulator")
def handle_alert(alert_id: int):
    body = {"action": request.form.get("action", ""), "note": request.form.get("note", "")}
    back = request.form.get("next", "")
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("enforcement.index")
    return _do(alerts.handle, alert_id, body, done=_("Alert updated."), back=back)


@bp.get("/admin/settings")
@role_required("admin")
def settings_page():
    rows = deadlines.list_settings(sandbox(), signed_in())
    return render_template("enforcement/settings.html", rows=rows)


@bp.post("/admin/settings")
@role_required("admin")
def change_setting():
    name = request.form.get("name", "")
    return _do(deadlines.change_setting, name, {"value": request.form.get("value", "")},
               done=_("Setting changed and logged."), back=url_for("enforcement.settings_page"))
