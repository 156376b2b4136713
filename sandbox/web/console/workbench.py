"""The researcher's workbench page: the approval in use, its schema and budget, the editor's
vocabulary, saved and recent queries, and the result or refusal shown under the editor.

The routes in :mod:`sandbox.web.console.researcher` parse the form and call the service;
this module builds what the page shows.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Final

from flask import render_template
from flask_babel import gettext as _

from sandbox.clock import iso
from sandbox.errors import SandboxError
from sandbox.governance import applications
from sandbox.governance import open_catalog as catalog
from sandbox.service import operations
from sandbox.store import saved_queries
from sandbox.web import i18n
from sandbox.web.console import charts as console_charts
from sandbox.web.console import editor as console_editor
from sandbox.web.console import preview as console_preview
from sandbox.web.console import queries as console_queries
from sandbox.web.console import sql as console_sql
from sandbox.web.console.base import sandbox, signed_in
from sandbox.web.console.results import result_view

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


def approvals_of(user) -> list[dict[str, Any]]:
    """The researcher's approvals, oldest first."""
    return applications.list_approvals(sandbox(), user)


def pick(approvals: list[dict[str, Any]], raw: str | None) -> dict[str, Any] | None:
    """The approval asked for, or by default the newest active one (else the newest)."""
    if raw is not None:
        return next((a for a in approvals if str(a["approval_id"]) == str(raw)), None)
    active = [a for a in approvals if a["status"] == "active"]
    candidates = active or approvals
    return candidates[-1] if candidates else None


def render(*, approval_raw: str | None, sql: str, epsilon: str, confidence: str,
           result: dict[str, Any] | None = None, cached: bool = False, error: dict[str, Any] | None = None,
           estimate: dict[str, Any] | None = None, status: int = 200, notice: str | None = None,
           save_name: str = "", save_error: str | None = None):
    """The workbench page with whatever the route has to show (a result, a refusal, an estimate)."""
    user = signed_in()
    approvals = approvals_of(user)
    approval = pick(approvals, approval_raw)
    if approval is None and approval_raw is not None and approvals:
        # An approval id that is not one of this researcher's (or mistyped): say so, and
        # open the default one rather than a page claiming there is no approval at all.
        notice = _("Approval #%(id)s is not one of yours; showing your current approval.", id=approval_raw[:20])
        approval = pick(approvals, None)
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
        editor_schema=console_editor.schema_json(schema, zh=i18n.current() == "zh_CN"),
        editor_functions=console_editor.functions_for(approval), preview_words=console_preview.preview_words,
        epsilon=epsilon, confidence=confidence, confidences=CONFIDENCES, result=result,
        view=result_view(result) if result else None, cached=cached, error=error,
        budget=budget_view(approval), recent=recent,
        tables=tables, columns=columns, preview=preview_available(), estimate=estimate,
        highlight=lambda s: console_sql.highlight(s, tables=tables, columns=columns),
    ), status


def default_epsilon(approval: dict[str, Any] | None) -> str:
    """ε the form starts with: 0.5, or the approval's limit per query when that is lower."""
    if approval is None:
        return "0.5"
    return f"{min(0.5, float(approval['epsilon_per_query'])):g}"

