"""Read-only views over the store for the console: history, releases, usage, timeline.

Only SELECTs over ``queries``, ``ledger``, ``approvals``, ``applications``,
``suspensions`` and ``audit_entries``; every write goes through the service modules
(``sandbox.service.query_service``, ``sandbox.governance.applications``, ``sandbox.governance.suspensions`` …), which log it.
Visibility follows ``sandbox.store.authz``: a researcher sees their own queries; an owner the
queries on their approvals; a regulator everything. Another user's object reads exactly
like a missing one (SECURITY: the console never tells whether it exists).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Final

from sandbox.governance import jurisdiction, workflow
from sandbox.store.users import User

HISTORY_PAGE: Final = 50
TIMELINE_PAGE: Final = 50


@dataclass(frozen=True)
class QueryRecord:
    """One row of a researcher's history; ``response`` only for released queries."""

    id: str
    approval_id: int | None
    user_id: int
    username: str
    sql: str
    status: str
    error_code: str | None
    epsilon: float
    delta: float
    created_at: str
    audit_seq: int | None
    response: dict[str, Any] | None

    @property
    def receipt(self) -> dict[str, Any] | None:
        return (self.response or {}).get("receipt")


def _record(row: sqlite3.Row) -> QueryRecord:
    response = json.loads(row["response_json"]) if row["response_json"] else None
    return QueryRecord(row["id"], row["approval_id"], row["user_id"], row["username"], row["sql"], row["status"],
                       row["error_code"], row["epsilon"], row["delta"], row["created_at"], row["audit_seq"],
                       response)


_QUERY_SQL = (
    "SELECT q.*, u.username FROM queries q JOIN users u ON u.id = q.user_id "
    "LEFT JOIN approvals a ON a.id = q.approval_id "
)


def _visibility(conn: sqlite3.Connection, user: User) -> tuple[str, list[Any]]:
    if user.role == "regulator":
        if jurisdiction.is_district(conn, user):  # 第五条: the queries on its district's approvals only
            ids = [a.id for a in workflow.all_approvals(conn) if jurisdiction.covers(conn, user, a.datasets)]
            return (f"q.approval_id IN ({','.join('?' * len(ids))})", ids) if ids else ("0 = 1", [])
        return "1 = 1", []
    if user.role == "owner":
        return "a.owner_id = ?", [user.id]
    if user.role == "researcher":
        return "q.user_id = ?", [user.id]
    return "0 = 1", []


