"""Applications, approvals and suspensions (第十五、二十二、二十六条).

An approval fixes the scenario (datasets, columns, operations), the privacy budget and
the expiry. Every query first passes :func:`active_approval`, which refuses a suspended
researcher, a suspended or expired approval, or somebody else's approval — with the same
"not found" for an approval that is not yours as for one that does not exist.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from query_guard import Scenario
from sandbox.clock import Clock, iso, parse_iso
from sandbox.errors import NotFound, Suspended
from sandbox.users import User


@dataclass(frozen=True)
class Approval:
    id: int
    application_id: int
    researcher_id: int
    owner_id: int
    scope: dict[str, Any]
    epsilon_total: float
    delta_total: float
    epsilon_per_query: float
    expires_at: str | None
    created_at: str

    @property
    def scenario(self) -> Scenario:
        s = self.scope
        return Scenario(
            datasets=frozenset(d.lower() for d in s.get("datasets", [])),
            columns={k.lower(): frozenset(c.lower() for c in v) for k, v in (s.get("columns") or {}).items()},
            aggregates=frozenset(s.get("aggregates") or ()),
            group_by={k.lower(): frozenset(c.lower() for c in v) for k, v in (s.get("group_by") or {}).items()},
            bounds={
                (k.split(".", 1)[0], k.split(".", 1)[1]): (float(v[0]), float(v[1]))
                for k, v in (s.get("bounds") or {}).items()
            },
        )


def _approval(row: sqlite3.Row) -> Approval:
    return Approval(row["id"], row["application_id"], row["researcher_id"], row["owner_id"],
                    json.loads(row["scope_json"]), row["epsilon_total"], row["delta_total"],
                    row["epsilon_per_query"], row["expires_at"], row["created_at"])


def get_approval(conn: sqlite3.Connection, approval_id: int) -> Approval | None:
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return _approval(row) if row else None


def approvals_for(conn: sqlite3.Connection, user: User) -> list[Approval]:
    column = "researcher_id" if user.role == "researcher" else "owner_id"
    if user.role == "regulator":
        rows = conn.execute("SELECT * FROM approvals ORDER BY id").fetchall()
    else:
        rows = conn.execute(f"SELECT * FROM approvals WHERE {column} = ? ORDER BY id", (user.id,)).fetchall()
    return [_approval(r) for r in rows]


def active_suspension(conn: sqlite3.Connection, target_type: str, target_id: int) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT * FROM suspensions WHERE target_type = ? AND target_id = ? AND lifted_at IS NULL "
        "ORDER BY id DESC LIMIT 1",
        (target_type, target_id),
    ).fetchone()


def active_approval(conn: sqlite3.Connection, user: User, approval_id: Any, *, now: Clock) -> Approval:
    """The caller's usable approval, or a refusal that says why (and leaks nothing)."""
    try:
        ident = int(approval_id)
    except (TypeError, ValueError):
        raise NotFound("approval_id must be the number of one of your approvals") from None
    approval = get_approval(conn, ident)
    if approval is None or approval.researcher_id != user.id:
        # SECURITY: another user's approval looks exactly like a missing one.
        raise NotFound(f"you have no approval {ident}")
    if active_suspension(conn, "user", user.id) is not None:
        raise Suspended("your access is suspended; contact the data owner or the regulator", code="suspended")
    if active_suspension(conn, "approval", approval.id) is not None:
        raise Suspended(f"approval {approval.id} is suspended", code="suspended")
    if approval.expires_at and parse_iso(approval.expires_at) <= now():
        raise Suspended(f"approval {approval.id} expired on {approval.expires_at[:10]}", code="expired")
    return approval


def create_application(
    conn: sqlite3.Connection, researcher: User, request: dict[str, Any], *, scenario: str, purpose: str,
    commitment_accepted: bool, now: Clock,
) -> int:
    cur = conn.execute(
        "INSERT INTO applications (researcher_id, request_json, scenario, purpose, commitment_accepted, "
        "status, created_at) VALUES (?,?,?,?,?, 'pending', ?)",
        (researcher.id, json.dumps(request, ensure_ascii=False), scenario, purpose, int(commitment_accepted), iso(now())),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def approve(
    conn: sqlite3.Connection, application_id: int, owner: User, scope: dict[str, Any], *,
    epsilon_total: float, delta_total: float, epsilon_per_query: float, expires_at: str | None,
    now: Clock, signature: str = "",
) -> int:
    app = conn.execute("SELECT * FROM applications WHERE id = ?", (application_id,)).fetchone()
    conn.execute(
        "UPDATE applications SET status = 'approved', decided_by = ?, decided_at = ? WHERE id = ?",
        (owner.id, iso(now()), application_id),
    )
    cur = conn.execute(
        "INSERT INTO approvals (application_id, researcher_id, owner_id, scope_json, epsilon_total, "
        "delta_total, epsilon_per_query, expires_at, signature, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (application_id, app["researcher_id"], owner.id, json.dumps(scope, ensure_ascii=False),
         epsilon_total, delta_total, epsilon_per_query, expires_at, signature, iso(now())),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def scope_datasets(scope: dict[str, Any]) -> list[str]:
    return [d.lower() for d in scope.get("datasets", [])]


def require(condition: bool, message: str = "not found") -> None:
    if not condition:
        raise NotFound(message)


def after_refusal(conn: sqlite3.Connection, user: User, code: str, *, now: Clock, audit) -> None:
    """Hook run inside the refusal's transaction (第二十六条: repeated out-of-scope use).

    ``audit(conn, actor, action, subject, details)`` appends to the log. Counting
    out-of-scope refusals per researcher in a window and suspending automatically lives here.
    """
    return None
