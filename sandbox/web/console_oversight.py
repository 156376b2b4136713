"""Suspensions (第二十二、二十六条) and objections (第十七条): pages shared by the roles.

Who may suspend, lift, file or answer is decided by ``sandbox.suspensions`` and
``sandbox.objections`` (the functions behind the JSON API); the page only shows each role
the forms it can use, and reports the service's refusal otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox import objections as objection_service
from sandbox import suspensions as suspension_service
from sandbox.errors import NotFound, SandboxError
from sandbox.web.console import _safe_next, role_required, sandbox, signed_in

bp = Blueprint("oversight", __name__)


def _back(default: str):
    return redirect(_safe_next(request.form.get("next")) or url_for(default), code=303)


@bp.get("/suspensions")
@role_required("owner", "regulator", "researcher")
def suspensions():
    user = signed_in()
    items = suspension_service.list_suspensions(sandbox(), user)
    items.sort(key=lambda s: (not s["active"], -s["suspension_id"]))
    researchers = []
    if user.role == "regulator":
        researchers = [r["username"] for r in sandbox().conn().execute(
            "SELECT username FROM users WHERE role = 'researcher' ORDER BY username")]
    elif user.role == "owner":
        researchers = [r["username"] for r in sandbox().conn().execute(
            "SELECT DISTINCT u.username FROM approvals a JOIN users u ON u.id = a.researcher_id "
            "WHERE a.owner_id = ? ORDER BY u.username", (user.id,))]
    return render_template("oversight/suspensions.html", items=items, researchers=researchers,
                           approval_prefill=request.args.get("approval", ""),
                           user_prefill=request.args.get("user", ""))


@bp.post("/suspensions")
@role_required("owner", "regulator")
def suspend():
    form = request.form
    body: dict[str, Any] = {"reason": form.get("reason", "")}
    target = form.get("target_type", "approval")
    if target == "user":
        body["user"] = form.get("user", "").strip()
    else:
        body["approval_id"] = form.get("approval_id", "").strip()
    try:
        result = suspension_service.create(sandbox(), signed_in(), body)
    except SandboxError as err:
        flash(err.message, "error")
    else:
        what = (_("researcher %(name)s", name=result["user"]) if result["target_type"] == "user"
                else _("approval #%(id)s", id=result["approval_id"]))
        flash(_("Suspended %(what)s (suspension #%(id)s). It takes effect at once.", what=what,
                id=result["suspension_id"]), "success")
    return _back("oversight.suspensions")


@bp.post("/suspensions/<int:suspension_id>/lift")
@role_required("owner", "regulator")
def lift(suspension_id: int):
    try:
        suspension_service.lift(sandbox(), signed_in(), suspension_id, {"reason": request.form.get("reason", "")})
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash(err.message, "error")
    else:
        flash(_("Suspension #%(id)s lifted.", id=suspension_id), "success")
    return _back("oversight.suspensions")


@bp.get("/objections")
@role_required("owner", "regulator", "researcher")
def objections():
    user = signed_in()
    items = objection_service.list_objections(sandbox(), user)
    items.sort(key=lambda o: (o["status"] != "open", -o["objection_id"]))
    return render_template("oversight/objections.html", items=items, targets=objection_service.TARGETS,
                           can_file=user.role in ("researcher", "owner"), can_answer=user.role == "regulator")


@bp.post("/objections")
@role_required("owner", "researcher")
def file_objection():
    form = request.form
    body = {"target_type": form.get("target_type", ""), "target_id": form.get("target_id", ""),
            "text": form.get("text", "")}
    try:
        result = objection_service.file(sandbox(), signed_in(), body)
    except SandboxError as err:
        flash(err.message, "error")
    else:
        flash(_("Objection #%(id)s filed; the regulator will answer it.", id=result["objection_id"]), "success")
    return _back("oversight.objections")


@bp.post("/objections/<int:objection_id>/answer")
@role_required("regulator")
def answer(objection_id: int):
    try:
        objection_service.answer(sandbox(), signed_in(), objection_id, {"answer": request.form.get("answer", "")})
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash(err.message, "error")
    else:
        flash(_("Objection #%(id)s answered.", id=objection_id), "success")
    return _back("oversight.objections")
