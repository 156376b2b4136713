"""Alerts: anomalies in a researcher's use, surfaced to data owners and regulators
(第二十二条: supervise use; 第二十三条: warning and response; 第二十六条: use outside the
scenario).

Kinds (thresholds are :data:`SETTINGS`, rows ``alerts.<name>`` of the ``settings`` table):

- ``refusal_burst``: at least ``alert_refusals`` refused queries of one researcher on one
  approval (or on no usable approval: suspended, expired, someone else's) within
  ``alert_refusal_window_minutes``. Refusals counted by one alert never count again, so a
  long burst raises one alert per ``alert_refusals`` refusals. (Automatic suspension,
  ``sandbox.governance.workflow.after_refusal``, is the harder answer to out-of-scope attempts.)
- ``budget``: an approval has spent at least 80 % and then at least 95 % of its ε (one
  alert per level).
- ``differencing``: at least ``alert_differencing_queries`` distinct released queries on one
  approval that differ from one shared query by one top-level ``WHERE`` predicate (added,
  removed, or the same column compared with another literal). Each query is parsed with
  sqlglot; dropping each conjunct in turn gives the "families" it belongs to
  (:mod:`sandbox.governance.where_families`). Differencing two such releases isolates
  the rows the predicate singles out; DP noise still bounds what that reveals, but the
  pattern is worth a look.
- ``averaging``: one plan (the guard's fingerprint) answered at least ``alert_repeats``
  times — releases with fresh noise (another ε or confidence level defeats the release
  cache) plus repeats the cache answered, which the service records in ``query_repeats``
  because a cached answer leaves no other trace in the store.

When: after every query (released, cached or refused), whichever interface sent it (the
API, the console, the Python client): the query service runs :func:`after_query` for that
researcher and approval (``sandbox.service.hooks``). And on every read of the alerts
(``GET /api/v1/alerts`` and the console pages), for every researcher and approval with
queries since the last pass (:func:`sweep`). A pass reads a few indexed rows; it writes
only when it raises an alert.

Stored once: ``alerts.dedupe_key`` is UNIQUE and the insert, its ``alert.raised`` audit entry
(actor ``system``) and the entry's sequence number commit in one transaction, so two
processes evaluating at once raise it once.

Visible to regulators (all) and to the owner of the approval concerned; researchers and
admins get 403, anonymous callers 401 (:func:`list_alerts`).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections import Counter
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso, parse_iso
from sandbox.errors import BadRequest, SandboxError
from sandbox.governance import deadlines, jurisdiction, ledger, suspensions, workflow
from sandbox.governance.alert_records import KINDS, Candidate, raise_alert, view
from sandbox.governance.where_families import families, shared_text, where_variants
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.settings import Setting, SettingGroup
from sandbox.store.users import User
from sandbox.store.workspace import transaction

log = logging.getLogger(__name__)

#: What a reader can do with an alert (issue 14): acknowledge it, resolve it with a note, or act
#: on it (suspend the researcher it concerns) from the alert itself.
ACTIONS: Final = ("acknowledge", "resolve", "suspend")
BUDGET_LEVELS: Final = (80, 95)
#: Released queries per approval that the pattern checks look at (the newest).
PATTERN_SCAN: Final = 500
#: Queries made up to this long before the last pass are evaluated again (late commits).
SWEEP_OVERLAP: Final = dt.timedelta(minutes=1)
LIST_LIMIT: Final = 500
_SWEEP_MARK: Final = "alerts.swept_until"

SETTING_GROUP: Final = SettingGroup(
    "alerts",
    Setting("alert_refusals", 10,
            "refused queries of one researcher on one approval within the window that raise a "
            "refusal-burst alert; 0 turns the alert off"),
    Setting("alert_refusal_window_minutes", 15,
            "the sliding window, in minutes, over which those refusals are counted"),
    Setting("alert_differencing_queries", 5,
            "distinct released queries on one approval that differ from one shared query by one "
            "WHERE predicate and raise a differencing alert; 0 turns the alert off"),
    Setting("alert_repeats", 10,
            "answers to one plan on one approval (fresh releases plus repeats answered from the "
            "release cache) that raise an averaging alert; 0 turns the alert off"),
)
SETTINGS: Final[dict[str, Setting]] = SETTING_GROUP.settings


# -- evaluation (reads) -----------------------------------------------------------------------------

def refusal_burst(conn: sqlite3.Connection, researcher_id: int, approval_id: int | None, *,
                  now: dt.datetime) -> Candidate | None:
    threshold = SETTING_GROUP.get(conn, "alert_refusals")
    if threshold <= 0:
        return None
    window = SETTING_GROUP.get(conn, "alert_refusal_window_minutes")
    since = iso(now - dt.timedelta(minutes=window))
    counted_until = conn.execute(
        "SELECT MAX(json_extract(details_json, '$.last_refusal_at')) FROM alerts "
        "WHERE kind = 'refusal_burst' AND researcher_id = ? AND approval_id IS ?", (researcher_id, approval_id),
    ).fetchone()[0] or ""
    rows = conn.execute(
        "SELECT error_code, COUNT(*), MIN(created_at), MAX(created_at) FROM queries "
        "WHERE user_id = ? AND approval_id IS ? AND status = 'refused' AND created_at >= ? AND created_at > ? "
        "GROUP BY error_code", (researcher_id, approval_id, since, counted_until),
    ).fetchall()
    count = sum(r[1] for r in rows)
    if count < threshold:
        return None
    first, last = min(r[2] for r in rows), max(r[3] for r in rows)
    where = f"approval {approval_id}" if approval_id is not None else "no usable approval"
    return Candidate(
        "refusal_burst", f"refusal_burst:{researcher_id}:{approval_id or '-'}:{last}", "warning",
        researcher_id, approval_id,
        f"{count} refused queries on {where} within {window} minutes (threshold {threshold})",
        {"refusals": count, "codes": {r[0] or "": r[1] for r in rows}, "first_refusal_at": first,
         "last_refusal_at": last, "window_minutes": window, "threshold": threshold},
    )


def budget_levels(conn: sqlite3.Connection, approval: workflow.Approval) -> list[Candidate]:
    b = ledger.budget(conn, approval.id)
    if b.epsilon_total <= 0:
        return []
    percent = 100.0 * b.epsilon_spent / b.epsilon_total
    return [
        Candidate("budget", f"budget:{approval.id}:{level}", "warning" if level >= 95 else "info",
                  approval.researcher_id, approval.id,
                  f"approval {approval.id} has spent {percent:.1f} % of its ε "
                  f"({b.epsilon_spent:g} of {b.epsilon_total:g}; level {level} %)",
                  {"level": level, "percent": round(percent, 2), "epsilon_spent": b.epsilon_spent,
                   "epsilon_total": b.epsilon_total, "releases": b.releases})
        for level in BUDGET_LEVELS if percent >= level - 1e-6  # a charge is OpenDP's ε, not a round 1
    ]


def query_patterns(conn: sqlite3.Connection, approval: workflow.Approval) -> list[Candidate]:
    """Differencing and averaging over the approval's newest :data:`PATTERN_SCAN` releases."""
    diff_threshold = SETTING_GROUP.get(conn, "alert_differencing_queries")
    repeat_threshold = SETTING_GROUP.get(conn, "alert_repeats")
    if diff_threshold <= 0 and repeat_threshold <= 0:
        return []
    rows = conn.execute(
        "SELECT id, sql, fingerprint FROM queries WHERE approval_id = ? AND user_id = ? AND status = 'released' "
        "ORDER BY created_at DESC LIMIT ?", (approval.id, approval.researcher_id, PATTERN_SCAN),
    ).fetchall()
    out: list[Candidate] = []
    if repeat_threshold > 0:
        releases = Counter(r["fingerprint"] for r in rows)
        repeats = dict(conn.execute(
            "SELECT q.fingerprint, COUNT(*) FROM query_repeats r JOIN queries q ON q.id = r.query_id "
            "WHERE r.approval_id = ? AND r.user_id = ? GROUP BY q.fingerprint", (approval.id, approval.researcher_id),
        ).fetchall())
        example = {r["fingerprint"]: r for r in rows}
        for fingerprint in sorted(set(releases) | set(repeats)):
            answers = releases.get(fingerprint, 0) + repeats.get(fingerprint, 0)
            if answers < repeat_threshold or not fingerprint:
                continue
            sample = example.get(fingerprint)
            out.append(Candidate(
                "averaging", f"averaging:{approval.id}:{fingerprint[:32]}", "warning",
                approval.researcher_id, approval.id,
                f"one query answered {answers} times on approval {approval.id} "
                f"({releases.get(fingerprint, 0)} releases, {repeats.get(fingerprint, 0)} cached repeats)",
                {"fingerprint": fingerprint, "answers": answers, "releases": releases.get(fingerprint, 0),
                 "cached_repeats": repeats.get(fingerprint, 0), "threshold": repeat_threshold,
                 "sql": sample["sql"][:2000] if sample else None,
                 "query_ids": [r["id"] for r in rows if r["fingerprint"] == fingerprint][:20]},
            ))
    if diff_threshold > 0:
        parsed = [(r["fingerprint"], r["id"], v) for r in rows if r["fingerprint"] and (v := where_variants(r["sql"]))]
        ids = {fp: qid for fp, qid, _v in parsed}
        sqls = {r["fingerprint"]: r["sql"] for r in rows}
        for family_key, members in sorted(families(parsed).items()):
            predicates = sorted({p for p in members.values() if p})
            if len(members) < diff_threshold or len(predicates) < 2:
                continue
            out.append(Candidate(
                "differencing", f"differencing:{approval.id}:{family_key}", "warning",
                approval.researcher_id, approval.id,
                f"{len(members)} released queries on approval {approval.id} differ from one another "
                f"by one WHERE predicate (threshold {diff_threshold})",
                {"queries": len(members), "threshold": diff_threshold,
                 "shared": shared_text(sqls[next(iter(members))], family_key)[:2000],
                 "predicates": [p[:500] for p in predicates[:20]],
                 "query_ids": sorted(ids[fp] for fp in members)[:20]},
            ))
    return out


