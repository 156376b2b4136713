"""Suspensions (第二十二、二十六条) and objections (第十七条): pages shared by the roles.

Who may suspend, lift, file or answer is decided by ``sandbox.governance.suspensions`` and
``sandbox.governance.objections`` (the functions behind the JSON API); the page only shows each role
the forms it can use, and reports the service's refusal otherwise.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.errors import SandboxError
from sandbox.governance import jurisdiction, workflow
from sandbox.governance import objections as objection_service
from sandbox.governance import suspensions as suspension_service
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import attempt, service_error
from sandbox.web.console.redirects import safe_next
from sandbox.web.console.self_service import uploaded_files

bp = Blueprint("oversight", __name__)


def _back(default: str):
    return redirect(safe_next(request.form.get("next")) or url_for(default), code=303)


@bp.get("/suspensions")
@role_required("owner", "regulator", "researcher")
def suspensions():
    return _suspensions_page()


def _suspensions_page(form: dict[str, str] | None = None, error: str | None = None, status: int = 200):
    """The page; after a refused suspension, with what was typed (``form``) and the reason."""
    user = signed_in()
    items = suspension_service.list_suspensions(sandbox(), user)
    items.sort(key=lambda s: (not s["active"], -s["suspension_id"]))
    researchers = []
    if user.role == "regulator":
        conn = sandbox().conn()
        researchers = [r["username"] for r in conn.execute(
            "SELECT username FROM users WHERE role = 'researcher' ORDER BY username")]
        if jurisdiction.is_district(conn, user):  # 第五条: the researchers holding an approval in its district

            held = {a.researcher_id for a in workflow.approvals_for(conn, user)}
            researchers = [r["username"] for r in conn.execute(
                "SELECT id, username FROM users WHERE role = 'researcher' ORDER BY username") if r["id"] in held]
    elif user.role == "owner":
        researchers = [r["username"] for r in sandbox().conn().execute(
            "SELECT DISTINCT u.username FROM approvals a JOIN users u ON u.id = a.researcher_id "
            "WHERE a.owner_id = ? ORDER BY u.username", (user.id,))]
    form = form or {}
    return render_template("oversight/suspensions.html", items=items, researchers=researchers,
                           approval_prefill=form.get("approval_id", request.args.get("approval", "")),
                           user_prefill=form.get("user", request.args.get("user", "")),
                           target_prefill=form.get("target_type", ""), reason_prefill=form.get("reason", ""),
                           form_error=error), status


def suspension_target(form) -> str:
    """What the form asks to suspend. The choice follows what was filled in: a researcher
    picked with no approval number means the researcher, whichever radio was left as it was
    (issue 15: a default that fails with "no approval" does not respect the user's choice)."""
    target = form.get("target_type", "approval")
    if target == "approval" and not form.get("approval_id", "").strip() and form.get("user", "").strip():
        return "user"
    if target == "user" and not form.get("user", "").strip() and form.get("approval_id", "").strip():
        return "approval"
    return "user" if target == "user" else "approval"


@bp.post("/suspensions")
@role_required("owner", "regulator")
def suspend():
    form = request.form
    body: dict[str, Any] = {"reason": form.get("reason", "")}
    target = suspension_target(form)
    if target == "user":
        body["user"] = form.get("user", "").strip()
    else:
        body["approval_id"] = form.get("approval_id", "").strip()
    try:
        result = suspension_service.create(sandbox(), signed_in(), body)
    except SandboxError as err:
        return _suspensions_page({**form.to_dict(), "target_type": target}, service_error(err), 400)
    what = (_("researcher %(name)s", name=result["user"]) if result["target_type"] == "user"
            else _("approval #%(id)s", id=result["approval_id"]))
    flash(_("Suspended %(what)s (suspension #%(id)s). It takes effect at once.", what=what,
            id=result["suspension_id"]), "success")
    return _back("oversight.suspensions")


@bp.post("/suspensions/<int:suspension_id>/lift")
@role_required("owner", "regulator")
def lift(suspension_id: int):
    if attempt(suspension_service.lift, sandbox(), signed_in(), suspension_id,
               {"reason": request.form.get("reason", "")})[0]:
        flash(_("Suspension #%(id)s lifted.", id=suspension_id), "success")
    return _back("oversight.suspensions")


@bp.get("/objections")
@role_required("owner", "regulator", "researcher")
def objections():
    return _objections_page()


def _objections_page(form: dict[str, str] | None = None, error: str | None = None, status: int = 200):
    """The page; after a refused objection, with what was typed (``form``) and the reason."""
    user = signed_in()
    items = objection_service.list_objections(sandbox(), user)
    items.sort(key=lambda o: (o["status"] != "open", -o["objection_id"]))
    return render_template("oversight/objections.html", items=items, targets=objection_service.TARGETS,
                           can_file=user.role in ("researcher", "owner"), can_answer=user.role == "regulator",
                           form=form or {}, form_error=error), status


@bp.post("/objections")
@role_required("owner", "researcher")
def file_objection():
    form = request.form

    body = {"target_type": form.get("target_type", ""), "target_id": form.get("target_id", ""),
            "text": form.get("text", ""), "evidence": uploaded_files("evidence")}  # 第十七条 (issue 14)
    try:
        result = objection_service.file(sandbox(), signed_in(), body)
    except SandboxError as err:
        return _objections_page(form.to_dict(), service_error(err), 400)
    flash(_("Objection #%(id)s filed; the regulator will answer it.", id=result["objection_id"]), "success")
    return _back("oversight.objections")


@bp.post("/objections/<int:objection_id>/answer")
@role_required("regulator")
def answer(objection_id: int):
    if attempt(objection_service.answer, sandbox(), signed_in(), objection_id,
               {"answer": request.form.get("answer", "")})[0]:
        flash(_("Objection #%(id)s answered.", id=objection_id), "success")
    return _back("oversight.objections")
