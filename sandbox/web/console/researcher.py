"""Researcher pages: the SQL workbench, query history with receipts, CSV of releases.

``POST /query`` calls ``Sandbox.run_query`` — the same walk as ``POST /api/v1/queries``
(第九条: one channel) — and on success redirects to ``GET /query?result=<id>``, which shows
the release from the store (reloading never runs or charges anything again). A refusal is
shown at once with the offending part of the SQL marked.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
from typing import Any, Final

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from sandbox.clock import iso
from sandbox.errors import SandboxError
from sandbox.governance import applications
from sandbox.governance import open_catalog as catalog
from sandbox.service import operations
from sandbox.service.accuracy import with_confidence, without_state
from sandbox.service.pipeline import QueryRequest
from sandbox.service.preview import PreviewRequest, preview_query
from sandbox.store import request_limits, saved_queries
from sandbox.web import i18n
from sandbox.web.console import charts as console_charts
from sandbox.web.console import editor as console_editor
from sandbox.web.console import labels as console_labels
from sandbox.web.console import plots as console_plots
from sandbox.web.console import preview as console_preview
from sandbox.web.console import queries as console_queries
from sandbox.web.console import sql as console_sql
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import sentence

bp = Blueprint("researcher", __name__)

DEFAULT_SQL: Final = "SELECT district, COUNT(*) AS people\nFROM residents\nGROUP BY district"
CONFIDENCES: Final = (0.9, 0.95, 0.99)


def preview_available() -> bool:
    """Cost preview needs ``sandbox.service.preview`` (issue 4); without it the button is hidden."""
    return importlib.util.find_spec("sandbox.service.preview") is not None


# -- view models ---------------------------------------------------------------------------------
def schema_for(approval: dict[str, Any] | None, user) -> list[dict[str, Any]]:
    """Datasets of the approval with each column's type, bounds, public values and whether
    this approval lets it be used (identifiers never; the privacy unit only to count people)."""
    if approval is None:
        return []
    scope = approval["scope"]
    wanted = [d.lower() for d in scope.get("datasets", [])]
    allowed_cols = {k.lower(): {c.lower() for c in v} for k, v in (scope.get("columns") or {}).items()}
    group_by = {k.lower(): {c.lower() for c in v} for k, v in (scope.get("group_by") or {}).items()}
    titles = {e["name"]: e.get("title_zh", "") for e in catalog.list_entries(sandbox(), user)}
    out = []
    for ds in operations.list_datasets(sandbox(), user):
        if ds["name"] not in wanted:
            continue
        cols = []
        for c in ds["columns"]:
            if c["sensitivity"] == "identifier":
                status = "identifier"
            elif c["name"] == ds["privacy_unit"]:
                status = "unit"
            elif ds["name"] in allowed_cols and c["name"] not in allowed_cols[ds["name"]]:
                status = "outside"
            else:
                status = "allowed"
            cols.append({**c, "status": status,
                         "group_key": status == "allowed" and (ds["name"] not in group_by
                                                               or c["name"] in group_by[ds["name"]])})
        out.append({**ds, "columns": cols, "title_zh": titles.get(ds["name"], "")})
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def result_view(response: dict[str, Any]) -> dict[str, Any]:
    """Table cells with their intervals as ``[lower, upper]`` (never "±": intervals are
    clipped to the bounds, so often lopsided) and a "not informative" badge where the API
    flags one, and one bar chart per released numeric column."""
    columns: list[str] = response.get("columns") or []
    rows: list[list[Any]] = response.get("rows") or []
    accuracy: dict[str, Any] = response.get("accuracy") or {}
    confidence = next((a.get("confidence") for a in accuracy.values()), 0.95)
    table = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in zip(columns, row, strict=False):
            iv, flag = None, False
            if c in accuracy:
                ivs = accuracy[c].get("intervals") or []
                iv = ivs[r] if r < len(ivs) else None
                flags = accuracy[c].get("not_informative") or []
                flag = bool(flags[r]) if r < len(flags) else False
            cells.append({"value": value, "text": console_charts.fmt(value) if _is_number(value) else value,
                          "numeric": _is_number(value), "interval": iv,
                          "interval_text": _interval_text(iv), "not_informative": flag})
        table.append(cells)
    keys = [i for i, c in enumerate(columns) if c not in accuracy]
    measures = [i for i, c in enumerate(columns) if c in accuracy and any(_is_number(row[i]) for row in rows)]
    charts = []
    pct = round(100 * float(confidence))
    # The chart that fits the data (console_plots): a line with its band over a date or
    # number key, grouped bars for two keys, horizontal bars otherwise.
    kind = console_plots.chart_kind([[row[k] for row in rows] for k in keys])
    for i in measures:
        name = columns[i]
        values = [row[i] if _is_number(row[i]) else None for row in rows]
        ivs = (accuracy[name].get("intervals") or [None] * len(rows))
        title = _("%(column)s with %(pct)d%% confidence intervals", column=name, pct=pct)
        if kind == "line":
            svg = console_plots.line_band([row[keys[0]] for row in rows], values, ivs, title=title,
                                          desc=_("A line through the released values; the shaded band: "
                                                 "confidence intervals."))
            caption = _("line: released values; band: %(pct)s%% confidence intervals", pct=pct)
        elif kind == "grouped":
            svg = console_plots.grouped_bars([row[keys[0]] for row in rows], [row[keys[1]] for row in rows],
                                             values, ivs, title=title,
                                             desc=_("Bars grouped by %(first)s, one colour per %(second)s; "
                                                    "whiskers: confidence intervals.", first=columns[keys[0]],
                                                    second=columns[keys[1]]))
            caption = _("bars by %(first)s and %(second)s; whiskers: %(pct)s%% confidence intervals",
                        first=columns[keys[0]], second=columns[keys[1]], pct=pct)
        else:
            labels = [" · ".join(str(row[k]) for k in keys) if keys else f"#{n + 1}" for n, row in enumerate(rows)]
            svg = console_charts.bar_chart(
                labels, values, ivs, title=title,
                desc=_("Horizontal bars: released values; whiskers: confidence intervals."),
            )
            caption = _("bars: released values; whiskers: %(pct)s%% confidence intervals", pct=pct)
        charts.append({"column": name, "svg": svg, "kind": kind, "caption": caption})
    return {"columns": columns, "table": table, "charts": charts, "confidence_pct": pct,
            "methods": {c: a.get("method", "") for c, a in accuracy.items()},
            "any_not_informative": any(cell["not_informative"] for row in table for cell in row),
            "has_intervals": bool(accuracy)}


def _interval_text(iv: Any) -> str | None:
    """``[lower, upper]`` as shown; an open end (no finite bound) as −∞ / ∞."""
    if not isinstance(iv, list | tuple) or len(iv) != 2:
        return None
    lo = console_charts.fmt(iv[0]) if _is_number(iv[0]) else "−∞"
    hi = console_charts.fmt(iv[1]) if _is_number(iv[1]) else "∞"
    return f"[{lo}, {hi}]"


def budget_view(approval: dict[str, Any] | None) -> dict[str, Any] | None:
    """Spent and left now, and ε left over time from the ledger."""
    if approval is None:
        return None
    approval_id = approval["approval_id"]
    try:
        budget = sandbox().budget(signed_in(), approval_id)
    except SandboxError:
        return None
    eps = budget["epsilon"]
    series = console_queries.ledger_series(sandbox().conn(), [approval_id])[approval_id]
    title = _("ε spent %(spent)s of %(total)s", spent=console_charts.fmt(eps["spent"]),
              total=console_charts.fmt(eps["total"]))
    return {
        **budget,
        "meter": console_charts.meter(eps["spent"], eps["total"], title=title),
        "share_left": 0 if eps["total"] <= 0 else round(100 * eps["remaining"] / eps["total"]),
        "sparkline": console_charts.remaining_sparkline(
            approval["created_at"], iso(sandbox().now()), eps["total"], [(t, cum) for t, _e, cum in series],
            title=_("ε left over time"), desc=_("The budget left after each charge, since the approval was granted."),
        ),
        "charges": len(series),
    }


def _approvals(user) -> list[dict[str, Any]]:
    return applications.list_approvals(sandbox(), user)


def _pick(approvals: list[dict[str, Any]], raw: str | None) -> dict[str, Any] | None:
    """The approval asked for, or by default the newest active one (else the newest)."""
    if raw is not None:
        return next((a for a in approvals if str(a["approval_id"]) == str(raw)), None)
    active = [a for a in approvals if a["status"] == "active"]
    candidates = active or approvals
    return candidates[-1] if candidates else None


def _workbench(*, approval_raw: str | None, sql: str, epsilon: str, confidence: str,
               result: dict[str, Any] | None = None, cached: bool = False, error: dict[str, Any] | None = None,
               estimate: dict[str, Any] | None = None, status: int = 200, notice: str | None = None,
               save_name: str = "", save_error: str | None = None):
    user = signed_in()
    approvals = _approvals(user)
    approval = _pick(approvals, approval_raw)
    if approval is None and approval_raw is not None and approvals:
        # An approval id that is not one of this researcher's (or mistyped): say so, and
        # open the default one rather than a page claiming there is no approval at all.
        notice = _("Approval #%(id)s is not one of yours; showing your current approval.", id=approval_raw[:20])
        approval = _pick(approvals, None)
    schema = schema_for(approval, user)
    tables = [d["name"] for d in schema]
    columns = sorted({c["name"] for d in schema for c in d["columns"]})
    if error and error.get("position"):
        pos = error["position"]
        error["sql_html"] = console_sql.highlight(sql, tables=tables, columns=columns,
                                                  error=(pos.get("line"), pos.get("column")))
    recent = console_queries.query_history(sandbox().conn(), user, limit=8)
    return render_template(
        "researcher/query.html", approvals=approvals, approval=approval, schema=schema, sql=sql,
        notice=notice, save_name=save_name, save_error=save_error,
        saved=saved_queries.list_saved(sandbox().conn(), user),
        editor_schema=console_editor.schema_json(schema, zh=i18n_zh()),
        editor_functions=console_editor.functions_for(approval), preview_words=console_preview.preview_words,
        epsilon=epsilon, confidence=confidence, confidences=CONFIDENCES, result=result,
        view=result_view(result) if result else None, cached=cached, error=error,
        budget=budget_view(approval), recent=recent,
        tables=tables, columns=columns, preview=preview_available(), estimate=estimate,
        highlight=lambda s: console_sql.highlight(s, tables=tables, columns=columns),
    ), status


def _default_epsilon(approval: dict[str, Any] | None) -> str:
    if approval is None:
        return "0.5"
    return f"{min(0.5, float(approval['epsilon_per_query'])):g}"


@bp.get("/query")
@role_required("researcher")
def query():
    user = signed_in()
    result, sql = None, request.args.get("sql", DEFAULT_SQL)
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
        epsilon = _default_epsilon(_pick(_approvals(user), approval_raw))
    shown = next((a.get("confidence") for a in (result or {}).get("accuracy", {}).values()), None)
    return _workbench(approval_raw=approval_raw, sql=sql, epsilon=epsilon,
                      confidence=request.args.get("confidence") or (f"{shown:g}" if shown else "0.95"),
                      result=result, cached=request.args.get("cached") == "1")


def _int_arg(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else -1


def i18n_zh() -> bool:
    return i18n.current() == "zh_CN"


def _save_error(err: SandboxError) -> str:
    """The rule a refused save broke, in the reader's language."""
    messages = {
        "saved_query_name_required": _("Give the query a name to save it."),
        "saved_query_name_too_long": _("The name is longer than %(n)s characters.", n=saved_queries.MAX_NAME),
        "saved_query_sql_required": _("There is no SQL to save."),
        "saved_query_too_long": _("The SQL is longer than %(n)s characters.", n=f"{saved_queries.MAX_SQL:,}"),
        "saved_query_limit": _("You have %(n)s saved queries, the most allowed; delete one first.",
                               n=saved_queries.MAX_PER_USER),
    }
    return messages.get(err.code) or sentence(err)


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


