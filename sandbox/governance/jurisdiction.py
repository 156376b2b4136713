"""Which datasets an object concerns, so a district regulator sees and acts within its district
(第五、二十八条; issue 14).

:func:`sandbox.governance.organisations.in_jurisdiction` decides on a list of datasets; this module finds
that list for the objects that are not an application or an approval: audit-log entries,
objections (signed-in and public), alerts, suspensions. Least privilege: an object that
concerns no dataset at all (a setting, a user account, a key rotation, an organisation) is the
city bureau's, and a district regulator does not see it. The city regulator sees everything.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sandbox.governance import organisations, workflow
from sandbox.store.users import User

CITY = organisations.CITY


def is_district(conn: sqlite3.Connection, user: User | None) -> bool:
    """A regulator whose jurisdiction is one district (not the city)."""
    return user is not None and user.role == "regulator" and organisations.jurisdiction_of(conn, user) != CITY


def covers(conn: sqlite3.Connection, user: User | None, names: Iterable[str]) -> bool:
    """:func:`organisations.in_jurisdiction`: True for every non-regulator and the city."""
    return organisations.in_jurisdiction(conn, user, list(names))


def _int(text: Any) -> int | None:
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value < 2**63 else None


def approval_datasets(conn: sqlite3.Connection, approval_id: Any) -> list[str]:
    ident = _int(approval_id)
    a = workflow.get_approval(conn, ident) if ident is not None else None
    return list(a.datasets) if a else []


def researcher_datasets(conn: sqlite3.Connection, user_id: int) -> list[str]:
    """Every dataset of every approval a researcher holds (a researcher-wide measure reaches them all)."""

    return reached_datasets(conn, "user", user_id)


def target_datasets(conn: sqlite3.Connection, target_type: str, target_id: Any) -> list[str]:
    """The datasets a contested decision (an objection's target) concerns."""

    ident = _int(target_id)
    if ident is None:
        return []
    if target_type == "application":
        row = conn.execute("SELECT request_json FROM applications WHERE id = ?", (ident,)).fetchone()
        return [d.lower() for d in json.loads(row[0]).get("datasets", [])] if row else []
    if target_type == "approval":
        return approval_datasets(conn, ident)
    if target_type in ("suspension", "termination"):
        table = "suspensions" if target_type == "suspension" else "terminations"
        row = conn.execute(f"SELECT target_type, target_id FROM {table} WHERE id = ?", (ident,)).fetchone()
        return reached_datasets(conn, row[0], row[1]) if row else []
    if target_type == "tier_change":
        row = conn.execute("SELECT d.name FROM dataset_tier_changes c JOIN datasets d ON d.id = c.dataset_id "
                           "WHERE c.id = ?", (ident,)).fetchone()
        return [row[0]] if row else []
    return []


def objection_datasets(conn: sqlite3.Connection, objection_id: Any) -> list[str]:
    row = conn.execute("SELECT target_type, target_id FROM objections WHERE id = ?", (_int(objection_id),)).fetchone()
    return target_datasets(conn, row[0], row[1]) if row else []


def public_objection_datasets(conn: sqlite3.Connection, row: Mapping[str, Any]) -> list[str]:
    """A public objection names a dataset, a tier change, or a project (an approval)."""
    if row["target_type"] == "dataset":
        return [str(row["target"]).lower()]
    if row["target_type"] == "project":
        return approval_datasets(conn, row["target"])
    return target_datasets(conn, row["target_type"], row["target"])


def subject_datasets(conn: sqlite3.Connection, subject: str) -> list[str]:
    """The datasets an audit entry's or an alert's subject (``kind/id``) concerns; ``[]`` for none."""
    kind, _, ident = (subject or "").partition("/")
    if kind == "dataset":
        return [ident.lower()]
    if kind in ("approval", "application", "suspension", "termination", "tier_change"):
        return target_datasets(conn, kind, ident)
    if kind == "objection":
        return objection_datasets(conn, ident)
    if kind == "public_objection":
        row = conn.execute("SELECT * FROM public_objections WHERE id = ?", (_int(ident),)).fetchone()
        return public_objection_datasets(conn, row) if row else []
    if kind == "review":
        row = conn.execute("SELECT d.name FROM publication_reviews r JOIN datasets d ON d.id = r.dataset_id "
                           "WHERE r.id = ?", (_int(ident),)).fetchone()
        return [row[0]] if row else []
    if kind == "rectification":
        row = conn.execute("SELECT dataset_id, owner_id FROM rectification_orders WHERE id = ?",
                           (_int(ident),)).fetchone()
        if row is None:
            return []
        sql, arg = (("SELECT name FROM datasets WHERE id = ?", row[0]) if row[0]
                    else ("SELECT name FROM datasets WHERE owner_id = ?", row[1]))
        return [r[0] for r in conn.execute(sql, (arg,))]
    if kind == "alert":
        row = conn.execute("SELECT * FROM alerts WHERE id = ?", (_int(ident),)).fetchone()
        return alert_datasets(conn, row) if row else []
    if kind == "user":
        row = conn.execute("SELECT id, role FROM users WHERE username = ?", (ident,)).fetchone()
        return researcher_datasets(conn, row[0]) if row and row[1] == "researcher" else []
    if kind == "opening_plan":
        row = conn.execute("SELECT owner_id FROM opening_plans WHERE id = ?", (_int(ident),)).fetchone()
        return [r[0] for r in conn.execute("SELECT name FROM datasets WHERE owner_id = ?", (row[0],))] if row else []
    return []


def entry_datasets(conn: sqlite3.Connection, entry: Mapping[str, Any]) -> list[str]:
    """The datasets an audit entry concerns: from its details (approval, dataset), else its subject."""
    details = entry.get("details") or {}
    names: list[str] = []
    if details.get("approval_id") is not None:
        names += approval_datasets(conn, details["approval_id"])
    if isinstance(details.get("dataset"), str):
        names.append(details["dataset"].lower())
    if isinstance(details.get("datasets"), list):
        names += [str(d).lower() for d in details["datasets"]]
    return names or subject_datasets(conn, str(entry.get("subject", "")))


def alert_datasets(conn: sqlite3.Connection, row: Mapping[str, Any]) -> list[str]:
    """An alert's approval's datasets, else its subject's, else its researcher's approvals'."""
    if row["approval_id"] is not None:
        return approval_datasets(conn, row["approval_id"])
    names = subject_datasets(conn, row["subject"] or "")
    if not names and row["researcher_id"] is not None:
        names = researcher_datasets(conn, row["researcher_id"])
    return names


def entry_visible(conn: sqlite3.Connection, user: User | None, entry: Mapping[str, Any]) -> bool:
    """Whether ``user`` may read an audit entry: the city regulator all; a district regulator only
    entries about a dataset of its district (none about nothing: those are the city's)."""
    if not is_district(conn, user):
        return True
    return covers(conn, user, entry_datasets(conn, entry))


def entry_filter(conn: sqlite3.Connection, user: User | None) -> Callable[[Mapping[str, Any]], bool]:
    """:func:`entry_visible` for many entries: the district and each dataset's district read once."""
    if not is_district(conn, user):
        return lambda _e: True
    assert user is not None
    where = organisations.jurisdiction_of(conn, user)
    district: dict[str, str | None] = {}

    def visible(entry: Mapping[str, Any]) -> bool:
        for name in entry_datasets(conn, entry):
            if name not in district:
                row = conn.execute("SELECT o.district FROM datasets d LEFT JOIN organisations o ON o.id = d.org_id "
                                   "WHERE d.name = ?", (name,)).fetchone()
                district[name] = row[0] if row else None
            if district[name] == where:
                return True
        return False

    return visible


def visible_entries(conn: sqlite3.Connection, user: User | None, entries: Iterable[dict[str, Any]]
                    ) -> list[dict[str, Any]]:
    keep = entry_filter(conn, user)
    return [e for e in entries if keep(e)]


def reached_datasets(conn: sqlite3.Connection, target_type: str, target_id: int) -> list[str]:
    """The datasets a suspension's or a termination's target reaches: the approval's, or every
    approval's of the researcher (for a district regulator's jurisdiction, 第五条)."""
    if target_type == "approval":
        a = workflow.get_approval(conn, target_id)
        return a.datasets if a else []
    return sorted({d.lower() for r in conn.execute("SELECT scope_json FROM approvals WHERE researcher_id = ?",
                                                   (target_id,))
                   for d in (json.loads(r[0]).get("datasets") or [])})
