"""Owner pages for datasets: register (upload + policy form), the risk report, publish, tiers.

Registering is two steps, so the owner declares each column with the file's columns in
front of them:

1. ``POST /owner/datasets/new`` with the file: it is parsed in memory (CSV in UTF-8, GBK
   or GB18030, .xlsx or Parquet, :mod:`sandbox.governance.file_readers`), a policy is drafted
   from it to pre-fill the form (:mod:`sandbox.web.console.policy_form`), and it is staged
   **encrypted** (:mod:`sandbox.web.console.upload_staging`).
2. ``POST /owner/datasets/new/policy``: the policy form becomes a TOML policy (or the
   owner pastes one), and ``SandboxAdmin.add_dataset`` validates, scans, stores and logs
   it — exactly the path of ``sandbox datasets add``. The staged file is deleted.

The new version is unpublished until the owner acknowledges its risk report
(``sandbox.governance.open_catalog.acknowledge_risk``). The dataset page also shows, and lets its owner
set, the collusion cap: the total privacy budget of all researchers together
(``sandbox.governance.dataset_caps``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from sandbox.errors import NotFound, PolicyError, SandboxError
from sandbox.governance import classification, dataset_caps, open_catalog
from sandbox.governance.policy import (
    COLUMN_TYPES,
    NAME_RE,
    SENSITIVITIES,
    TIERS,
    parse_policy,
)
from sandbox.service import bounding_report
from sandbox.service.operations import SandboxAdmin
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import attempt, service_error
from sandbox.web.console.labels import tier_label
from sandbox.web.console.policy_form import (
    FREQUENCIES,
    POLICY_PATH,
    describe,
    error_field,
    initial_form,
    policy_toml,
    read_table,
)
from sandbox.web.console.upload_staging import stage, staged, unstage

bp = Blueprint("owner_datasets", __name__, url_prefix="/owner/datasets")

UPLOAD_MAX: Final = 64 * 1024 * 1024


@bp.url_value_preprocessor
def _upload_limit(endpoint: str | None, _values: dict | None) -> None:
    """Runs before CSRF parsing reads the body: uploads may exceed the API's 1 MB limit."""
    if endpoint == "owner_datasets.upload":
        request.max_content_length = current_app.config.get("CONSOLE_UPLOAD_MAX", UPLOAD_MAX)


@bp.get("")
@role_required("owner")
def datasets():
    user = signed_in()
    entries = [e for e in open_catalog.list_entries(sandbox(), user) if e["owner"] == user.username]
    return render_template("owner/datasets.html", entries=entries)


# -- registering ------------------------------------------------------------------------------------
@bp.get("/new")
@role_required("owner")
def new():
    return render_template("owner/dataset_upload.html", error=None, name="")


@bp.post("/new")
@role_required("owner")
def upload():
    user = signed_in()
    name = request.form.get("name", "").strip()
    file = request.files.get("file")
    error = None
    if not NAME_RE.match(name):
        error = _("A dataset name is lower-case letters, digits and _, starting with a letter.")
    elif file is None or not file.filename:
        error = _("Choose a CSV or Parquet file.")
    if error is None:
        assert file is not None
        data = file.read()
        try:
            table = read_table(data, file.filename or "")
        except SandboxError as err:
            error = service_error(err)
        else:
            columns, draft = describe(table, name, user.username)
            token = stage(data, {"owner_id": user.id, "name": name, "filename": file.filename,
                                 "rows": table.num_rows, "columns": columns, "draft": draft})
            session["upload"] = token
            return redirect(url_for("owner_datasets.policy", token=token), code=303)
    return render_template("owner/dataset_upload.html", error=error, name=name), 400


def _policy_page(meta: dict[str, Any], token: str, form: dict[str, Any] | None, error: str | None = None,
                 field: str | None = None, status: int = 200):
    if form is None:
        form = initial_form(meta)
    return render_template("owner/dataset_policy.html", meta=meta, token=token, form=form, error=error,
                           field=field, tiers=TIERS, types=COLUMN_TYPES, sensitivities=SENSITIVITIES,
                           frequencies=FREQUENCIES), status


@bp.get("/new/<token>")
@role_required("owner")
def policy(token: str):
    found = staged(token, signed_in())
    if found is None:
        flash(_("The upload has expired or is not yours; upload the file again."), "error")
        return redirect(url_for("owner_datasets.new"))
    return _policy_page(found[0], token, None)


@bp.post("/new/<token>")
@role_required("owner")
def register(token: str):
    user = signed_in()
    found = staged(token, user)
    if found is None:
        flash(_("The upload has expired or is not yours; upload the file again."), "error")
        return redirect(url_for("owner_datasets.new"))
    meta, data = found
    form = request.form.to_dict()
    pasted = form.get("policy_text", "").strip()
    columns = [c["name"] for c in meta["columns"]]
    text = pasted + "\n" if pasted else policy_toml(request.form, columns, name=meta["name"], owner=user.username)
    path = "policy.toml" if pasted else POLICY_PATH
    try:
        if parse_policy(text, path).owner != user.username:
            # SECURITY: an owner registers data for themselves only, never in another's name.
            raise PolicyError(_("%(path)s: dataset.owner must be you (%(me)s).", path=path, me=user.username))
        table = read_table(data, meta["filename"], {c.name: c.type for c in parse_policy(text, path).columns.values()})
        version = SandboxAdmin(sandbox()).add_dataset(meta["name"], table, text, policy_path=path, actor=user)
    except SandboxError as err:
        message = err.message
        if not pasted:  # line numbers of the generated TOML mean nothing to the reader
            prefix = f"(?:{re.escape(POLICY_PATH)}|{re.escape(meta['name'])})"
            message = re.sub(rf"^{prefix}(:\d+)?: ", "", message)
        return _policy_page(meta, token, form, service_error(err, message), None if pasted else error_field(err.message), 400)
    unstage(token)
    flash(_("Registered %(name)s version %(version)s. Read the risk report, then acknowledge it to publish.",
            name=version.name, version=version.version), "success")
    return redirect(url_for("owner_datasets.dataset", name=version.name), code=303)


