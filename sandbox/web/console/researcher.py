"""Researcher pages: the SQL workbench, saved queries, query history with receipts, downloads.

``POST /query`` calls ``Sandbox.run_query`` — the same walk as ``POST /api/v1/queries``
(第九条: one channel) — and on success redirects to ``GET /query?result=<id>``, which shows
the release from the store (reloading never runs or charges anything again). A refusal is
shown at once with the offending part of the SQL marked. The page itself is built by
:mod:`sandbox.web.console.workbench`; the history pages (also the owner's and the
regulator's) show releases through :mod:`sandbox.web.console.results`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from sandbox.errors import SandboxError
from sandbox.service.accuracy import with_confidence, without_state
from sandbox.service.pipeline import QueryRequest
from sandbox.service.preview import PreviewRequest, preview_query
from sandbox.store import request_limits, saved_queries
from sandbox.web.console import downloads, refusals, workbench
from sandbox.web.console import editor as console_editor
from sandbox.web.console import queries as console_queries
from sandbox.web.console import sql as console_sql
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.results import result_view

bp = Blueprint("researcher", __name__)


# -- the workbench ---------------------------------------------------------------------------------
@bp.get("/query")
@role_required("researcher")
def query():
    user = signed_in()
    result, sql = None, request.args.get("sql", workbench.DEFAULT_SQL)
    approval_raw = request.args.get("approval")
    epsilon = request.args.get("epsilon")
    result_id = request.args.get("result")
    opened = request.args.get("open")  # a past query (released or refused) back in the editor
    saved_id = request.args.get("saved")
    if opened:
        record = console_queries.get_query(sandbox().conn(), user, opened)
        if record is None:
            abort(404)
        sql, approval_raw = record.sql, approval_raw or (str(record.approval_id) if record.approval_id else None)
        epsilon = epsilon or f"{record.epsilon:g}"
    elif saved_id:
        try:
            item = saved_queries.get_saved(sandbox().conn(), user, _int_arg(saved_id))
        except SandboxError:
            abort(404)
        sql = item.sql
        approval_raw = approval_raw or (str(item.approval_id) if item.approval_id else None)
    if result_id:
        record = console_queries.get_query(sandbox().conn(), user, result_id)
        if record is None or record.response is None:
            abort(404)
        result, sql = record.response, record.sql
        approval_raw = approval_raw or str(record.approval_id)
        epsilon = epsilon or f"{record.epsilon:g}"
        confidence = _confidence_arg(request.args.get("confidence"))
        # A cached release asked for at another confidence: the same noisy values with
        # intervals recomputed from the stored state (free post-processing, issue 13).
        result = with_confidence(result, confidence) if confidence is not None else without_state(result)
    if epsilon is None:
        epsilon = workbench.default_epsilon(workbench.pick(workbench.approvals_of(user), approval_raw))
    shown = next((a.get("confidence") for a in (result or {}).get("accuracy", {}).values()), None)
    return workbench.render(approval_raw=approval_raw, sql=sql, epsilon=epsilon,
                            confidence=request.args.get("confidence") or (f"{shown:g}" if shown else "0.95"),
                            result=result, cached=request.args.get("cached") == "1")


def _int_arg(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else -1


def _confidence_arg(raw: str | None) -> float | None:
    """The ``confidence`` of a result link, when it is one the service accepts; else None."""
    try:
        return request_limits.confidence(float(raw)) if raw and raw.isascii() and len(raw) <= 20 else None
    except (ValueError, SandboxError):
        return None


def _form_request() -> dict[str, Any]:
    """The workbench form: its raw fields, with ε and the confidence read as numbers where
    they are numbers. Nothing is refused here: the service checks the ranges
    (``sandbox.store.request_limits``) and logs every refusal, as for the API."""
    raw: dict[str, Any] = {"sql": request.form.get("sql", ""), "approval_raw": request.form.get("approval_id") or None,
           "epsilon": request.form.get("epsilon", "").strip(), "confidence": request.form.get("confidence", "0.95")}
    raw["eps"] = _number_or_text(raw["epsilon"]) if raw["epsilon"] else None
    raw["conf"] = _number_or_text(raw["confidence"])
    return raw


def _number_or_text(text: str) -> float | str:
    """A form field as a float when it reads as one, else the text (refused downstream)."""
    try:
        return float(text) if text.isascii() and len(text) <= 40 else text
    except ValueError:
        return text


@bp.post("/query")
@role_required("researcher")
def run():
    raw = _form_request()
    try:
        # the service runs the after-query hooks (alerts: budget levels, refusal bursts, patterns)
        response = sandbox().run_query(signed_in(), QueryRequest(raw["approval_raw"], raw["sql"], raw["eps"],
                                                                    raw["conf"]))
    except SandboxError as err:
        error = refusals.refusal(err)
    else:
        params = {"approval": raw["approval_raw"], "result": response["query_id"]}
        if response.get("cached"):
            params["cached"] = "1"
            shown = next((a.get("confidence") for a in response.get("accuracy", {}).values()), None)
            if shown is not None:
                params["confidence"] = f"{shown:g}"  # the release at the confidence asked for
        return redirect(url_for("researcher.query", **params), code=303)
    return workbench.render(approval_raw=raw["approval_raw"], sql=raw["sql"], epsilon=raw["epsilon"],
                            confidence=raw["confidence"], error=error, status=400)


@bp.post("/query/preview")
@role_required("researcher")
def preview_cost():
    """The cost and expected accuracy of the query, without running it or spending anything."""
    if not workbench.preview_available():
        abort(404)

    raw = _form_request()
    estimate, error = None, None
    try:
        estimate = preview_query(sandbox(), signed_in(),
                                 PreviewRequest(raw["approval_raw"], raw["sql"], raw["eps"], raw["conf"]))
    except SandboxError as err:
        error = refusals.refusal(err)
    return workbench.render(approval_raw=raw["approval_raw"], sql=raw["sql"], epsilon=raw["epsilon"],
                            confidence=raw["confidence"], error=error, estimate=estimate, status=400 if error else 200)


@bp.post("/query/format")
@role_required("researcher")
def format_query():
    """The SQL pretty-printed by sqlglot; nothing is run, charged or logged. Text that does
    not parse comes back unchanged with the parser's message (input is never lost)."""
    raw = _form_request()
    formatted = console_editor.format_sql(raw["sql"])
    return workbench.render(approval_raw=raw["approval_raw"], sql=formatted.sql, epsilon=raw["epsilon"],
                            confidence=raw["confidence"],
                            notice=formatted.error or (_("Formatted.") if raw["sql"].strip() else _("There is no SQL to format.")))