def query_history(conn: sqlite3.Connection, user: User, *, approval_id: int | None = None,
                  status: str | None = None, limit: int = HISTORY_PAGE, before: str | None = None) -> list[QueryRecord]:
    """Newest first: the queries ``user`` may see (own / on own approvals / all)."""
    where, params = _visibility(conn, user)
    clauses, args = [where], list(params)
    if approval_id is not None:
        clauses.append("q.approval_id = ?")
        args.append(approval_id)
    if status:
        clauses.append("q.status = ?")
        args.append(status)
    if before:
        clauses.append("q.created_at < ?")
        args.append(before)
    rows = conn.execute(
        _QUERY_SQL + "WHERE " + " AND ".join(clauses) + " ORDER BY q.created_at DESC, q.rowid DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    return [_record(r) for r in rows]


def get_query(conn: sqlite3.Connection, user: User, query_id: str) -> QueryRecord | None:
    """One query if ``user`` may see it, else None (missing and hidden look the same)."""
    where, params = _visibility(conn, user)
    row = conn.execute(_QUERY_SQL + f"WHERE q.id = ? AND {where}", (query_id, *params)).fetchone()
    return _record(row) if row else None


def released_csv_rows(record: QueryRecord) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a release as CSV: the released (noisy) values and their intervals.

    PRIVACY: only what the release already returned; nothing exact is read here.
    """
    response = record.response or {}
    columns = list(response.get("columns") or [])
    accuracy = response.get("accuracy") or {}
    header = list(columns)
    for c in columns:
        if c in accuracy:
            pct = round(100 * float(accuracy[c].get("confidence", 0.95)))
            header += [f"{c}_ci{pct}_low", f"{c}_ci{pct}_high"]
    out = []
    for r, row in enumerate(response.get("rows") or []):
        line = list(row)
        for c in columns:
            if c in accuracy:
                ivs = accuracy[c].get("intervals") or []
                iv = ivs[r] if r < len(ivs) else None
                line += [iv[0], iv[1]] if iv else [None, None]
        out.append(line)
    return header, out


# -- budgets and usage ---------------------------------------------------------------------------
def ledger_series(conn: sqlite3.Connection, approval_ids: list[int]) -> dict[int, list[tuple[str, float, float]]]:
    """Per approval: ``(time, ε charged, cumulative ε)`` in order, from the append-only ledger."""
    out: dict[int, list[tuple[str, float, float]]] = {a: [] for a in approval_ids}
    if not approval_ids:
        return out
    marks = ",".join("?" * len(approval_ids))
    totals: dict[int, float] = {}
    for r in conn.execute(f"SELECT approval_id, epsilon, created_at FROM ledger WHERE approval_id IN ({marks}) "
                          "ORDER BY id", approval_ids):
        total = totals.get(r["approval_id"], 0.0) + float(r["epsilon"])
        totals[r["approval_id"]] = total
        out[r["approval_id"]].append((r["created_at"], float(r["epsilon"]), total))
    return out


@dataclass(frozen=True)
class Usage:
    releases: int = 0
    refusals: int = 0
    failures: int = 0
    last_used: str | None = None


def usage(conn: sqlite3.Connection, approval_ids: list[int]) -> dict[int, Usage]:
    """Releases, refusals and failures per approval, and when it was last used."""
    out = {a: Usage() for a in approval_ids}
    if not approval_ids:
        return out
    marks = ",".join("?" * len(approval_ids))
    counts: dict[int, dict[str, int]] = {}
    last: dict[int, str] = {}
    for r in conn.execute(f"SELECT approval_id, status, COUNT(*) AS n, MAX(created_at) AS t FROM queries "
                          f"WHERE approval_id IN ({marks}) GROUP BY approval_id, status", approval_ids):
        counts.setdefault(r["approval_id"], {})[r["status"]] = r["n"]
        last[r["approval_id"]] = max(last.get(r["approval_id"], ""), r["t"] or "")
    for a, c in counts.items():
        out[a] = Usage(c.get("released", 0), c.get("refused", 0), c.get("failed", 0), last.get(a) or None)
    return out


def daily_releases(conn: sqlite3.Connection, approval_ids: list[int], days: int = 14) -> list[tuple[str, int, int]]:
    """``(day, releases, refusals)`` over the approvals' queries for the last ``days`` days with activity."""
    if not approval_ids:
        return []
    marks = ",".join("?" * len(approval_ids))
    rows = conn.execute(
        f"SELECT substr(created_at, 1, 10) AS day, SUM(status = 'released') AS rel, SUM(status = 'refused') AS ref "
        f"FROM queries WHERE approval_id IN ({marks}) GROUP BY day ORDER BY day DESC LIMIT ?",
        (*approval_ids, days),
    ).fetchall()
    return [(r["day"], int(r["rel"] or 0), int(r["ref"] or 0)) for r in reversed(rows)]


# -- the audit timeline --------------------------------------------------------------------------
@dataclass(frozen=True)
class TimelineFilter:
    actor: str | None = None
    action: str | None = None
    dataset: str | None = None
    since: str | None = None  # inclusive, RFC 3339 or a date
    until: str | None = None  # exclusive
    before_seq: int | None = None  # paging: entries older than this

    def active(self) -> bool:
        return any(v for k, v in self.__dict__.items() if k != "before_seq")


def timeline(conn: sqlite3.Connection, f: TimelineFilter, limit: int = TIMELINE_PAGE) -> list[dict[str, Any]]:
    """Audit entries, newest first, decoded, each with ``leaf_hash``.

    ``dataset`` matches an entry about the dataset (subject ``dataset/NAME``) or one whose
    details name it (``details.dataset``, a key of ``details.datasets`` for releases, an item
    of ``details.datasets`` for applications), and refusals and failures on an approval whose
    scope holds the dataset (issue 14).
    """
    where, params = ["1 = 1"], []  # type: tuple[list[str], list[Any]]
    if f.actor:
        where.append("actor = ?")
        params.append(f.actor)
    if f.action:
        if f.action.endswith("."):
            where.append("substr(action, 1, ?) = ?")
            params += [len(f.action), f.action]
        else:
            where.append("action = ?")
            params.append(f.action)
    if f.dataset:
        where.append(
            "(subject = ? OR json_extract(entry, '$.details.dataset') = ? "
            "OR (json_type(entry, '$.details.datasets') = 'object' "
            "    AND json_type(json_extract(entry, '$.details.datasets'), '$.\"' || ? || '\"') IS NOT NULL) "
            "OR (json_type(entry, '$.details.datasets') = 'array' AND EXISTS "
            "    (SELECT 1 FROM json_each(entry, '$.details.datasets') WHERE value = ?)) "
            # issue 14: refusals and failures name no dataset (a refusal reads none); they count
            # for the datasets of the approval they were made on
            "OR (action IN ('query.refused', 'query.failed') AND json_extract(entry, '$.details.approval_id') IN "
            "    (SELECT a.id FROM approvals a WHERE EXISTS "
            "       (SELECT 1 FROM json_each(a.scope_json, '$.datasets') WHERE lower(value) = ?))))"
        )
        params += [f"dataset/{f.dataset}", f.dataset, f.dataset, f.dataset, f.dataset]
    if f.since:
        where.append("time >= ?")
        params.append(f.since)
    if f.until:
        where.append("time < ?")
        params.append(f.until)
    if f.before_seq is not None:
        where.append("seq < ?")
        params.append(f.before_seq)
    rows = conn.execute(
        "SELECT entry, leaf_hash FROM audit_entries WHERE " + " AND ".join(where) + " ORDER BY seq DESC LIMIT ?",
        (*params, limit),
    ).fetchall()
    out = []
    for r in rows:
        item = json.loads(r["entry"])
        item["leaf_hash"] = bytes(r["leaf_hash"]).hex()
        out.append(item)
    return out


def timeline_choices(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """The values the timeline's filter menus offer."""
    return {
        "actors": [r[0] for r in conn.execute("SELECT DISTINCT actor FROM audit_entries ORDER BY actor")],
        "actions": [r[0] for r in conn.execute("SELECT DISTINCT action FROM audit_entries ORDER BY action")],
        "datasets": [r[0] for r in conn.execute("SELECT name FROM datasets ORDER BY name")],
    }
