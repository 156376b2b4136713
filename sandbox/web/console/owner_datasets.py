"""Owner pages for datasets: register (upload + policy form), the risk report, publish.

Registering is two steps, so the owner declares each column with the file's columns in
front of them:

1. ``POST /owner/datasets/new`` with the file: it is parsed in memory (CSV in UTF-8, GBK
   or GB18030, .xlsx or Parquet, :mod:`sandbox.governance.file_readers`), a policy is drafted from it
   (:mod:`sandbox.service.policy_draft`, as ``sandbox datasets draft``: types, bounds, public values,
   identifier guesses from the risk scan, 第十二条) to pre-fill the form, and it is staged **encrypted** (a fresh
   data key wrapped by the workspace master key, as registered data is) under
   ``console-uploads/`` for at most :data:`STAGING_TTL`.
2. ``POST /owner/datasets/new/policy``: the policy form becomes a TOML policy (or the
   owner pastes one), and ``SandboxAdmin.add_dataset`` validates, scans, stores and logs
   it — exactly the path of ``sandbox datasets add``. The staged file is deleted.

The new version is unpublished until the owner acknowledges its risk report
(``sandbox.governance.open_catalog.acknowledge_risk``). The dataset page also shows, and lets its owner
set, the collusion cap: the total privacy budget of all researchers together
(``sandbox.governance.dataset_caps``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
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

import keys
from sandbox.clock import iso, parse_iso
from sandbox.errors import NotFound, PolicyError, SandboxError
from sandbox.governance import (
    classification,
    dataset_caps,
    file_readers,
    open_catalog,
    risk_scan,
)
from sandbox.governance.policy import (
    COLUMN_NAME_RE,
    COLUMN_TYPES,
    NAME_RE,
    SENSITIVITIES,
    TIERS,
    parse_policy,
)
from sandbox.service import bounding_report, policy_draft
from sandbox.service.operations import SandboxAdmin
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import flash_error, service_error
from sandbox.web.console.labels import tier_label

bp = Blueprint("owner_datasets", __name__, url_prefix="/owner/datasets")

UPLOAD_MAX: Final = 64 * 1024 * 1024
STAGING_TTL: Final = dt.timedelta(hours=1)
STAGING_DIR: Final = "console-uploads"
TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
FREQUENCIES: Final = ("daily", "weekly", "monthly", "quarterly", "yearly", "irregular")
POLICY_PATH: Final = "policy form"
SCAN_ROWS: Final = 20_000


@bp.url_value_preprocessor
def _upload_limit(endpoint: str | None, _values: dict | None) -> None:
    """Runs before CSRF parsing reads the body: uploads may exceed the API's 1 MB limit."""
    if endpoint == "owner_datasets.upload":
        request.max_content_length = current_app.config.get("CONSOLE_UPLOAD_MAX", UPLOAD_MAX)


# -- staging ---------------------------------------------------------------------------------------
def _staging() -> Path:
    path = sandbox().ws.root / STAGING_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _aad(token: str) -> bytes:
    return f"data-sandbox:console-upload:{token}".encode()


def _sweep(now: dt.datetime) -> None:
    for meta in _staging().glob("*.json"):
        try:
            created = parse_iso(json.loads(meta.read_text())["created_at"])
        except (OSError, ValueError, KeyError):
            created = now - 2 * STAGING_TTL
        if created + STAGING_TTL <= now:
            meta.with_suffix(".bin").unlink(missing_ok=True)
            meta.unlink(missing_ok=True)


def stage(data: bytes, meta: dict[str, Any]) -> str:
    sb = sandbox()
    _sweep(sb.now())
    token = secrets.token_urlsafe(24)
    data_key, wrapped = sb.keyring.new_data_key()
    (_staging() / f"{token}.bin").write_bytes(keys.encrypt_blob(data_key, data, _aad(token)))
    meta = {**meta, "wrapped": base64.b64encode(wrapped).decode(), "created_at": iso(sb.now())}
    (_staging() / f"{token}.json").write_text(json.dumps(meta, ensure_ascii=False))
    return token


def staged(token: str | None, user) -> tuple[dict[str, Any], bytes] | None:
    """The staged upload if it is this user's (the token is also bound to their session)."""
    if not token or not TOKEN_RE.match(token) or session.get("upload") != token:
        return None
    meta_path = _staging() / f"{token}.json"
    try:
        meta = json.loads(meta_path.read_text())
        blob = meta_path.with_suffix(".bin").read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("owner_id") != user.id or parse_iso(meta["created_at"]) + STAGING_TTL <= sandbox().now():
        return None
    data_key = sandbox().keyring.unwrap_data_key(base64.b64decode(meta["wrapped"]))
    return meta, keys.decrypt_blob(data_key, blob, _aad(token))