def run_passes(sb: Context, researcher_id: int, approval_id: int | None) -> list[dict[str, Any]]:
    """Every check for one researcher (refusals without a usable approval included) and, if
    given, one of their approvals. Returns the alerts raised now."""
    conn = sb.conn()
    raised = []
    for aid in {approval_id, None}:
        def recount(aid: int | None = aid) -> Candidate | None:
            return refusal_burst(conn, researcher_id, aid, now=sb.now())

        burst = recount()
        if burst is not None:
            alert = raise_alert(sb, burst, recount)  # recounted under the write lock
            raised += [alert] if alert else []
    approval = workflow.get_approval(conn, approval_id) if approval_id is not None else None
    if approval is not None and approval.researcher_id == researcher_id:
        for cand in budget_levels(conn, approval) + query_patterns(conn, approval):
            alert = raise_alert(sb, cand)
            raised += [alert] if alert else []
    return raised


def after_query(sb: Context, user: User, approval_id: Any) -> None:
    """The query service's hook after every query, whichever interface asked
    (``sandbox.service.hooks.AlertPasses``, run by ``Sandbox.run_query``): evaluate this
    researcher's alerts (cached repeats are recorded by ``query_records.serve_cached`` itself).

    Never raises: the release (or refusal) is already committed and must reach its caller;
    a failure here is logged and the next pass (:func:`sweep`) tries again.
    """
    try:
        conn = sb.conn()
        try:
            ident: int | None = fields.ident(approval_id, "approval")
        except SandboxError:
            ident = None
        approval = workflow.get_approval(conn, ident) if ident is not None else None
        aid = approval.id if approval is not None and approval.researcher_id == user.id else None
        if user.role == "researcher":
            run_passes(sb, user.id, aid)
    except Exception:  # noqa: BLE001 - see the docstring
        log.exception("alert evaluation after a query failed")


