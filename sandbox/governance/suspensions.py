"""Suspending and reinstating a researcher or an approval: the service functions (第二十二条).

The data owner (for approvals on their datasets and researchers holding one) or a
regulator (anything) suspends with a reason; the effect is immediate for every path:
``workflow.active_approval`` runs before planning and again inside the release transaction
(so requests already waiting are refused), API tokens are checked against it on every
query, and a suspended researcher's console sessions are revoked in the same transaction.
Automatic suspensions after repeated out-of-scope attempts (第二十六条) are made by
``workflow.after_refusal`` and listed here for the owners concerned.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from audit_log.actions import Action
from sandbox.errors import BadRequest, NotFound
from sandbox.governance import jurisdiction, organisations, workflow
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.users import User, find_user
from sandbox.store.workspace import transaction


def _holds_approval_of(conn: sqlite3.Connection, researcher_id: int, owner_id: int) -> bool:
    return conn.execute("SELECT 1 FROM approvals WHERE researcher_id = ? AND owner_id = ? LIMIT 1",
                        (researcher_id, owner_id)).fetchone() is not None


def researcher_relations(conn: sqlite3.Connection, user: User | None, target: User) -> set[str]:
    rel = set()
    if user is not None and target.id == user.id:
        rel.add("applicant")
    if user is not None and user.role == "owner" and _holds_approval_of(conn, target.id, user.id):
        rel.add("dataset_owner")
    return rel


def target_relations(conn: sqlite3.Connection, user: User | None, row: sqlite3.Row) -> set[str]:
    """The caller's relations to the researcher or approval a suspension or termination ``row`` names:
    one rule for both measures, since both act on the same two kinds of target."""
    if user is None:
        return set()
    rel = set()
    if row["target_type"] == "user":
        if row["target_id"] == user.id:
            rel.add("applicant")
        if user.role == "owner" and _holds_approval_of(conn, row["target_id"], user.id):
            rel.add("dataset_owner")
    else:
        approval = workflow.get_approval(conn, row["target_id"])
        if approval is not None and approval.researcher_id == user.id:
            rel.add("applicant")
        if approval is not None and approval.owner_id == user.id:
            rel.add("dataset_owner")
    return rel


def suspension_relations(conn: sqlite3.Connection, user: User | None, row: sqlite3.Row) -> set[str]:
    if user is None:
        return set()
    rel = target_relations(conn, user, row)
    if row["created_by"] == user.id:
        rel.add("creator")
    if row["automatic"] and "dataset_owner" in rel:
        rel.add("automatic")
    return rel


def target_view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    """The target of a suspension or termination ``row`` as the API shows it."""
    return ({"user": username_of(conn, row["target_id"])} if row["target_type"] == "user"
            else {"approval_id": row["target_id"]})


def resolve_target(conn: sqlite3.Connection, user: User, body: dict[str, Any], *, approval_action: str,
                   user_action: str, verb: str) -> tuple[str, int, dict[str, Any]]:
    """Find and authorise the approval or researcher ``body`` names for a suspension or a
    termination: ``(target_type, target_id, target)``. The same lookups, jurisdiction (第五条)
    and hiding rules serve both, so a measure cannot reach what the other could not."""
    if ("approval_id" in body) == ("user" in body):
        raise BadRequest('name exactly one of "approval_id" or "user"', code="bad_target")
    if "approval_id" in body:
        approval = workflow.get_approval(conn, fields.ident(body["approval_id"], "approval"))
        missing = f"no approval {body['approval_id']}"
        if approval is None:
            raise NotFound(missing)
        if not organisations.in_jurisdiction(conn, user, approval.datasets):
            raise NotFound(missing)  # a district regulator acts within their jurisdiction (第五条)
        rel = {"dataset_owner"} if user.id in workflow.approval_owner_ids(conn, approval) else set()
        if approval.researcher_id == user.id:
            rel.add("applicant")
        authz.check(approval_action, user, rel, missing=missing)
        return "approval", approval.id, {"approval_id": approval.id}
    authz.check_role(user_action, user)
    name = body["user"]
    target_user = find_user(conn, name) if isinstance(name, str) else None
    missing = f"no researcher {name!r}"
    if target_user is None:
        raise NotFound(missing)
    authz.check(user_action, user, researcher_relations(conn, user, target_user), missing=missing)
    if not organisations.in_jurisdiction(conn, user, jurisdiction.reached_datasets(conn, "user", target_user.id)):
        raise NotFound(missing)  # a district regulator: researchers holding an approval in its district
    if target_user.role != "researcher":
        raise BadRequest(f"{name!r} is not a researcher; only researchers and approvals are {verb}")
    return "user", target_user.id, {"user": target_user.username}


def _view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    target = target_view(conn, row)
    return {
        "suspension_id": row["id"], "target_type": row["target_type"], **target,
        "reason": row["reason"], "automatic": bool(row["automatic"]),
        "created_by": username_of(conn, row["created_by"]) or "system", "created_at": row["created_at"],
        "active": row["lifted_at"] is None, "lifted_at": row["lifted_at"],
        "lifted_by": username_of(conn, row["lifted_by"]), "lift_reason": row["lift_reason"],
    }


def create(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/suspensions`` ``{"approval_id"|"user", "reason"}``."""
    authz.check_role("approval.suspend", user)
    assert user is not None
    conn = sb.conn()
    target_type, target_id, target = resolve_target(conn, user, body, approval_action="approval.suspend",
                                                    user_action="researcher.suspend", verb="suspended")
    reason = fields.text(body, "reason")
    with transaction(conn):
        existing = workflow.active_suspension(conn, target_type, target_id)
        if existing is not None:
            raise conflict(f"already suspended (suspension {existing['id']})")
        suspension_id = workflow.suspend(conn, target_type, target_id, reason, by=user, now=sb.now)
        sb.audit(conn, user, Action.SUSPENSION_CREATED, f"suspension/{suspension_id}", {
            "suspension_id": suspension_id, "target_type": target_type, **target, "reason": reason,
            "automatic": False,
        })
    return {"suspension_id": suspension_id, "target_type": target_type, **target}


