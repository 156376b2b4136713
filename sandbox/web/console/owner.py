"""Data-owner pages: overview, the applications inbox and decisions, budgets and usage, alerts.

Decisions go through ``sandbox.governance.applications.decide`` (rights, validation, the signed
approval and its audit entry in one transaction, 第十五、十六条); the console only turns the
form into the same body the JSON API takes. Dataset registration and risk reports are in
:mod:`sandbox.web.console.owner_datasets`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from query_guard.scenario import AGGREGATE_KINDS
from sandbox.errors import NotFound, SandboxError
from sandbox.governance import alerts as alert_service
from sandbox.governance import applications, datasets, deadlines, suspensions
from sandbox.governance import open_catalog as catalog
from sandbox.web.console import charts as console_charts
from sandbox.web.console import queries as console_queries
from sandbox.web.console.alert_list import alerts_page
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import service_error

bp = Blueprint("owner", __name__, url_prefix="/owner")

DEFAULT_TERMS: dict[str, str] = {"epsilon_total": "5", "delta_total": "1e-6", "epsilon_per_query": "1"}
DEFAULT_DAYS = 180


def _own_entries(user) -> list[dict[str, Any]]:
    return [e for e in catalog.list_entries(sandbox(), user) if e["owner"] == user.username]


def approvals_with_usage(user) -> list[dict[str, Any]]:
    views = applications.list_approvals(sandbox(), user)
    ids = [a["approval_id"] for a in views]
    use = console_queries.usage(sandbox().conn(), ids)
    for a in views:
        eps = a["budget"]["epsilon"]
        a["usage"] = use.get(a["approval_id"])
        a["meter"] = console_charts.meter(eps["spent"], eps["total"],
                                          title=_("ε spent %(spent)s of %(total)s",
                                                  spent=console_charts.fmt(eps["spent"]),
                                                  total=console_charts.fmt(eps["total"])))
    return views


def usage_charts(views: list[dict[str, Any]], width: int = 720) -> dict[str, Any]:
    ids = [a["approval_id"] for a in views]
    conn = sandbox().conn()
    series = console_queries.ledger_series(conn, ids)
    steps = console_charts.step_chart(
        [(_("approval #%(id)s", id=a["approval_id"]), [(t, cum) for t, _e, cum in series[a["approval_id"]]],
          a["epsilon_total"]) for a in views],
        title=_("ε spent over time per approval"),
        desc=_("Cumulative privacy budget charged to each approval; dashed lines: the budget granted."),
        width=width,
    )
    days = console_charts.day_bars(
        console_queries.daily_releases(conn, ids),
        title=_("Releases and refusals per day"), desc=_("Queries on your approvals per day."),
        legend=(_("releases"), _("refusals")),
    )
    return {"steps": steps, "days": days}


@bp.get("")
@role_required("owner")
def overview():
    user = signed_in()
    apps = applications.list_applications(sandbox(), user)
    views = approvals_with_usage(user)
    entries = _own_entries(user)
    stats = {
        "datasets": len(entries),
        "unpublished": sum(1 for e in entries if not all(v["published_at"] for v in e["versions"])),
        "pending": sum(1 for a in apps if a["status"] == "pending"),
        "active": sum(1 for a in views if a["status"] == "active"),
        "epsilon_spent": sum(a["budget"]["epsilon"]["spent"] for a in views),
        "releases": sum(a["usage"].releases for a in views if a["usage"]),
    }
    active_suspensions = [s for s in suspensions.list_suspensions(sandbox(), user) if s["active"]]
    recent_alerts = alert_service.list_alerts(sandbox(), user, limit=5)
    stats["alerts"] = alert_service.count_alerts(sandbox().conn(), user)
    stats["overdue"] = len(deadlines.list_overdue(sandbox(), user))  # issue 14: time limits
    return render_template("owner/overview.html", stats=stats,
                           pending=[a for a in apps if a["status"] == "pending"][:6],
                           approvals=views, entries=entries, charts=usage_charts(views, width=880),
                           suspensions=active_suspensions, alerts=recent_alerts)


@bp.get("/alerts")
@role_required("owner")
def alerts():
    """Alerts about the owner's approvals (第二十二、二十三条)."""
    return alerts_page()


@bp.get("/applications")
@role_required("owner")
def applications_inbox():
    apps = applications.list_applications(sandbox(), signed_in())
    order = {"pending": 0, "approved": 1, "rejected": 2}
    apps.sort(key=lambda a: (order.get(a["status"], 3), -a["application_id"]))
    return render_template("owner/applications.html", applications=apps)