def sweep(sb: Context) -> list[dict[str, Any]]:
    """Evaluate every (researcher, approval) with queries since the last pass."""
    conn = sb.conn()
    row = conn.execute("SELECT value FROM settings WHERE name = ?", (_SWEEP_MARK,)).fetchone()
    since = iso(parse_iso(row[0]) - SWEEP_OVERLAP) if row else ""
    pairs = conn.execute(
        "SELECT q.user_id, q.approval_id, MAX(q.created_at) FROM queries q JOIN users u ON u.id = q.user_id "
        "WHERE q.created_at > ? AND u.role = 'researcher' GROUP BY q.user_id, q.approval_id", (since,),
    ).fetchall()
    raised = []
    for user_id, approval_id, _latest in pairs:
        raised += run_passes(sb, user_id, approval_id)
    latest = max((p[2] for p in pairs), default=None)
    if latest is not None and (row is None or latest > row[0]):
        conn.execute("INSERT INTO settings (name, value) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET value = MAX(value, excluded.value)", (_SWEEP_MARK, latest))
    return raised


def check_reader(user: User | None) -> None:
    """Owners and regulators read alerts (``alert.list`` in ``sandbox.store.authz``); which
    alerts an owner sees is narrowed to their own approvals by :func:`list_alerts`."""
    authz.check_role("alert.list", user)


