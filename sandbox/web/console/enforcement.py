"""Console pages of enforcement and time limits (第二十五、二十六条; issue 14): rectification
orders, terminations, overdue items, alert handling, and the admin's settings page.

Views parse forms and delegate to :mod:`sandbox.governance.enforcement`, :mod:`sandbox.governance.deadlines` and
:mod:`sandbox.governance.alerts`; every change is logged there.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.errors import NotFound, SandboxError
from sandbox.governance import (
    alerts,
    deadlines,
    enforcement,
    opening_plans,
    operator_settings,
    public_objections,
)
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import attempt, flash_error

bp = Blueprint("enforcement", __name__)


def _do(action, *args: Any, done: str, back: str, missing_is_404: bool = True):
    if attempt(action, sandbox(), signed_in(), *args, missing_is_404=missing_is_404)[0]:
        flash(done, "success")
    return redirect(back, code=303)


@bp.get("/enforcement")
@role_required("owner", "regulator", "researcher")
def index():
    user = signed_in()
    sb = sandbox()
    orders = enforcement.list_orders(sb, user) if user.role != "researcher" else []
    overdue = deadlines.list_overdue(sb, user) if user.role != "researcher" else []
    public = public_objections.list_for(sb, user) if user.role != "researcher" else []
    return render_template("enforcement/index.html", orders=orders, overdue=overdue, public=public,
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
               back=url_for("enforcement.index"), missing_is_404=False)


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
    rows = operator_settings.list_settings(sandbox(), signed_in())
    return render_template("enforcement/settings.html", rows=rows)


@bp.post("/admin/settings")
@role_required("admin")
def change_setting():
    name = request.form.get("name", "")
    return _do(operator_settings.change_setting, name, {"value": request.form.get("value", "")},
               done=_("Setting changed and logged."), back=url_for("enforcement.settings_page"))


# -- objections from the public (第十七条): no login ------------------------------------------------------
@bp.post("/objections/public")
def file_public_objection():
    body: dict[str, Any] = {k: request.form.get(k, "") for k in ("target_type", "target", "text", "contact")}
    body["evidence"] = [{"name": f.filename or "evidence", "content_base64": base64.b64encode(f.read()).decode()}
                        for f in request.files.getlist("evidence") if f and f.filename]
    try:
        result = public_objections.file(sandbox(), body, address=request.remote_addr or "?")
    except SandboxError as err:
        flash_error(err)
        back = url_for("public.dataset", name=body["target"]) if body["target_type"] == "dataset" else "/"
        return redirect(back, code=303)
    flash(_("Received. Your tracking code is %(code)s — keep it to follow the answer.", code=result["tracking_code"]),
          "success")
    return redirect(url_for("enforcement.track_public_objection", code=result["tracking_code"]), code=303)


@bp.get("/objections/track")
def track_public_objection():
    code = request.args.get("code", "").strip()
    found, error = None, None
    if code:
        try:
            found = public_objections.track(sandbox(), code)
        except NotFound:
            error = _("No objection has this tracking code.")
    return render_template("enforcement/track.html", code=code, found=found, error=error)


@bp.post("/enforcement/public-objections/<int:objection_id>/answer")
@role_required("owner", "regulator")
def answer_public_objection(objection_id: int):
    return _do(public_objections.answer, objection_id, {"answer": request.form.get("answer", "")},
               done=_("Answer sent."), back=url_for("enforcement.index"))


# -- annual opening plans (第十三条): public, comments without login ----------------------------------------
PLAN_ROWS = 5  # blank item rows on the owner's form


@bp.get("/opening-plans")
def opening_plans_page():
    return render_template("enforcement/opening_plans.html", plans=opening_plans.list_plans(sandbox()),
                           rows=PLAN_ROWS, form={})


@bp.post("/opening-plans")
@role_required("owner")
def publish_opening_plan():
    """第十三条: the owner publishes its year's plan from the console (the same service as the API)."""
    form = request.form
    items = []
    for i in range(PLAN_ROWS):
        item = {k: form.get(f"{k}-{i}", "").strip() for k in ("dataset", "title", "tier", "planned")}
        if item["dataset"] or item["title"]:
            items.append(item)
    body: dict[str, Any] = {"items": items}
    for key in ("year", "consultation_days"):
        raw = form.get(key, "").strip()
        body[key] = int(raw) if raw.isdigit() else raw
    try:
        result = opening_plans.publish(sandbox(), signed_in(), body)
    except SandboxError as err:
        flash_error(err)
        return render_template("enforcement/opening_plans.html", plans=opening_plans.list_plans(sandbox()),
                               rows=PLAN_ROWS, form=form), 400
    flash(_("Opening plan %(year)s published; open for comment until %(day)s.", year=result["year"],
            day=result["comment_until"][:10]), "success")
    return redirect(url_for("enforcement.opening_plans_page", _anchor=f"plan-{result['plan_id']}"), code=303)


@bp.get("/opening-plans/<int:plan_id>/comments")
@role_required("owner", "regulator")
def opening_plan_comments(plan_id: int):
    """The plan's owner and the regulators of its jurisdiction read the comments (with contacts)."""
    try:
        items = opening_plans.comments(sandbox(), signed_in(), plan_id)
    except NotFound:
        abort(404)
    return render_template("enforcement/opening_plan_comments.html", plan_id=plan_id, items=items)


@bp.post("/opening-plans/<int:plan_id>/comments")
def comment_opening_plan(plan_id: int):
    body = {"text": request.form.get("text", ""), "contact": request.form.get("contact", "")}
    if attempt(opening_plans.comment, sandbox(), plan_id, body, address=request.remote_addr or "?")[0]:
        flash(_("Thank you: your comment is recorded and goes to the data owner and the bureau."), "success")
    return redirect(url_for("enforcement.opening_plans_page"), code=303)