#: What a refusal means, in the reader's language (the service's own message, English with
#: the article it cites, stays available beside it: issue 15, "refusal details in English").
REFUSAL_EXPLANATIONS: Final = {
    "out_of_scope": _l("The query uses a dataset or column this approval does not cover (Art. 15). Use only what "
                       "the schema panel lists as usable."),
    "identifier_column": _l("Identifier columns (names, ID numbers, phone numbers) can never be used, not even in "
                            "a filter (Art. 20)."),
    "row_level_output": _l("Only aggregates are released: every output column must be an aggregate (COUNT, SUM, "
                           "AVG …) or a group key."),
    "unbounded": _l("The sandbox must know the range of every value it adds up or averages: use a column with "
                    "declared bounds, or clamp it with LEAST and GREATEST."),
    "too_complex": _l("The query has too many parts for one release; split or simplify it."),
    "sql_syntax": _l("The SQL could not be read; the mark shows where reading stopped."),
    "not_allowed": _l("This SQL construct is outside what the guard allows: one SELECT with aggregates and the "
                      "functions the editor offers."),
    "budget_exceeded": _l("This approval has too little privacy budget left for this ε: lower ε (wider intervals) "
                          "or ask the data owner for more."),
    "suspended": _l("Access under this approval is suspended (Art. 22); the Suspensions page says why."),
    "expired": _l("This approval has expired; apply for a new one."),
    "bad_epsilon": _l("ε must be a number above zero and at most this approval's limit per query."),
    "missing_sql": _l("Write a query in the editor first."),
}