def count_alerts(conn: sqlite3.Connection, user: User) -> int:
    """How many alerts ``user`` may read (call after :func:`list_alerts`, which sweeps)."""
    if user.role == "regulator":
        if jurisdiction.is_district(conn, user):  # 第五条: its district's alerts only
            return sum(1 for r in conn.execute("SELECT * FROM alerts")
                       if jurisdiction.covers(conn, user, jurisdiction.alert_datasets(conn, r)))
        return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
    if user.role == "owner":
        return int(conn.execute("SELECT COUNT(*) FROM alerts WHERE owner_id = ?", (user.id,)).fetchone()[0])
    return 0


def list_alerts(sb: Context, user: User | None, *, kind: str | None = None, approval_id: Any = None,
                limit: int = LIST_LIMIT) -> list[dict[str, Any]]:
    """Newest first: all (regulator) or those about the owner's approvals (owner)."""
    check_reader(user)
    assert user is not None
    if kind is not None and kind not in KINDS:
        raise BadRequest(f"unknown alert kind {kind!r}; use one of {', '.join(KINDS)}", code="bad_kind")
    clauses: list[str] = []
    args: list[Any] = []
    if approval_id is not None:
        if not (isinstance(approval_id, int) and not isinstance(approval_id, bool)) and not (
                isinstance(approval_id, str) and approval_id.isascii() and approval_id.isdigit()):
            raise BadRequest("approval_id must be a whole number", code="bad_approval_id")
        clauses.append("approval_id = ?")
        args.append(min(int(approval_id), 2**63 - 1))
    sweep(sb)
    deadlines.raise_overdue_alerts(sb)
    if user.role == "owner":
        clauses.append("owner_id = ?")
        args.append(user.id)
    if kind is not None:
        clauses.append("kind = ?")
        args.append(kind)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    conn = sb.conn()
    rows = conn.execute(f"SELECT * FROM alerts {where} ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
    if user.role == "regulator":  # a district regulator: alerts about its district's datasets only (第五条)
        if jurisdiction.is_district(conn, user):
            rows = [r for r in rows if jurisdiction.covers(conn, user, jurisdiction.alert_datasets(conn, r))]
    return [view(conn, r) for r in rows]


# -- handling (issue 14) ------------------------------------------------------------------------------
def handle(sb: Context, user: User | None, alert_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/alerts/<id>/handle`` ``{"action": "acknowledge"|"resolve"|"suspend", "note"}``.

    ``suspend`` suspends the researcher the alert concerns (the owner: only a researcher holding
    one of their approvals) and resolves the alert, in one step, both logged.
    """
    check_reader(user)
    assert user is not None
    conn = sb.conn()
    try:
        ident = fields.ident(alert_id, "alert")
    except SandboxError:
        ident = -1
    row = conn.execute("SELECT * FROM alerts WHERE id = ?", (min(ident, 2**63 - 1),)).fetchone()

    if row is None or (user.role == "owner" and row["owner_id"] != user.id) or (
            jurisdiction.is_district(conn, user)
            and not jurisdiction.covers(conn, user, jurisdiction.alert_datasets(conn, row))):
        raise SandboxError(f"no alert {alert_id}", code="not_found", status=404)
    action = body.get("action")
    if action not in ACTIONS:
        raise BadRequest(f"action must be one of {', '.join(ACTIONS)}", code="bad_action")
    note = fields.text(body, "note", required=action != "acknowledge")
    if row["status"] == "resolved":
        raise fields.conflict(f"alert {row['id']} is already resolved")
    suspension = None
    if action == "suspend":
        if row["researcher_id"] is None:
            raise BadRequest(f"alert {row['id']} concerns no researcher; nobody to suspend", code="nothing_to_suspend")

        suspension = suspensions.create(sb, user, {"user": fields.username_of(conn, row["researcher_id"]),
                                                   "reason": f"alert {row['id']}: {note}"})["suspension_id"]
    status = "acknowledged" if action == "acknowledge" else "resolved"
    with transaction(conn):
        conn.execute("UPDATE alerts SET status = ?, handled_by = ?, handled_at = ?, note = ? WHERE id = ?",
                     (status, user.id, iso(sb.now()), note, row["id"]))
        sb.audit(conn, user, Action.ALERT_HANDLED, f"alert/{row['id']}", {
            "alert_id": row["id"], "action": action, "status": status, "note": note,
            "suspension_id": suspension})
    return {"alert_id": row["id"], "status": status, "suspension_id": suspension}
