"""Who may see or act on one dataset: its relations to a user (public, open, its owner) and
the row a permitted action works on, within a district regulator's jurisdiction (第五条).

Why apart from ``open_catalog``: classification, caps, objections and transparency check
access to a dataset too; with the check here they need not import the catalog, which
imports them.
"""

from __future__ import annotations

import sqlite3

from sandbox.errors import NotFound
from sandbox.governance import jurisdiction
from sandbox.store import authz
from sandbox.store.context import Context
from sandbox.store.users import User


def dataset_row(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    if not isinstance(name, str):
        return None
    return conn.execute("SELECT * FROM datasets WHERE name = ?", (name.lower(),)).fetchone()


def published(conn: sqlite3.Connection, dataset_id: int) -> bool:
    return conn.execute("SELECT 1 FROM dataset_versions WHERE dataset_id = ? AND published_at IS NOT NULL",
                        (dataset_id,)).fetchone() is not None


def relations(conn: sqlite3.Connection, user: User | None, row: sqlite3.Row) -> set[str]:
    rel = set()
    if published(conn, row["id"]) and row["tier"] != "not_open":
        rel.add("public")
        if row["tier"] == "unconditional":
            rel.add("open")
    if user is not None and row["owner_id"] == user.id:
        rel.add("dataset_owner")
    return rel


#: regulator actions on one dataset that a district regulator may take within its district only
DISTRICT_ACTIONS = frozenset({"dataset.tier", "dataset.risk.read", "dataset.risk.ack", "dataset.bounding.read"})


def visible_row(sb: Context, user: User | None, action: str, name: str) -> sqlite3.Row:
    authz.check_role(action, user)
    conn = sb.conn()
    row = dataset_row(conn, name)
    missing = f"no dataset named {name!r}"
    if row is None:
        raise NotFound(missing)
    authz.check(action, user, relations(conn, user, row), missing=missing)
    if action in DISTRICT_ACTIONS and user is not None and user.role == "regulator":
        if not jurisdiction.covers(conn, user, [row["name"]]):
            raise NotFound(missing)  # 第五条: a district regulator acts within its district
    return row