def _refusal(err: SandboxError) -> dict[str, Any]:
    explanation = REFUSAL_EXPLANATIONS.get(err.code)
    return {"code": err.code, "message": err.message, "position": getattr(err, "position", None),
            "explanation": str(explanation) if explanation is not None else
            _("The service's message below names the rule that was broken.")}


@bp.post("/query")
@role_required("researcher")
def run():
    raw = _form_request()
    try:
        # the service runs the after-query hooks (alerts: budget levels, refusal bursts, patterns)
        response = sandbox().run_query(signed_in(), QueryRequest(raw["approval_raw"], raw["sql"], raw["eps"],
                                                                    raw["conf"]))
    except SandboxError as err:
        error = _refusal(err)
    else:
        params = {"approval": raw["approval_raw"], "result": response["query_id"]}
        if response.get("cached"):
            params["cached"] = "1"
            shown = next((a.get("confidence") for a in response.get("accuracy", {}).values()), None)
            if shown is not None:
                params["confidence"] = f"{shown:g}"  # the release at the confidence asked for
        return redirect(url_for("researcher.query", **params), code=303)
    return _workbench(approval_raw=raw["approval_raw"], sql=raw["sql"], epsilon=raw["epsilon"],
                      confidence=raw["confidence"], error=error, status=400)