def unstage(token: str) -> None:
    if TOKEN_RE.match(token):
        (_staging() / f"{token}.bin").unlink(missing_ok=True)
        (_staging() / f"{token}.json").unlink(missing_ok=True)
    session.pop("upload", None)


# -- reading and describing the file ---------------------------------------------------------------
def read_table(data: bytes, filename: str, types: dict[str, str] | None = None) -> pa.Table:
    """A data file from memory (CSV in UTF-8/GBK/GB18030, .xlsx, Parquet), like
    ``datasets.read_data_file`` but never touching disk; cells read as the policy's ``types``."""
    return file_readers.read_bytes(data, filename, types=types)


def describe(table: pa.Table, name: str, owner: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each column with its drafted type, sensitivity, bounds and public values
    (:mod:`sandbox.service.policy_draft`, the same draft as ``sandbox datasets draft``), and the draft."""
    draft = policy_draft.draft_policy(table, name=name, owner=owner)
    out = []
    for col in draft.columns:
        findings = risk_scan.scan_column(col.name, table.column(col.name), "sensitive", sample_rows=SCAN_ROWS)
        out.append({
            "name": col.name, "arrow_type": str(table.schema.field(col.name).type), "type": col.type,
            "sensitivity": col.sensitivity, "findings": sorted({f.kind for f in findings}),
            "valid_name": bool(COLUMN_NAME_RE.match(col.name)),
            "low": "" if col.bounds is None else str(col.bounds[0]),
            "high": "" if col.bounds is None else str(col.bounds[1]),
            "public_values": "\n".join(str(v) for v in col.public_values or ()), "notes": list(col.notes),
        })
    summary = {"privacy_unit": draft.privacy_unit, "one_row_per_unit": draft.one_row_per_unit,
               "max_partitions": draft.max_partitions, "max_rows_per_partition": draft.max_rows_per_partition,
               "toml": draft.toml()}
    return out, summary


# -- the policy form → TOML ------------------------------------------------------------------------
def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_scalar(raw: str, ctype: str) -> str:
    text = raw.strip()
    if ctype in ("int", "float"):
        try:
            number = int(text) if ctype == "int" and re.fullmatch(r"[-+]?\d+", text) else float(text)
        except ValueError:
            return _toml_str(text)  # parse_policy then names the field: "is not a number"
        return repr(number) if isinstance(number, float) else str(number)
    return _toml_str(text)


def split_values(raw: str) -> list[str]:
    """Public values: one per line, or separated by commas (also ， and 、)."""
    return [v.strip() for v in re.split(r"[\n,，、]", raw or "") if v.strip()]


def policy_toml(form, columns: list[str], *, name: str, owner: str) -> str:
    lines = ["[dataset]", f"name = {_toml_str(name)}"]
    for key in ("title", "title_zh", "description"):
        if form.get(key, "").strip() or key == "title":
            lines.append(f"{key} = {_toml_str(form.get(key, '').strip())}")
    lines += [f"owner = {_toml_str(owner)}", f"tier = {_toml_str(form.get('tier', ''))}",
              f"privacy_unit = {_toml_str(form.get('privacy_unit', ''))}",
              f"update_frequency = {_toml_str(form.get('update_frequency', 'irregular'))}",
              f"one_row_per_unit = {'true' if form.get('one_row_per_unit') else 'false'}"]
    for key in ("max_partitions", "max_rows_per_partition"):
        lines.append(f"{key} = {_toml_scalar(form.get(key, '1') or '1', 'int')}")
    for col in columns:
        ctype = form.get(f"col:{col}:type", "text")
        key = col if re.fullmatch(r"[A-Za-z0-9_-]+", col) else _toml_str(col)  # 区县 is quoted in TOML
        lines += ["", f"[columns.{key}]", f"type = {_toml_str(ctype)}",
                  f"sensitivity = {_toml_str(form.get(f'col:{col}:sensitivity', 'sensitive'))}"]
        lo, hi = form.get(f"col:{col}:low", "").strip(), form.get(f"col:{col}:high", "").strip()
        if lo or hi:
            lines.append(f"bounds = [{_toml_scalar(lo, ctype)}, {_toml_scalar(hi, ctype)}]")
        values = split_values(form.get(f"col:{col}:public_values", ""))
        if values:
            lines.append("public_values = [" + ", ".join(_toml_scalar(v, ctype) for v in values) + "]")
        if form.get(f"col:{col}:unit", "").strip():  # "元", "岁"; the policy checks it
            lines.append(f"unit = {_toml_str(form.get(f'col:{col}:unit', '').strip())}")
        if form.get(f"col:{col}:description", "").strip():
            lines.append(f"description = {_toml_str(form.get(f'col:{col}:description', '').strip())}")
    return "\n".join(lines) + "\n"


FIELD_RE: Final = re.compile(r"\b(dataset\.(\w+)|columns\.(\w+)(?:\.(\w+))?)\b")


def error_field(message: str) -> str | None:
    """The form field a policy refusal names (``columns.age.bounds`` → ``col:age:low``)."""
    m = FIELD_RE.search(message)
    if not m:
        return None
    if m.group(2):
        return m.group(2)
    col, key = m.group(3), m.group(4) or "type"
    return f"col:{col}:{'low' if key == 'bounds' else key}"


# -- views -----------------------------------------------------------------------------------------
@bp.get("")
@role_required("owner")
def datasets():
    user = signed_in()
    entries = [e for e in open_catalog.list_entries(sandbox(), user) if e["owner"] == user.username]
    return render_template("owner/datasets.html", entries=entries)


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
        unit = next((c["name"] for c in meta["columns"] if c["name"] in ("person_id", "unit_id")
                     or c["name"].endswith("_id")), meta["columns"][0]["name"] if meta["columns"] else "")
        form = {"title": "", "title_zh": "", "description": "", "tier": "conditional", "privacy_unit": unit,
                "update_frequency": "monthly", "one_row_per_unit": "", "max_partitions": "1",
                "max_rows_per_partition": "1", "policy_text": ""}
        draft = meta.get("draft") or {}
        if draft:  # the draft's suggestions (policy_draft), for the owner to review
            form.update(privacy_unit=draft["privacy_unit"], one_row_per_unit="1" if draft["one_row_per_unit"] else "",
                        max_partitions=str(draft["max_partitions"]),
                        max_rows_per_partition=str(draft["max_rows_per_partition"]))
        for c in meta["columns"]:
            for key in ("type", "sensitivity", "low", "high", "public_values"):
                form[f"col:{c['name']}:{key}"] = c.get(key, "")
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
    try:
        result = open_catalog.acknowledge_risk(sandbox(), user, name, body)
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash_error(err)
    else:
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
    try:
        result = open_catalog.change_tier(sandbox(), signed_in(), name, body)
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash_error(err)
    else:
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
    try:
        classification.set_classification(sandbox(), signed_in(), name, body)
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash_error(err)
    else:
        flash(_("The classification of %(name)s is recorded.", name=name), "success")
    return redirect(url_for("owner_datasets.dataset", name=name) + "#classification", code=303)


@bp.post("/<name>/legal-basis")
@role_required("owner")
def legal_basis(name: str):
    """第二十条: the legal basis or consent reference, required before personal information opens."""
    try:
        open_catalog.set_legal_basis(sandbox(), signed_in(), name, {"legal_basis": request.form.get("legal_basis", "")})
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash_error(err)
    else:
        flash(_("The legal basis of %(name)s is recorded.", name=name), "success")
    return redirect(url_for("owner_datasets.dataset", name=name) + "#legal-basis", code=303)


@bp.post("/<name>/budget-cap")
@role_required("owner")
def budget_cap(name: str):
    body = {"epsilon_total": _number(request.form.get("epsilon_total", "")),
            "delta_total": _number(request.form.get("delta_total", "")),
            "reason": request.form.get("reason", "")}
    try:
        result = dataset_caps.set_cap(sandbox(), signed_in(), name, body)
    except NotFound:
        abort(404)
    except SandboxError as err:
        flash_error(err)
    else:
        flash(_("The total budget of %(name)s is now ε %(epsilon)s, δ %(delta)s.", name=result["dataset"],
                epsilon=f"{result['cap']['epsilon_total']:g}", delta=f"{result['cap']['delta_total']:g}"),
              "success")
    return redirect(url_for("owner_datasets.dataset", name=name) + "#budget-cap", code=303)
