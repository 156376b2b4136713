"""Console pages of researcher self-service (issue 14; 第十五条): register, apply from the open
list, follow one's applications, request more budget or an extension, manage API tokens.

Views parse forms and delegate to :mod:`sandbox.governance.self_service` and :mod:`sandbox.governance.applications`.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.errors import NotFound, SandboxError
from sandbox.governance import applications, approvals, open_catalog, self_service
from sandbox.governance import attachments as attachments_service
from sandbox.governance.workflow import COMMITMENT_TEXT
from sandbox.service import public_dummy
from sandbox.web.api.workflow.applications import attachment_response
from sandbox.web.console.base import current_user, role_required, sandbox, signed_in
from sandbox.web.console.errors import attempt, flash_error, service_error

bp = Blueprint("self_service", __name__)


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user() is not None:
        return redirect(url_for("console.home"))
    error = None
    if request.method == "POST":
        form = {k: request.form.get(k, "") for k in ("username", "password", "password_again", "display_name")}
        try:
            self_service.register(sandbox(), form)
        except SandboxError as err:
            error = service_error(err)
        else:
            flash(_("Your researcher account is ready. Log in to apply for data."), "success")
            return redirect(url_for("console.login", next=request.args.get("next") or url_for("public.catalog")),
                            code=303)
    return render_template("self/register.html", error=error), (400 if error else 200)


@bp.route("/apply/<name>", methods=["GET", "POST"])
@role_required("researcher")
def apply(name: str):
    try:
        entry = open_catalog.get_entry(sandbox(), signed_in(), name)
    except NotFound:
        abort(404)
    if entry["tier"] != "conditional":
        abort(404)
    error = None
    trial, trial_error = None, None
    if request.method == "POST" and request.form.get("action") == "dummy":
        # issue 14: a free dummy run on the public schema before applying
        try:
            trial = public_dummy.run(sandbox(), signed_in(), {"datasets": [entry["name"]],
                                                              "sql": request.form.get("sql", "")})
        except SandboxError as err:
            trial_error = service_error(err)
        return render_template("self/apply.html", entry=entry, commitment=COMMITMENT_TEXT, error=None,
                               form=request.form, trial=trial, trial_error=trial_error)
    if request.method == "POST":
        body: dict[str, Any] = {
            "datasets": [entry["name"]], "scenario": request.form.get("scenario", ""),
            "purpose": request.form.get("purpose", ""),
            "commitment_accepted": request.form.get("commitment") == "1",
        }
        cols = request.form.getlist("columns")
        if cols:
            body["columns"] = {entry["name"]: cols}
        body["organisation"] = request.form.get("organisation", "")
        body["attachments"] = uploaded_files("attachments")  # issue 14 (第十五条)
        try:
            result = applications.submit(sandbox(), signed_in(), body)
        except SandboxError as err:
            error = service_error(err)
        else:
            flash(_("Application %(id)s submitted; the owner decides by %(due)s.", id=result["application_id"],
                    due=result["due_at"][:10]), "success")
            return redirect(url_for("self_service.my_applications"), code=303)
    return render_template("self/apply.html", entry=entry, commitment=COMMITMENT_TEXT, error=error,
                           form=request.form, trial=None, trial_error=None), (400 if error else 200)


def uploaded_files(field: str) -> list[dict[str, str]]:
    """The form's files as the service takes them; each read up to one byte past the limit (the
    service refuses what is over it, by size and by content)."""
    limit = attachments_service.public_objections.MAX_FILE_BYTES + 1
    return [{"name": f.filename or "attachment", "content_base64": base64.b64encode(f.stream.read(limit)).decode()}
            for f in request.files.getlist(field) if f and f.filename]


@bp.get("/attachments/<int:attachment_id>")
@role_required("researcher", "owner", "regulator", "admin")
def attachment(attachment_id: int):
    """Download an application's attachment or an objection's evidence (the parties only)."""

    try:
        return attachment_response(*attachments_service.read(sandbox(), signed_in(), attachment_id))
    except NotFound:
        abort(404)


@bp.get("/my/applications")
@role_required("researcher")
def my_applications():
    sb, user = sandbox(), signed_in()
    apps = list(reversed(applications.list_applications(sb, user)))
    grants = {a["approval_id"]: a for a in approvals.list_approvals(sb, user)}
    return render_template("self/applications.html", apps=apps, grants=grants)


@bp.post("/my/approvals/<int:approval_id>/request")
@role_required("researcher")
def request_change(approval_id: int):
    body: dict = {"kind": request.form.get("kind", ""), "reason": request.form.get("reason", "")}
    try:  # issue 14: the new terms asked for (optional: else the owner names them)
        if request.form.get("kind") == "budget" and request.form.get("epsilon_total", "").strip():
            body["epsilon_total"] = float(request.form["epsilon_total"])
    except ValueError:
        body["epsilon_total"] = request.form["epsilon_total"]  # refused by the service, with its reason
    if request.form.get("kind") == "extension" and request.form.get("expires", "").strip():
        body["expires"] = request.form["expires"]
    done, result = attempt(self_service.request_change, sandbox(), signed_in(), approval_id, body)
    if done:
        flash(_("Request submitted as application %(id)s.", id=result["application_id"]), "success")
    return redirect(url_for("self_service.my_applications"), code=303)


@bp.route("/my/tokens", methods=["GET", "POST"])
@role_required("researcher", "owner", "regulator", "admin")
def tokens():
    sb, user = sandbox(), signed_in()
    new = None
    if request.method == "POST":
        try:
            new = self_service.create_token(sb, user, {"name": request.form.get("name", "")})
        except SandboxError as err:
            flash_error(err)
    return render_template("self/tokens.html", tokens=self_service.list_tokens(sb, user), new=new)


@bp.post("/my/tokens/<int:token_id>/revoke")
@role_required("researcher", "owner", "regulator", "admin")
def revoke(token_id: int):
    try:
        self_service.revoke_token(sandbox(), signed_in(), token_id)
    except NotFound:
        abort(404)
    flash(_("Token revoked: it no longer works."), "success")
    return redirect(url_for("self_service.tokens"), code=303)