@bp.post("/query/preview")
@role_required("researcher")
def preview_cost():
    """The cost and expected accuracy of the query, without running it or spending anything."""
    if not preview_available():
        abort(404)

    raw = _form_request()
    estimate, error = None, None
    try:
        estimate = preview_query(sandbox(), signed_in(),
                                 PreviewRequest(raw["approval_raw"], raw["sql"], raw["eps"], raw["conf"]))
    except SandboxError as err:
        error = _refusal(err)
    return _workbench(approval_raw=raw["approval_raw"], sql=raw["sql"], epsilon=raw["epsilon"],
                      confidence=raw["confidence"], error=error, estimate=estimate, status=400 if error else 200)


@bp.post("/query/format")
@role_required("researcher")
def format_query():
    """The SQL pretty-printed by sqlglot; nothing is run, charged or logged. Text that does
    not parse comes back unchanged with the parser's message (input is never lost)."""
    raw = _form_request()
    formatted = console_editor.format_sql(raw["sql"])
    return _workbench(approval_raw=raw["approval_raw"], sql=formatted.sql, epsilon=raw["epsilon"],
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
        return _workbench(approval_raw=raw["approval_raw"], sql=raw["sql"], epsilon=raw["epsilon"],
                          confidence=raw["confidence"], save_name=name, save_error=_save_error(err),
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


def _record_or_404(query_id: str):
    record = console_queries.get_query(sandbox().conn(), signed_in(), query_id)
    if record is None or record.response is None:
        abort(404)
    return record


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


def _csv_cell(value: Any) -> Any:
    """SECURITY: a text cell starting like a formula is prefixed so spreadsheets show it as text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@bp.get("/history/<query_id>.csv")
@role_required("researcher", "owner", "regulator")
def release_csv(query_id: str):
    record = _record_or_404(query_id)
    header, rows = console_queries.released_csv_rows(record)
    sink = io.StringIO()
    writer = csv.writer(sink)
    writer.writerow([_csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    body = "\ufeff" + sink.getvalue()  # BOM: spreadsheet programs then read the Chinese keys right
    return Response(body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{record.id}.csv"'})


@bp.get("/history/<query_id>.xlsx")
@role_required("researcher", "owner", "regulator")
def release_xlsx(query_id: str):
    """The same cells as the CSV (released values and their intervals, nothing else), as an
    Excel workbook, with a second sheet naming the release: its SQL, ε, receipt."""
    from openpyxl import Workbook

    record = _record_or_404(query_id)
    header, rows = console_queries.released_csv_rows(record)
    book = Workbook()
    sheet = book.active
    sheet.title = "release"
    sheet.append([_xlsx_cell(h) for h in header])
    for row in rows:
        sheet.append([_xlsx_cell(v) for v in row])
    sheet.freeze_panes = "A2"
    about = book.create_sheet("about")
    receipt = record.receipt or {}
    for key, value in (("query_id", record.id), ("created_at", record.created_at), ("epsilon", record.epsilon),
                       ("sql", record.sql), ("log_index", receipt.get("log_index")),
                       ("leaf_hash", receipt.get("leaf_hash"))):
        about.append([key, _xlsx_cell(value)])
    sink = io.BytesIO()
    book.save(sink)
    return Response(sink.getvalue(),
                    mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f'attachment; filename="{record.id}.xlsx"'})


def _xlsx_cell(value: Any) -> Any:
    """SECURITY: as in the CSV, text that would start a formula is written as text."""
    cell = _csv_cell(value)
    return None if cell == "" else cell


@bp.get("/history/<query_id>/receipt.json")
@role_required("researcher", "owner", "regulator")
def receipt(query_id: str):
    record = _record_or_404(query_id)
    return Response(json.dumps(record.receipt, indent=2), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{record.id}.receipt.json"'})


@bp.app_template_filter("sql")
def _sql_filter(text: str):
    return console_sql.highlight(text or "")


@bp.app_template_global()
def error_title(code: str | None) -> str:
    return i18n.error_headline(code)


@bp.app_template_global("action_label")
def _action_label(code: str | None) -> str:
    return console_labels.action_label(code)