@bp.post("/query/save")
@role_required("researcher")
def save_query():
    raw = _form_request()
    name = request.form.get("save_name", "")
    approval_id = _int_arg(raw["approval_raw"] or "")
    try:
        item = saved_queries.save(sandbox(), signed_in(), name, raw["sql"], approval_id if approval_id > 0 else None)
    except SandboxError as err:
        return workbench.render(approval_raw=raw["approval_raw"], sql=raw["sql"], epsilon=raw["epsilon"],
                                confidence=raw["confidence"], save_name=name, save_error=refusals.save_error(err),
                                status=400)
    flash(_("Saved as “%(name)s”.", name=item.name), "ok")
    return redirect(url_for("researcher.query", approval=raw["approval_raw"], saved=item.id), code=303)


@bp.post("/query/saved/<int:ident>/delete")
@role_required("researcher")
def delete_saved(ident: int):
    try:
        saved_queries.delete(sandbox(), signed_in(), ident)
    except SandboxError:
        abort(404)
    flash(_("The saved query was deleted."), "ok")
    return redirect(url_for("researcher.query", approval=request.form.get("approval_id") or None), code=303)


# -- history and downloads ------------------------------------------------------------------------
@bp.get("/history")
@role_required("researcher", "owner", "regulator")
def history():
    user = signed_in()
    status = request.args.get("status") or None
    if status not in (None, "released", "refused", "failed"):
        status = None
    raw_approval = request.args.get("approval") or ""
    approval_id = int(raw_approval) if raw_approval.isascii() and raw_approval.isdigit() and len(raw_approval) <= 18 \
        else None
    records = console_queries.query_history(sandbox().conn(), user, approval_id=approval_id, status=status,
                                            before=request.args.get("before") or None)
    return render_template("researcher/history.html", records=records, status=status, approval_id=approval_id,
                           highlight=lambda s: console_sql.highlight(s),
                           page_size=console_queries.HISTORY_PAGE)


def _download(query_id: str, render: Callable[[Any], str | bytes], mimetype: str, suffix: str) -> Response:
    """A released query as a file to save, never to render (a refused or unknown one: 404)."""
    record = console_queries.get_query(sandbox().conn(), signed_in(), query_id)
    if record is None or record.response is None:
        abort(404)
    return Response(render(record), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{record.id}{suffix}"'})


@bp.get("/history/<query_id>")
@role_required("researcher", "owner", "regulator")
def release(query_id: str):
    record = console_queries.get_query(sandbox().conn(), signed_in(), query_id)
    if record is None:
        abort(404)
    return render_template("researcher/release.html", record=record,
                           view=result_view(record.response) if record.response else None,
                           sql_html=console_sql.highlight(record.sql),
                           receipt_json=json.dumps(record.receipt, indent=2) if record.receipt else None)


@bp.get("/history/<query_id>.csv")
@role_required("researcher", "owner", "regulator")
def release_csv(query_id: str):
    return _download(query_id, downloads.release_csv, "text/csv; charset=utf-8", ".csv")


@bp.get("/history/<query_id>.xlsx")
@role_required("researcher", "owner", "regulator")
def release_xlsx(query_id: str):
    """The same cells as the CSV (released values and their intervals, nothing else), as an
    Excel workbook, with a second sheet naming the release: its SQL, ε, receipt."""
    return _download(query_id, downloads.release_xlsx,
                     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx")


@bp.get("/history/<query_id>/receipt.json")
@role_required("researcher", "owner", "regulator")
def receipt(query_id: str):
    return _download(query_id, downloads.receipt_json, "application/json", ".receipt.json")