def _decision_context(app: dict[str, Any]) -> dict[str, Any]:
    """Columns and aggregates the owner may keep (the request, or everything it allows)."""
    versions = {v.name: v for v in datasets.latest_versions(sandbox().conn(), include_unpublished=True)}
    offered = {}
    for name in app["datasets"]:
        v = versions.get(name)
        cols = app["columns"].get(name) or ([c.name for c in v.policy.columns.values()
                                             if c.sensitivity != "identifier" and c.name != v.policy.privacy_unit]
                                            if v else [])
        offered[name] = cols
    aggregates = app["aggregates"] or sorted(AGGREGATE_KINDS)
    return {"offered_columns": offered, "offered_aggregates": aggregates}


@bp.get("/applications/<int:application_id>")
@role_required("owner")
def application(application_id: int):
    app = applications.get_application(sandbox(), signed_in(), application_id)
    expires = (sandbox().now() + dt.timedelta(days=DEFAULT_DAYS)).date().isoformat()
    form = {**DEFAULT_TERMS, "expires": expires, "reason": ""}
    if app.get("amends"):  # issue 14: an amendment starts from the approval's terms and what was asked
        current = applications.read_approval(sandbox(), signed_in(), app["amends"]["approval_id"])
        asked = app["amends"]
        form = {"epsilon_total": str(asked.get("epsilon_total") or ""), "delta_total": str(current["delta_total"]),
                "epsilon_per_query": str(current["epsilon_per_query"]),
                "expires": (asked.get("expires_at") or current.get("expires_at") or expires)[:10], "reason": ""}
    return render_template("owner/application.html", app=app, form=form, error=None, checked=None,
                           **_decision_context(app))


def decision_body(form, app: dict[str, Any], offered: dict[str, list[str]], aggregates: list[str]) -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/applications/<id>/decision`` from the HTML form.

    Columns and aggregates are sent only when the owner unticked some (narrowing), so an
    untouched form keeps the request's own scope exactly.
    """
    body: dict[str, Any] = {"decision": form.get("decision"), "reason": form.get("reason", "")}
    if body["decision"] != "approve":
        return body
    for key in ("epsilon_total", "delta_total", "epsilon_per_query"):
        raw = form.get(key, "").strip()
        try:
            body[key] = float(raw)
        except ValueError:
            body[key] = raw  # the service names the field in its refusal
    body["expires"] = form.get("expires", "")
    columns = {}
    for name, cols in offered.items():
        kept = [c for c in cols if form.get(f"col:{name}:{c}")]
        if len(kept) != len(cols):
            columns[name] = kept
    if columns:
        body["columns"] = columns
    kept_aggs = [a for a in aggregates if form.get(f"agg:{a}")]
    if len(kept_aggs) != len(aggregates):
        body["aggregates"] = kept_aggs
    return body


@bp.post("/applications/<int:application_id>/decision")
@role_required("owner")
def decide(application_id: int):
    user = signed_in()
    app = applications.get_application(sandbox(), user, application_id)
    ctx = _decision_context(app)
    body = decision_body(request.form, app, ctx["offered_columns"], ctx["offered_aggregates"])
    if app.get("amends"):  # issue 14: only the figures the request amends (blank: what was asked)
        keys = ("epsilon_total", "delta_total") if app["amends"]["kind"] == "budget" else ("expires",)
        body = {"decision": body["decision"], "reason": body["reason"],
                **{k: body[k] for k in keys if k in body and body[k] != ""}}
    try:
        result = applications.decide(sandbox(), user, application_id, body)
    except NotFound:
        abort(404)
    except SandboxError as err:
        form = {k: request.form.get(k, "") for k in ("epsilon_total", "delta_total", "epsilon_per_query",
                                                     "expires", "reason")}
        checked = {k for k in request.form if k.startswith(("col:", "agg:"))}
        return render_template("owner/application.html", app=app, form=form, checked=checked,
                               error=service_error(err), **ctx), 400
    if result["status"] == "approved" and app.get("amends"):
        flash(_("Approval #%(approval)s amended (application #%(app)s).", app=application_id,
                approval=result["approval_id"]), "success")
        return redirect(url_for("owner.approvals", _anchor=f"approval-{result['approval_id']}"), code=303)
    if result["status"] == "approved":
        flash(_("Application #%(app)s approved as approval #%(approval)s.", app=application_id,
                approval=result["approval_id"]), "success")
        return redirect(url_for("owner.approvals", _anchor=f"approval-{result['approval_id']}"), code=303)
    flash(_("Application #%(app)s rejected.", app=application_id), "info")
    return redirect(url_for("owner.applications_inbox"), code=303)


@bp.get("/approvals")
@role_required("owner")
def approvals():
    views = approvals_with_usage(signed_in())
    return render_template("owner/approvals.html", approvals=views, charts=usage_charts(views))