def lift(sb: Context, user: User | None, suspension_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/suspensions/<id>/lift`` ``{"reason"}`` (reinstatement)."""
    authz.check_role("suspension.lift", user)
    conn = sb.conn()
    ident = fields.ident(suspension_id, "suspension")
    row = conn.execute("SELECT * FROM suspensions WHERE id = ?", (ident,)).fetchone()
    missing = f"no suspension {suspension_id}"
    if row is None:
        raise NotFound(missing)
    authz.check("suspension.lift", user, suspension_relations(conn, user, row), missing=missing)

    if not organisations.in_jurisdiction(conn, user, jurisdiction.reached_datasets(conn, row["target_type"],
                                                                                 row["target_id"])):
        raise NotFound(missing)  # a district regulator reinstates within its district only (第五条)
    reason = fields.text(body, "reason")
    assert user is not None
    with transaction(conn):
        if conn.execute("SELECT lifted_at FROM suspensions WHERE id = ?", (ident,)).fetchone()[0]:
            raise conflict(f"suspension {ident} was already lifted")
        workflow.lift(conn, ident, reason, by=user, now=sb.now)
        target = target_view(conn, row)
        sb.audit(conn, user, Action.SUSPENSION_LIFTED, f"suspension/{ident}", {
            "suspension_id": ident, "target_type": row["target_type"], **target, "reason": reason,
        })
    return {"suspension_id": ident, "active": False}


def list_suspensions(sb: Context, user: User | None) -> list[dict[str, Any]]:
    """Own (researcher), own datasets' incl. automatic ones (owner), all (regulator)."""
    authz.check_role("suspension.list", user)
    conn = sb.conn()
    rows = conn.execute("SELECT * FROM suspensions ORDER BY id").fetchall()
    role = authz.role_of(user)

    return [_view(conn, r) for r in rows
            if authz.decide("suspension.read", role, suspension_relations(conn, user, r)) == "allow"
            and organisations.in_jurisdiction(conn, user, jurisdiction.reached_datasets(conn, r["target_type"],
                                                                                      r["target_id"]))]
