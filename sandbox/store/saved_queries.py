"""A researcher's saved queries: named SQL texts to reopen in the workbench (issue 15).

Only the researcher's own text is stored — no data, no result, nothing charged — so saving
is not an audited action (running a saved query is, like any query, 第十八条). Another
researcher's saved query reads exactly like a missing one.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from sandbox.clock import iso
from sandbox.errors import BadRequest, NotFound
from sandbox.store.users import User
from sandbox.store.workspace import transaction

MAX_PER_USER: Final = 200
MAX_NAME: Final = 120
MAX_SQL: Final = 20_000


@dataclass(frozen=True)
class SavedQuery:
    id: int
    name: str
    sql: str
    approval_id: int | None
    created_at: str
    updated_at: str


def _row(r: sqlite3.Row) -> SavedQuery:
    return SavedQuery(r["id"], r["name"], r["sql"], r["approval_id"], r["created_at"], r["updated_at"])


def list_saved(conn: sqlite3.Connection, user: User) -> list[SavedQuery]:
    """The user's saved queries, most recently saved first."""
    rows = conn.execute("SELECT * FROM saved_queries WHERE user_id = ? ORDER BY updated_at DESC, id DESC",
                        (user.id,)).fetchall()
    return [_row(r) for r in rows]


def get_saved(conn: sqlite3.Connection, user: User, ident: int) -> SavedQuery:
    row = conn.execute("SELECT * FROM saved_queries WHERE id = ? AND user_id = ?", (ident, user.id)).fetchone()
    if row is None:
        raise NotFound(f"no saved query {ident}")
    return _row(row)


def save(sb, user: User, name: str, sql: str, approval_id: int | None = None) -> SavedQuery:
    """Save ``sql`` under ``name``; the same name again replaces the text (one per name).

    Raises ``BadRequest`` naming the rule broken: an empty name or SQL, too long, too many.
    """
    name, sql = name.strip(), sql.strip()
    if not name:
        raise BadRequest("a saved query needs a name", code="saved_query_name_required")
    if len(name) > MAX_NAME:
        raise BadRequest(f"the name is longer than {MAX_NAME} characters", code="saved_query_name_too_long")
    if not sql:
        raise BadRequest("there is no SQL to save", code="saved_query_sql_required")
    if len(sql) > MAX_SQL:
        raise BadRequest(f"the SQL is longer than {MAX_SQL:,} characters", code="saved_query_too_long")
    conn = sb.conn()
    now = iso(sb.now())
    with transaction(conn):
        existing = conn.execute("SELECT id FROM saved_queries WHERE user_id = ? AND name = ?",
                                (user.id, name)).fetchone()
        if existing:
            conn.execute("UPDATE saved_queries SET sql = ?, approval_id = ?, updated_at = ? WHERE id = ?",
                         (sql, approval_id, now, existing["id"]))
            ident = existing["id"]
        else:
            (count,) = conn.execute("SELECT COUNT(*) FROM saved_queries WHERE user_id = ?", (user.id,)).fetchone()
            if count >= MAX_PER_USER:
                raise BadRequest(f"at most {MAX_PER_USER} saved queries; delete one first",
                                 code="saved_query_limit")
            ident = conn.execute(
                "INSERT INTO saved_queries (user_id, name, sql, approval_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", (user.id, name, sql, approval_id, now, now)).lastrowid
    return get_saved(conn, user, int(ident))


def delete(sb, user: User, ident: int) -> None:
    conn = sb.conn()
    with transaction(conn):
        if conn.execute("DELETE FROM saved_queries WHERE id = ? AND user_id = ?", (ident, user.id)).rowcount == 0:
            raise NotFound(f"no saved query {ident}")
