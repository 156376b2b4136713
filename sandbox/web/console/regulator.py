"""Regulator pages (大数据主管部门, 第十八、二十二条): checkpoint status and verification, the
audit timeline, the replay report, tracing a released figure from its receipt, and alerts.

Verification here is the same ``audit_log.verify`` a regulator runs offline on an export:
the workspace's own entries against every signed checkpoint, with the log's public keys.
The server signs a fresh checkpoint first (as ``GET /api/v1/audit/checkpoint`` does), so
the whole log is covered; reading the checkpoints *before* the entries means an entry
appended meanwhile can never look like a truncation.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from flask import Blueprint, render_template, request
from flask_babel import gettext as _

import audit_log.store as audit_store
from audit_log.actions import Action
from audit_log.checkpoint import Note, load_log_keys, open_checkpoint, tree_hash_for_keys
from audit_log.errors import AuditError, VerificationError
from audit_log.receipt import Receipt, verify_receipt
from audit_log.replay import compare_with_ledger, replay
from audit_log.verify import verify_lines
from sandbox.clock import iso
from sandbox.errors import BadRequest, SandboxError
from sandbox.governance import alerts as alert_service
from sandbox.governance import (
    applications,
    deadlines,
    jurisdiction,
    objections,
    publication,
    suspensions,
)
from sandbox.service.query_service import Sandbox
from sandbox.store.ledger_sums import approval_sums
from sandbox.web.console import charts as console_charts
from sandbox.web.console import queries as console_queries
from sandbox.web.console import sql as console_sql
from sandbox.web.console.alert_list import alerts_page
from sandbox.web.console.base import role_required, sandbox, signed_in
from sandbox.web.console.errors import service_error
from sandbox.web.console.results import result_view
from sandbox.web.console.templating import DISPLAY_TZ

bp = Blueprint("regulator", __name__, url_prefix="/regulator")


def _log_keys(sb: Sandbox) -> list[str]:
    return ["".join(info.pem() for info in sb.keyring.log_public_keys())]


def checkpoint_status(sb: Sandbox) -> dict[str, Any]:
    conn = sb.conn()
    stored = audit_store.latest_stored_checkpoint(conn)
    size = audit_store.size(conn)
    if stored is None:
        return {"size": size, "checkpoint": None, "unsigned": size}
    cosigned = max(0, len(Note.parse(stored.note).signatures) - 1)
    return {"size": size, "checkpoint": stored, "unsigned": size - stored.tree_size, "cosignatures": cosigned,
            "count": len(audit_store.checkpoints(conn))}


def verify_workspace(sb: Sandbox) -> dict[str, Any]:
    """Sign the current tree head, then verify every entry against every checkpoint."""
    conn = sb.conn()
    sb.issue_checkpoint()
    notes = [cp.note for cp in audit_store.checkpoints(conn)]  # SECURITY: checkpoints first
    lines = list(audit_store.iter_entry_bytes(conn))
    try:
        report = verify_lines(lines, _log_keys(sb), notes, origin=sb.log_origin)
    except VerificationError as err:
        return {"ok": False, "kind": err.kind, "seq": err.seq, "message": err.message}
    except AuditError as err:
        return {"ok": False, "kind": "error", "seq": None, "message": str(err)}
    return report.to_dict()


def _overview(verify: dict[str, Any] | None = None):
    sb = sandbox()
    user = signed_in()
    conn = sb.conn()
    counts = {r["action"]: r["n"] for r in conn.execute(
        "SELECT action, COUNT(*) AS n FROM audit_entries GROUP BY action")}
    stats = {
        "entries": audit_store.size(conn),
        "releases": counts.get("query.released", 0),
        "refusals": counts.get("query.refused", 0),
        "suspended": sum(1 for s in suspensions.list_suspensions(sb, user) if s["active"]),
        "open_objections": sum(1 for o in objections.list_objections(sb, user) if o["status"] == "open"),
        # issue 14: publications and tier raises waiting for the co-signature (第十二条)
        "reviews": sum(1 for r in publication.list_reviews(sb, user) if r["status"] == "awaiting_regulator"),
        "overdue": len(deadlines.list_overdue(sb, user)),
    }
    recent = visible_timeline(conn, user, console_queries.TimelineFilter(), limit=8)
    recent_alerts = alert_service.list_alerts(sb, user, limit=5)
    stats["alerts"] = alert_service.count_alerts(conn, user)
    return render_template("regulator/overview.html", status=checkpoint_status(sb), verify=verify, stats=stats,
                           recent=recent, alerts=recent_alerts)


@bp.get("")
@role_required("regulator")
def overview():
    return _overview()


@bp.get("/alerts")
@role_required("regulator")
def alerts():
    """Every alert (第二十二、二十三条)."""
    return alerts_page()


@bp.post("/verify")
@role_required("regulator")
def verify():
    return _overview(verify_workspace(sandbox()))


def day_start(text: str, *, next_day: bool = False) -> str | None:
    """A date picked in the console (China Standard Time) as the stored UTC time it starts at.

    >>> day_start("2025-01-31"), day_start("2025-01-31", next_day=True), day_start("x")
    ('2025-01-30T16:00:00.000000Z', '2025-01-31T16:00:00.000000Z', None)
    """
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        return None
    start = dt.datetime.combine(day + dt.timedelta(days=int(next_day)), dt.time(), DISPLAY_TZ)
    return iso(start)


def visible_timeline(conn, user, f: console_queries.TimelineFilter,
                     limit: int = console_queries.TIMELINE_PAGE) -> list[dict[str, Any]]:
    """The timeline as ``user`` may read it: a district regulator sees the entries about its
    district's datasets only (第五条), the page filled from older entries."""
    if not jurisdiction.is_district(conn, user):
        return console_queries.timeline(conn, f, limit=limit)
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        batch = console_queries.timeline(conn, f, limit=200)
        out += jurisdiction.visible_entries(conn, user, batch)
        if len(batch) < 200:
            break
        f = dataclasses.replace(f, before_seq=batch[-1]["seq"])
    return out[:limit]


