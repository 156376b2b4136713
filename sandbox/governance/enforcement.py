"""Termination and rectification orders (第二十五、二十六条; issue 14).

**Termination** (第二十六条: 开放主体应当终止向其提供公共数据开放服务) ends an approval or a
researcher's access for good — a false application, use outside the scenario, a broken
security commitment. Unlike a suspension it cannot be lifted: it is final unless a regulator
reverses it on an objection (第十七条) filed against it by the researcher concerned. The data
owner (approvals on their datasets, researchers holding one) or a regulator terminates, with a
reason; the effect is immediate on every path (``workflow.active_approval`` refuses with
``terminated``; a terminated researcher's console sessions end at once).

**Rectification orders** (第二十五条: 督促限期整改): the regulator orders an owner to fix
something by a date (default: the ``rectification_days`` time limit). The owner submits what
was done; only the regulator's sign-off closes the order (or sends it back). An order past its
due date and not closed is *overdue*: it shows on both dashboards and raises an alert
(:mod:`sandbox.governance.deadlines`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso, parse_iso
from sandbox.errors import BadRequest, NotFound
from sandbox.governance import deadlines, jurisdiction, organisations, suspensions, workflow
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.users import User, find_user
from sandbox.store.workspace import transaction

ORDER_STATUSES: Final = ("open", "submitted", "closed")


# -- terminations -----------------------------------------------------------------------------------
def _termination_view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    target = suspensions.target_view(conn, row)
    return {
        "termination_id": row["id"], "target_type": row["target_type"], **target, "reason": row["reason"],
        "created_by": username_of(conn, row["created_by"]), "created_at": row["created_at"],
        "final": row["reversed_at"] is None, "reversed_at": row["reversed_at"],
        "reversed_by": username_of(conn, row["reversed_by"]), "reverse_reason": row["reverse_reason"],
        "objection_id": row["objection_id"],
    }


def terminate(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/terminations`` ``{"approval_id"|"user", "reason"}`` (owner, regulator)."""
    authz.check_role("termination.create", user)
    assert user is not None
    conn = sb.conn()
    target_type, target_id, target = suspensions.resolve_target(
        conn, user, body, approval_action="termination.create", user_action="termination.create", verb="terminated")
    reason = fields.text(body, "reason")
    with transaction(conn):
        existing = workflow.active_termination(conn, target_type, target_id)
        if existing is not None:
            raise conflict(f"already terminated (termination {existing['id']})")
        cur = conn.execute("INSERT INTO terminations (target_type, target_id, reason, created_by, created_at) "
                           "VALUES (?,?,?,?,?)", (target_type, target_id, reason, user.id, iso(sb.now())))
        termination_id = int(cur.lastrowid)  # type: ignore[arg-type]
        if target_type == "user":  # SECURITY: sessions end now, as for a suspension
            conn.execute("UPDATE web_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                         (iso(sb.now()), target_id))
        sb.audit(conn, user, Action.TERMINATION_CREATED, f"termination/{termination_id}", {
            "termination_id": termination_id, "target_type": target_type, **target, "reason": reason})
    return {"termination_id": termination_id, "target_type": target_type, **target, "final": True}


def reverse(sb: Context, user: User | None, termination_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/terminations/<id>/reverse`` ``{"objection_id", "reason"}`` (regulator only):
    a termination is final unless an objection filed against it is upheld (第十七、二十六条)."""
    authz.check_role("termination.reverse", user)
    assert user is not None
    conn = sb.conn()
    row = _termination_row(conn, termination_id)
    if not organisations.in_jurisdiction(conn, user, jurisdiction.reached_datasets(conn, row["target_type"], row["target_id"])):
        raise NotFound(f"no termination {termination_id}")  # a district regulator: its district only (第五条)
    reason = fields.text(body, "reason")
    objection_id = fields.ident(body.get("objection_id"), "objection")
    obj = conn.execute("SELECT * FROM objections WHERE id = ?", (objection_id,)).fetchone()
    if obj is None or obj["target_type"] != "termination" or obj["target_id"] != row["id"]:
        raise BadRequest(f"objection {objection_id} is not an objection against termination {row['id']}; "
                         "a termination is reversed only on an objection against it (第十七条)",
                         code="objection_required")
    with transaction(conn):
        if conn.execute("SELECT reversed_at FROM terminations WHERE id = ?", (row["id"],)).fetchone()[0]:
            raise conflict(f"termination {row['id']} was already reversed")
        conn.execute("UPDATE terminations SET reversed_at = ?, reversed_by = ?, reverse_reason = ?, "
                     "objection_id = ? WHERE id = ?", (iso(sb.now()), user.id, reason, objection_id, row["id"]))
        if obj["status"] == "open":
            conn.execute("UPDATE objections SET status = 'answered', answer = ?, answered_by = ?, answered_at = ? "
                         "WHERE id = ?", (f"upheld: termination reversed. {reason}", user.id, iso(sb.now()),
                                          objection_id))
        sb.audit(conn, user, Action.TERMINATION_REVERSED, f"termination/{row['id']}", {
            "termination_id": row["id"], "objection_id": objection_id, "reason": reason})
    return {"termination_id": row["id"], "final": False, "reversed_by": user.username}


def _termination_row(conn: sqlite3.Connection, termination_id: Any) -> sqlite3.Row:
    ident = fields.ident(termination_id, "termination")
    row = conn.execute("SELECT * FROM terminations WHERE id = ?", (min(ident, 2**63 - 1),)).fetchone()
    if row is None:
        raise NotFound(f"no termination {termination_id}")
    return row


def list_terminations(sb: Context, user: User | None) -> list[dict[str, Any]]:
    authz.check_role("termination.list", user)
    conn = sb.conn()
    role = authz.role_of(user)
    rows = conn.execute("SELECT * FROM terminations ORDER BY id").fetchall()
    return [_termination_view(conn, r) for r in rows
            if authz.decide("termination.read", role, suspensions.target_relations(conn, user, r)) == "allow"
            and organisations.in_jurisdiction(conn, user, jurisdiction.reached_datasets(conn, r["target_type"], r["target_id"]))]


def termination_visible(conn: sqlite3.Connection, user: User, termination_id: int) -> int | None:
    """The respondent (who terminated) of a termination ``user`` may see; NotFound otherwise
    (for objections against it)."""
    row = conn.execute("SELECT * FROM terminations WHERE id = ?", (termination_id,)).fetchone()
    if row is None or authz.decide("termination.read", user.role, suspensions.target_relations(conn, user, row)) != "allow":
        raise NotFound(f"no termination {termination_id}")
    return int(row["created_by"])


# -- rectification orders (第二十五条) -------------------------------------------------------------------
def _order_view(conn: sqlite3.Connection, row: sqlite3.Row, now: dt.datetime) -> dict[str, Any]:
    dataset = (conn.execute("SELECT name FROM datasets WHERE id = ?", (row["dataset_id"],)).fetchone()
               if row["dataset_id"] else None)
    return {
        "order_id": row["id"], "owner": username_of(conn, row["owner_id"]), "dataset": dataset["name"] if dataset else None,
        "what": row["what"], "due_at": row["due_at"], "status": row["status"],
        "overdue": row["status"] != "closed" and parse_iso(row["due_at"]) < now,
        "issued_by": username_of(conn, row["issued_by"]), "created_at": row["created_at"],
        "response": row["response"] or None, "responded_at": row["responded_at"],
        "closed_by": username_of(conn, row["closed_by"]), "closed_at": row["closed_at"],
        "close_note": row["close_note"] or None,
    }


def issue_order(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/rectifications`` ``{"owner", "dataset"?, "what", "due"?}`` (regulator)."""
    authz.check_role("rectification.create", user)
    assert user is not None
    conn = sb.conn()
    name = body.get("owner")
    owner = find_user(conn, name) if isinstance(name, str) else None
    if owner is None or owner.role != "owner":
        raise BadRequest(f"owner must name a user with the owner role, not {name!r}", code="bad_owner")
    owned = [r[0] for r in conn.execute("SELECT name FROM datasets WHERE owner_id = ?", (owner.id,))]
    if user.role == "regulator" and not organisations.in_jurisdiction(conn, user, owned):
        raise NotFound(f"no owner {name!r} in your jurisdiction")  # 第五条
    dataset_id = None
    if body.get("dataset") is not None:
        row = conn.execute("SELECT id, owner_id FROM datasets WHERE name = ?", (str(body["dataset"]).lower(),)
                           ).fetchone()
        if row is None or row["owner_id"] != owner.id:
            raise BadRequest(f"{owner.username!r} has no dataset {body['dataset']!r}", code="bad_dataset")
        dataset_id = row["id"]
    what = fields.text(body, "what")
    due = deadlines.parse_due(body.get("due"), sb.now()) or deadlines.due_at(conn, "rectification", sb.now())
    with transaction(conn):
        cur = conn.execute("INSERT INTO rectification_orders (owner_id, dataset_id, issued_by, what, due_at, "
                           "created_at) VALUES (?,?,?,?,?,?)",
                           (owner.id, dataset_id, user.id, what, due, iso(sb.now())))
        order_id = int(cur.lastrowid)  # type: ignore[arg-type]
        sb.audit(conn, user, Action.RECTIFICATION_ORDERED, f"rectification/{order_id}", {
            "order_id": order_id, "owner": owner.username, "dataset": body.get("dataset"), "what": what,
            "due_at": due})
    return {"order_id": order_id, "status": "open", "due_at": due}


def _order_row(sb: Context, user: User | None, action: str, order_id: Any) -> sqlite3.Row:
    authz.check_role(action, user)
    ident = fields.ident(order_id, "rectification order")
    row = sb.conn().execute("SELECT * FROM rectification_orders WHERE id = ?", (min(ident, 2**63 - 1),)).fetchone()
    missing = f"no rectification order {order_id}"
    if row is None:
        raise NotFound(missing)
    rel = {"dataset_owner"} if user is not None and row["owner_id"] == user.id else set()
    authz.check(action, user, rel, missing=missing)
    if user is not None and user.role == "regulator" and not organisations.in_jurisdiction(
            sb.conn(), user, _order_datasets(sb.conn(), row)):
        raise NotFound(missing)  # 第五条: another district's order reads like a missing one
    return row


def respond(sb: Context, user: User | None, order_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The owner reports what was fixed; the order waits for the regulator's sign-off."""
    row = _order_row(sb, user, "rectification.respond", order_id)
    assert user is not None
    text = fields.text(body, "response")
    conn = sb.conn()
    with transaction(conn):
        if conn.execute("SELECT status FROM rectification_orders WHERE id = ?", (row["id"],)).fetchone()[0] == "closed":
            raise conflict(f"rectification order {row['id']} is closed")
        conn.execute("UPDATE rectification_orders SET status = 'submitted', response = ?, responded_at = ? "
                     "WHERE id = ?", (text, iso(sb.now()), row["id"]))
        sb.audit(conn, user, Action.RECTIFICATION_SUBMITTED, f"rectification/{row['id']}",
                 {"order_id": row["id"], "response": text})
    return {"order_id": row["id"], "status": "submitted"}


def close(sb: Context, user: User | None, order_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The regulator's sign-off (``accept``: true closes it; false sends it back to open)."""
    row = _order_row(sb, user, "rectification.close", order_id)
    assert user is not None
    accept = body.get("accept", True)
    if not isinstance(accept, bool):
        raise BadRequest("accept must be true or false", code="bad_accept")
    note = fields.text(body, "note")
    conn = sb.conn()
    with transaction(conn):
        status = conn.execute("SELECT status FROM rectification_orders WHERE id = ?", (row["id"],)).fetchone()[0]
        if status != "submitted":
            raise conflict(f"rectification order {row['id']} is {status}; the owner must submit what was done "
                           "before it can be signed off")
        if accept:
            conn.execute("UPDATE rectification_orders SET status = 'closed', closed_by = ?, closed_at = ?, "
                         "close_note = ? WHERE id = ?", (user.id, iso(sb.now()), note, row["id"]))
        else:
            conn.execute("UPDATE rectification_orders SET status = 'open', close_note = ? WHERE id = ?",
                         (note, row["id"]))
        sb.audit(conn, user, Action.RECTIFICATION_CLOSED if accept else Action.RECTIFICATION_RETURNED,
                 f"rectification/{row['id']}", {"order_id": row["id"], "note": note})
    return {"order_id": row["id"], "status": "closed" if accept else "open"}


def list_orders(sb: Context, user: User | None) -> list[dict[str, Any]]:
    authz.check_role("rectification.list", user)
    assert user is not None
    conn = sb.conn()
    rows = conn.execute("SELECT * FROM rectification_orders ORDER BY id DESC").fetchall()
    now = sb.now()
    return [_order_view(conn, r, now) for r in rows
            if (user.role == "regulator" and organisations.in_jurisdiction(conn, user, _order_datasets(conn, r)))
            or r["owner_id"] == user.id]


def _order_datasets(conn: sqlite3.Connection, row: sqlite3.Row) -> list[str]:
    """The dataset an order names, else every dataset of its owner (for a regulator's jurisdiction)."""
    if row["dataset_id"]:
        return [r[0] for r in conn.execute("SELECT name FROM datasets WHERE id = ?", (row["dataset_id"],))]
    return [r[0] for r in conn.execute("SELECT name FROM datasets WHERE owner_id = ?", (row["owner_id"],))]


def get_order(sb: Context, user: User | None, order_id: Any) -> dict[str, Any]:
    return _order_view(sb.conn(), _order_row(sb, user, "rectification.read", order_id), sb.now())
