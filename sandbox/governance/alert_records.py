"""The alerts table: raising an alert once (with its ``alert.raised`` entry) and folding
repeats, for every module that finds one (the query-pattern passes in ``alerts``, the
overdue pass in ``deadlines``).

Why apart from ``sandbox.governance.alerts``: the deadline pass raises alerts and the alert
listing runs the deadline pass; with the table here both import it and neither imports
the other's caller.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.governance import workflow
from sandbox.store import fields
from sandbox.store.context import Context
from sandbox.store.workspace import transaction

log = logging.getLogger(__name__)


Kind = Literal["refusal_burst", "budget", "differencing", "averaging", "overdue"]


#: ``overdue`` (issue 14): an application, objection or rectification order past its due date
#: (:mod:`sandbox.governance.deadlines`), raised once per item.
KINDS: Final[tuple[Kind, ...]] = ("refusal_burst", "budget", "differencing", "averaging", "overdue")


@dataclass(frozen=True)
class Candidate:
    """An alert an evaluation found; raised unless its ``dedupe_key`` is already stored."""

    kind: Kind
    dedupe_key: str
    severity: Literal["info", "warning", "critical"]
    researcher_id: int | None
    approval_id: int | None
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


# -- raising (writes) -----------------------------------------------------------------------------
def _exists(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute("SELECT 1 FROM alerts WHERE dedupe_key = ?", (key,)).fetchone() is not None


def raise_alert(sb: Context, cand: Candidate,
                recheck: Callable[[], Candidate | None] | None = None, *, owner_id: int | None = None,
                subject: str = "") -> dict[str, Any] | None:
    """Store ``cand`` and its ``alert.raised`` audit entry in one transaction, once.

    ``recheck`` recomputes the candidate under the write lock (for alerts whose key depends
    on state another process may change meanwhile). Returns the alert's view, or None.
    """
    conn = sb.conn()
    if _exists(conn, cand.dedupe_key):
        return None
    with transaction(conn):
        if recheck is not None:
            again = recheck()
            if again is None:
                return None
            cand = again
        if cand.kind in GROUPED_KINDS:
            folded = _fold_into_open(sb, conn, cand)
            if folded is not None:
                return folded
        approval = workflow.get_approval(conn, cand.approval_id) if cand.approval_id is not None else None
        moment = iso(sb.now())
        cur = conn.execute(
            "INSERT OR IGNORE INTO alerts (kind, dedupe_key, severity, researcher_id, approval_id, owner_id, summary, "
            "details_json, created_at, last_seen_at, subject) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (cand.kind, cand.dedupe_key, cand.severity, cand.researcher_id, cand.approval_id,
             approval.owner_id if approval else owner_id, cand.summary,
             json.dumps(cand.details, ensure_ascii=False), moment, moment, subject),
        )
        if cur.rowcount != 1:
            return None
        alert_id = int(cur.lastrowid)  # type: ignore[arg-type]
        entry = sb.audit(conn, None, Action.ALERT_RAISED, f"alert/{alert_id}", {
            "alert_id": alert_id, "kind": cand.kind, "severity": cand.severity,
            "researcher": fields.username_of(conn, cand.researcher_id), "approval_id": cand.approval_id,
            "summary": cand.summary, "details": cand.details,
        })
        conn.execute("UPDATE alerts SET audit_seq = ? WHERE id = ?", (entry.seq, alert_id))
        row = conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    log.info("alert %s raised: %s", cand.kind, cand.summary)
    return view(conn, row)


#: Kinds whose repeats fold into the open alert of the same researcher and approval (issue 14:
#: de-duplicated, with a count and a time range) instead of raising a new one each time.
GROUPED_KINDS: Final = ("refusal_burst",)


def _fold_into_open(sb: Context, conn: sqlite3.Connection, cand: Candidate) -> dict[str, Any] | None:
    """Count ``cand`` as another occurrence of an open (not resolved) alert of the same kind,
    researcher and approval: occurrences + 1, the time range extended, the details merged; logged
    as ``alert.repeated``. None when there is no such alert."""
    row = conn.execute("SELECT * FROM alerts WHERE kind = ? AND researcher_id IS ? AND approval_id IS ? "
                       "AND status != 'resolved' ORDER BY id DESC LIMIT 1",
                       (cand.kind, cand.researcher_id, cand.approval_id)).fetchone()
    if row is None:
        return None
    details = json.loads(row["details_json"])
    new = dict(cand.details)
    if cand.kind == "refusal_burst":
        codes = Counter(details.get("codes") or {})
        codes.update(new.get("codes") or {})
        details.update(refusals=int(details.get("refusals", 0)) + int(new.get("refusals", 0)), codes=dict(codes),
                       last_refusal_at=new.get("last_refusal_at"))
    moment = iso(sb.now())
    conn.execute("UPDATE alerts SET occurrences = occurrences + 1, last_seen_at = ?, details_json = ? WHERE id = ?",
                 (moment, json.dumps(details, ensure_ascii=False), row["id"]))
    sb.audit(conn, None, Action.ALERT_REPEATED, f"alert/{row['id']}", {
        "alert_id": row["id"], "kind": cand.kind, "occurrences": row["occurrences"] + 1, "summary": cand.summary,
        "details": new})
    return view(conn, conn.execute("SELECT * FROM alerts WHERE id = ?", (row["id"],)).fetchone())


# -- reading ----------------------------------------------------------------------------------------
def view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    return {
        "alert_id": row["id"], "kind": row["kind"], "severity": row["severity"],
        "researcher": fields.username_of(conn, row["researcher_id"]), "approval_id": row["approval_id"],
        "summary": row["summary"], "details": json.loads(row["details_json"]),
        "created_at": row["created_at"], "audit_seq": row["audit_seq"],
        "subject": row["subject"] or None, "status": row["status"],
        "occurrences": row["occurrences"], "first_seen_at": row["created_at"], "last_seen_at": row["last_seen_at"],
        "handled_by": fields.username_of(conn, row["handled_by"]), "handled_at": row["handled_at"],
        "note": row["note"] or None,
    }