@bp.get("/audit")
@role_required("regulator")
def timeline():
    args = request.args
    before = args.get("before", "")
    f = console_queries.TimelineFilter(
        actor=args.get("actor") or None, action=args.get("action") or None, dataset=args.get("dataset") or None,
        since=day_start(args.get("since", "")), until=day_start(args.get("until", ""), next_day=True),
        before_seq=int(before) if before.isdigit() else None,
    )
    conn = sandbox().conn()
    user = signed_in()
    entries = visible_timeline(conn, user, f)
    choices = console_queries.timeline_choices(conn)
    if jurisdiction.is_district(conn, user):  # 第五条: its district's datasets only
        choices["datasets"] = [d for d in choices["datasets"] if jurisdiction.covers(conn, user, [d])]
        # the actors of its district's newest 500 entries, not every user name of the city
        choices["actors"] = sorted({e["actor"] for e in visible_timeline(
            conn, user, console_queries.TimelineFilter(), limit=500)} | ({f.actor} if f.actor else set()))
    return render_template("regulator/timeline.html", entries=entries, f=f, args=args,
                           choices=choices,
                           more=len(entries) == console_queries.TIMELINE_PAGE,
                           next_before=entries[-1]["seq"] if entries else None)


@bp.get("/replay")
@role_required("regulator")
def replay_report():
    conn = sandbox().conn()
    user = signed_in()
    # 第五条: a district regulator's report is rebuilt from its district's entries only, so the
    # researchers' counts, refusal codes, suspensions, tier and key changes name no other district
    report = replay(jurisdiction.visible_entries(conn, user, audit_store.entries(conn)))
    compare_with_ledger(report, approval_sums(conn))
    if jurisdiction.is_district(conn, user):  # 第五条: the approvals of its district only
        report["approvals"] = {k: v for k, v in report["approvals"].items()
                               if jurisdiction.covers(conn, user, jurisdiction.approval_datasets(conn, k))}
        report["ledger_differences"] = [d for d in report.get("ledger_differences", [])
                                        if str(d["approval_id"]) in report["approvals"]]
    series = []
    for rec in report["approvals"].values():
        points = [(p["time"], p["epsilon_spent"]) for p in rec["timeline"]]
        total = (rec.get("granted") or {}).get("epsilon_total")
        series.append((_("approval #%(id)s", id=rec["approval_id"]), points,
                       float(total) if isinstance(total, int | float) else None))
    chart = console_charts.step_chart(series, title=_("ε spent over time, rebuilt from the log"),
                                      desc=_("Per approval: the cumulative ε logged by its releases."),
                                      width=1100, height=300)
    return render_template("regulator/replay.html", report=report, chart=chart)


