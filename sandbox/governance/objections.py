"""Objections (第十七条): any user may object to a decision through the portal; the
regulator (大数据主管部门) answers; both parties — the one who objected and the one whose
decision it contests — and regulators see it; filing and answering are logged.

Decisions that can be contested: an application's approval or rejection, an approval's
terms, a suspension, a tier change. An objection can only name a decision its filer can see
(otherwise: the same "not found" as for a decision that does not exist).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.errors import BadRequest, NotFound
from sandbox.governance import (
    applications,
    approvals,
    attachments,
    dataset_access,
    deadlines,
    enforcement,
    jurisdiction,
    suspensions,
    workflow,
)
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.users import User
from sandbox.store.workspace import transaction

TARGETS: Final = ("application", "approval", "suspension", "tier_change", "termination")


def _target(conn: sqlite3.Connection, user: User, target_type: str, target_id: int) -> tuple[int | None, str]:
    """(respondent id, description) of a decision ``user`` can see; NotFound otherwise."""
    role = user.role
    missing = f"no {target_type.replace('_', ' ')} {target_id}"
    if target_type == "application":
        row = conn.execute("SELECT * FROM applications WHERE id = ?", (target_id,)).fetchone()
        if row is None or authz.decide("application.read", role, applications.app_relations(user, row)) != "allow":
            raise NotFound(missing)
        if row["status"] == "pending":
            raise BadRequest(f"application {target_id} has not been decided yet", code="not_decided")
        return row["decided_by"], f"application {target_id} {row['status']}"
    if target_type == "approval":
        approval = workflow.get_approval(conn, target_id)
        rel = approvals.approval_relations(conn, user, approval) if approval else set()
        if approval is None or authz.decide("approval.read", role, rel) != "allow":
            raise NotFound(missing)
        return approval.owner_id, f"approval {target_id}"
    if target_type == "suspension":
        row = conn.execute("SELECT * FROM suspensions WHERE id = ?", (target_id,)).fetchone()
        if row is None or authz.decide("suspension.read", role,
                                       suspensions.suspension_relations(conn, user, row)) != "allow":
            raise NotFound(missing)
        return row["created_by"], f"suspension {target_id}"
    if target_type == "termination":  # issue 14: final unless an objection is upheld (第二十六条)
        return enforcement.termination_visible(conn, user, target_id), f"termination {target_id}"
    row = conn.execute(
        "SELECT c.*, d.name FROM dataset_tier_changes c JOIN datasets d ON d.id = c.dataset_id WHERE c.id = ?",
        (target_id,),
    ).fetchone()
    if row is None:
        raise NotFound(missing)
    dataset = conn.execute("SELECT * FROM datasets WHERE id = ?", (row["dataset_id"],)).fetchone()
    if authz.decide("dataset.read", role, dataset_access.relations(conn, user, dataset)) != "allow":
        raise NotFound(missing)
    return row["changed_by"], f"tier change {target_id} of {row['name']} to {row['to_tier']}"


def _relations(user: User | None, row: sqlite3.Row) -> set[str]:
    if user is not None and user.id in (row["filed_by"], row["respondent_id"]):
        return {"party"}
    return set()


def _view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    return {
        "objection_id": row["id"], "target_type": row["target_type"], "target_id": row["target_id"],
        "text": row["text"], "filed_by": username_of(conn, row["filed_by"]),
        "respondent": username_of(conn, row["respondent_id"]), "status": row["status"], "answer": row["answer"],
        "answered_by": username_of(conn, row["answered_by"]), "answered_at": row["answered_at"],
        "created_at": row["created_at"], "due_at": row["due_at"],
        "evidence": attachments.list_for(conn, "objection", row["id"]),
    }


def file(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/objections`` ``{"target_type", "target_id", "text"}``."""
    authz.check_role("objection.create", user)
    assert user is not None
    target_type = body.get("target_type")
    if target_type not in TARGETS:
        raise BadRequest(f"target_type must be one of {', '.join(TARGETS)}", code="bad_target")
    target_id = fields.ident(body.get("target_id"), target_type.replace("_", " "))
    text = fields.text(body, "text")
    files = attachments.parse(body.get("evidence"))  # 第十七条: evidence, checked by content
    conn = sb.conn()
    respondent, what = _target(conn, user, target_type, target_id)
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO objections (filed_by, target_type, target_id, respondent_id, text, created_at, due_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (user.id, target_type, target_id, respondent, text, iso(sb.now()),
             deadlines.due_at(conn, "objection", sb.now())),
        )
        objection_id = int(cur.lastrowid)  # type: ignore[arg-type]
        stored = attachments.store(sb, conn, "objection", objection_id, user, files)
        sb.audit(conn, user, Action.OBJECTION_FILED, f"objection/{objection_id}", {
            "objection_id": objection_id, "target_type": target_type, "target_id": target_id,
            "decision": what, "respondent": username_of(conn, respondent), "text": text,
            "evidence": attachments.summary(stored),
        })
    return {"objection_id": objection_id, "status": "open", "evidence": stored}


def _row(sb: Context, user: User | None, action: str, objection_id: Any) -> sqlite3.Row:
    authz.check_role(action, user)
    ident = fields.ident(objection_id, "objection")
    row = sb.conn().execute("SELECT * FROM objections WHERE id = ?", (ident,)).fetchone()
    missing = f"no objection {objection_id}"
    if row is None:
        raise NotFound(missing)
    authz.check(action, user, _relations(user, row), missing=missing)
    if "party" not in _relations(user, row) and not jurisdiction.covers(
            sb.conn(), user, jurisdiction.target_datasets(sb.conn(), row["target_type"], row["target_id"])):
        raise NotFound(missing)  # a district regulator reads and answers within its district (第五条)
    return row


def answer(sb: Context, user: User | None, objection_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/objections/<id>/answer`` ``{"answer"}`` by a regulator."""
    row = _row(sb, user, "objection.answer", objection_id)
    assert user is not None
    text = fields.text(body, "answer")
    conn = sb.conn()
    with transaction(conn):
        if conn.execute("SELECT status FROM objections WHERE id = ?", (row["id"],)).fetchone()[0] != "open":
            raise conflict(f"objection {row['id']} was already answered")
        conn.execute("UPDATE objections SET status = 'answered', answer = ?, answered_by = ?, answered_at = ? "
                     "WHERE id = ?", (text, user.id, iso(sb.now()), row["id"]))
        sb.audit(conn, user, Action.OBJECTION_ANSWERED, f"objection/{row['id']}", {
            "objection_id": row["id"], "filed_by": username_of(conn, row["filed_by"]), "answer": text,
        })
    return {"objection_id": row["id"], "status": "answered"}


def get(sb: Context, user: User | None, objection_id: Any) -> dict[str, Any]:
    return _view(sb.conn(), _row(sb, user, "objection.read", objection_id))


def list_objections(sb: Context, user: User | None) -> list[dict[str, Any]]:
    authz.check_role("objection.list", user)
    conn = sb.conn()
    role = authz.role_of(user)
    rows = conn.execute("SELECT * FROM objections ORDER BY id").fetchall()
    now = sb.now()
    return [deadlines.annotate(_view(conn, r), now) for r in rows
            if authz.decide("objection.read", role, _relations(user, r)) == "allow"
            and ("party" in _relations(user, r)
                 or jurisdiction.covers(conn, user, jurisdiction.target_datasets(conn, r["target_type"],
                                                                                 r["target_id"])))]