@bp.get("/<name>")
@role_required("owner", "regulator")


# -- the dataset page and its forms -------------------------------------------------------------------
def dataset(name: str):
    user = signed_in()
    try:
        entry = open_catalog.get_entry(sandbox(), user, name)
        risk = open_catalog.risk_report(sandbox(), user, name)
        cap = dataset_caps.read(sandbox(), user, name)
        bounds = bounding_report.read(sandbox(), user, name)  # PRIVACY: owner and regulator only
    except NotFound:
        abort(404)
    return render_template("owner/dataset.html", entry=entry, risk=risk, tiers=TIERS, error=None, cap=cap,
                           bounds=bounds)


@bp.post("/<name>/acknowledge")
@role_required("owner")
def acknowledge(name: str):
    user = signed_in()
    body: dict[str, Any] = {"note": request.form.get("note", ""),
                            "acknowledge_findings": request.form.get("acknowledge_findings", "")}
    if request.form.get("k_anonymity", "").strip().isdigit():
        body["k_anonymity"] = int(request.form["k_anonymity"])
    if request.form.get("version", "").isdigit():
        body["version"] = int(request.form["version"])
    if not request.form.get("confirm"):
        flash(_("Tick the box to confirm you have read the report."), "error")
        return redirect(url_for("owner_datasets.dataset", name=name), code=303)
    done, result = attempt(open_catalog.acknowledge_risk, sandbox(), user, name, body)
    if done:
        if result.get("published"):
            flash(_("%(name)s version %(version)s is published.", name=result["dataset"],
                    version=result["version"]), "success")
        else:  # issue 14: the regulator co-signs first
            flash(_("%(name)s version %(version)s is submitted for the regulator's co-signature (review %(id)s).",
                    name=result["dataset"], version=result["version"], id=result["review_id"]), "success")
            return redirect(url_for("reviews.detail", review_id=result["review_id"]), code=303)
    return redirect(url_for("owner_datasets.dataset", name=name), code=303)


@bp.post("/<name>/tier")
@role_required("owner")
def tier(name: str):
    body: dict[str, Any] = {k: request.form.get(k, "") for k in ("tier", "basis", "deidentification",
                                                                  "acknowledge_findings")}
    if request.form.get("k_anonymity", "").strip().isdigit():
        body["k_anonymity"] = int(request.form["k_anonymity"])
    done, result = attempt(open_catalog.change_tier, sandbox(), signed_in(), name, body)
    if done:
        if "review_id" in result:  # a raise: submitted for the regulator's co-signature (issue 14)
            flash(_("Submitted for the regulator's co-signature."), "success")
            return redirect(url_for("reviews.detail", review_id=result["review_id"]), code=303)
        flash(_("%(name)s is now %(tier)s.", name=result["dataset"], tier=tier_label(result["tier"])), "success")
    return redirect(url_for("owner_datasets.dataset", name=name), code=303)


def _number(raw: str) -> Any:
    """A form field as a number when it reads as one (else the service names the field)."""
    try:
        return float(raw.strip().replace("，", "").replace(",", ""))
    except ValueError:
        return raw


@bp.post("/<name>/classification")
@role_required("owner")
def classify(name: str):
    """第六条 分类分级: the dataset's category, grade and basis."""

    body = {k: request.form.get(k, "") for k in ("category", "grade", "basis")}
    if attempt(classification.set_classification, sandbox(), signed_in(), name, body)[0]:
        flash(_("The classification of %(name)s is recorded.", name=name), "success")
    return redirect(url_for("owner_datasets.dataset", name=name) + "#classification", code=303)


@bp.post("/<name>/legal-basis")
@role_required("owner")
def legal_basis(name: str):
    """第二十条: the legal basis or consent reference, required before personal information opens."""
    if attempt(open_catalog.set_legal_basis, sandbox(), signed_in(), name,
               {"legal_basis": request.form.get("legal_basis", "")})[0]:
        flash(_("The legal basis of %(name)s is recorded.", name=name), "success")
    return redirect(url_for("owner_datasets.dataset", name=name) + "#legal-basis", code=303)


@bp.post("/<name>/budget-cap")
@role_required("owner")
def budget_cap(name: str):
    body = {"epsilon_total": _number(request.form.get("epsilon_total", "")),
            "delta_total": _number(request.form.get("delta_total", "")),
            "reason": request.form.get("reason", "")}
    done, result = attempt(dataset_caps.set_cap, sandbox(), signed_in(), name, body)
    if done:
        flash(_("The total budget of %(name)s is now ε %(epsilon)s, δ %(delta)s.", name=result["dataset"],
                epsilon=f"{result['cap']['epsilon_total']:g}", delta=f"{result['cap']['delta_total']:g}"),
              "success")
    return redirect(url_for("owner_datasets.dataset", name=name) + "#budget-cap", code=303)