def trace_receipt(sb: Sandbox, user, data: Any) -> dict[str, Any]:
    """Check a receipt against the signed log and gather its release, query and approval."""
    if isinstance(data, dict) and isinstance(data.get("receipt"), dict):
        data = data["receipt"]  # a whole query response was pasted
    if not isinstance(data, dict):
        raise AuditError(_("A receipt is a JSON object with query_id, log_index, leaf_hash and tree_size."))
    # Part of a receipt (issue 15: "not a receipt: 'seq'"): name what is missing, in the
    # reader's language, instead of the parser's KeyError.
    missing = [f for f in ("query_id", "log_index", "leaf_hash", "tree_size")
               if f not in data and not (f == "log_index" and "seq" in data)]
    if missing:
        raise AuditError(_("This receipt is incomplete: %(fields)s missing. Paste the whole receipt (query_id, "
                           "log_index, leaf_hash, tree_size) or the whole query response.",
                           fields=", ".join(missing)))
    rec = Receipt.from_dict(data)
    conn = sb.conn()
    if rec.log_index >= audit_store.size(conn):
        raise AuditError(_("The log has no entry %(seq)s.", seq=rec.log_index))
    log_keys = load_log_keys(_log_keys(sb))
    cp = open_checkpoint(sb.issue_checkpoint(), log_keys, origin=sb.log_origin)
    entry_bytes = audit_store.entry_bytes(conn, rec.log_index)
    proof = audit_store.inclusion_proof(conn, rec.log_index, cp.size)
    verify_receipt(rec, entry_bytes, proof, cp, tree_hash_for_keys(log_keys))
    entry = json.loads(entry_bytes)
    if not jurisdiction.entry_visible(conn, user, entry):  # 第五条: outside the district reads like missing
        raise AuditError(_("The log has no entry %(seq)s.", seq=rec.log_index))
    details = entry.get("details") or {}
    if entry.get("action") != Action.QUERY_RELEASED or details.get("query_id") != rec.query_id:
        raise AuditError(_("Entry %(seq)s is not the release of %(query)s.", seq=rec.log_index, query=rec.query_id))
    approval = None
    approval_id = details.get("approval_id")
    if approval_id is not None:
        try:
            approval = applications.read_approval(sb, user, approval_id)
        except SandboxError:
            approval = None
    related = []
    if approval_id is not None:
        related = [e for e in audit_store.entries(conn, details={"approval_id": approval_id})
                   if not e["action"].startswith("query.")]
        related += audit_store.entries(conn, subject=f"approval/{approval_id}")
        related = sorted({e["seq"]: e for e in related}.values(), key=lambda e: e["seq"])
    record = console_queries.get_query(conn, user, rec.query_id)
    return {"receipt": rec.to_dict(), "entry": entry, "checkpoint_size": cp.size, "proof_length": len(proof),
            "approval": approval, "related": related, "record": record,
            "sql_html": console_sql.highlight(str(details.get("sql", "")))}


@bp.route("/trace", methods=["GET", "POST"])
@role_required("regulator")
def trace():
    user = signed_in()
    text, result, error = "", None, None
    query_id = request.args.get("query")
    if request.method == "GET" and query_id:
        record = console_queries.get_query(sandbox().conn(), user, query_id)
        if record is not None and record.receipt:
            text = json.dumps(record.receipt, indent=2)
    if request.method == "POST":
        text = request.form.get("receipt", "")
        if not text.strip():  # every action gives visible feedback (issue 15)
            error = _("Paste a receipt first: the JSON object with query_id, log_index, leaf_hash and tree_size.")
    if text.strip():
        try:
            result = trace_receipt(sandbox(), user, json.loads(text))
        except ValueError as err:
            error = service_error(BadRequest(f"not JSON: {err}", code="not_json"))
        except AuditError as err:
            error = str(err)
    view = None
    if result is not None:
        details = result["entry"].get("details") or {}
        response = (result["record"].response if result["record"] and result["record"].response
                    else {"columns": details.get("columns"), "rows": details.get("rows")})
        view = result_view(response)
    status = 400 if error else 200
    return render_template("regulator/trace.html", text=text, result=result, error=error, view=view), status
