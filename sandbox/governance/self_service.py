"""Researcher self-service (issue 14; 第十五条: apply through the portal).

A new researcher starts from the public open list and needs neither the CLI nor the operator:

- **registration** (console ``/register``) creates a researcher account — while the setting
  ``accounts.self_registration`` is 1 (an admin may close it);
- **API tokens**: create with a name, list with the last time each was used, revoke — the
  token itself is shown once, only its hash is stored;
- **requests on an approval**: more budget or a later expiry is an application that *amends* the
  approval, decided by the same owner(s) like any other (第十五条); the approval's terms change,
  re-signed, only when they approve (:mod:`sandbox.governance.amendments`).

Registration, token creation and revocation are logged.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.errors import BadRequest, NotFound, SandboxError, Suspended, Unauthorized
from sandbox.governance import amendments, approvals, workflow
from sandbox.store import fields, users
from sandbox.store.context import Context
from sandbox.store.settings import Setting, SettingGroup
from sandbox.store.users import User
from sandbox.store.workspace import transaction

SETTING_GROUP: Final = SettingGroup(
    "accounts",
    Setting("self_registration", 1, "1: anyone may register a researcher account on the portal; 0: only admins "
                                    "create accounts"),
)
MAX_TOKENS: Final = 20
REQUEST_KINDS: Final = ("budget", "extension")


def register(sb: Context, body: dict[str, Any]) -> User:
    """A new researcher account (no login needed; logged as ``user.registered``)."""
    conn = sb.conn()
    if not SETTING_GROUP.get(conn, "self_registration"):
        raise SandboxError("registration is closed; ask the portal's administrator for an account",
                           code="registration_closed", status=403)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BadRequest("username and password are required")
    if password != body.get("password_again", password):
        raise BadRequest("the two passwords differ", code="password_mismatch")
    display = fields.text(body, "display_name", required=False, limit=100)
    with transaction(conn):
        user = users.create_user(conn, username.strip(), "researcher", password, now=sb.now, display_name=display)
        sb.audit(conn, user, Action.USER_REGISTERED, f"user/{user.username}",
                 {"username": user.username, "role": "researcher"})
    return user


def _signed_in(user: User | None) -> User:
    if user is None:
        raise Unauthorized("this needs a login; send the header Authorization: Bearer <token>")
    return user


def list_tokens(sb: Context, user: User | None) -> list[dict[str, Any]]:
    """The caller's own tokens (never the token values: only their hashes are stored)."""
    me = _signed_in(user)
    rows = sb.conn().execute("SELECT id, label, created_at, revoked_at, last_used_at FROM api_tokens "
                             "WHERE user_id = ? ORDER BY id", (me.id,)).fetchall()
    return [{"token_id": r["id"], "name": r["label"], "created_at": r["created_at"], "revoked_at": r["revoked_at"],
             "last_used_at": r["last_used_at"], "active": r["revoked_at"] is None} for r in rows]


def create_token(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    me = _signed_in(user)
    name = fields.text(body, "name", limit=60)
    conn = sb.conn()
    with transaction(conn):
        live = conn.execute("SELECT COUNT(*) FROM api_tokens WHERE user_id = ? AND revoked_at IS NULL",
                            (me.id,)).fetchone()[0]
        if live >= MAX_TOKENS:
            raise BadRequest(f"at most {MAX_TOKENS} live tokens; revoke one first", code="too_many_tokens")
        token = users.issue_token(conn, me, now=sb.now, label=name)
        token_id = conn.execute("SELECT MAX(id) FROM api_tokens WHERE user_id = ?", (me.id,)).fetchone()[0]
        sb.audit(conn, me, Action.USER_TOKEN_CREATED, f"user/{me.username}", {"token_id": token_id, "name": name})
    return {"token_id": token_id, "name": name, "token": token}


def revoke_token(sb: Context, user: User | None, token_id: Any) -> dict[str, Any]:
    me = _signed_in(user)
    ident = fields.ident(token_id, "token")
    conn = sb.conn()
    with transaction(conn):
        row = conn.execute("SELECT * FROM api_tokens WHERE id = ? AND user_id = ?",
                           (min(ident, 2**63 - 1), me.id)).fetchone()
        if row is None:  # SECURITY: another user's token reads like a missing one
            raise NotFound(f"you have no token {token_id}")
        if row["revoked_at"] is None:
            conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (iso(sb.now()), row["id"]))
            sb.audit(conn, me, Action.USER_TOKEN_REVOKED, f"user/{me.username}",
                     {"token_id": row["id"], "name": row["label"]})
    return {"token_id": row["id"], "active": False}


def request_change(sb: Context, user: User | None, approval_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/approvals/<id>/requests`` ``{"kind": "budget"|"extension", "reason"}``: a new
    application for the same scope, which the owner(s) decide like any other."""
    me = _signed_in(user)
    view = approvals.read_approval(sb, me, approval_id)  # rights: one's own approval
    if view.get("researcher") != me.username:
        raise NotFound(f"you have no approval {approval_id}")
    kind = body.get("kind")
    if kind not in REQUEST_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(REQUEST_KINDS)}", code="bad_kind")
    reason = fields.text(body, "reason")
    conn = sb.conn()
    if workflow.active_suspension(conn, "user", me.id) is not None:
        raise Suspended("your access is suspended; you cannot ask for more until it is lifted")
    # issue 14: the request amends this approval once its owner(s) approve (sandbox.governance.amendments)
    return amendments.request(sb, me, view["approval_id"], kind, reason, body, _terms(conn, view))


def _terms(conn: sqlite3.Connection, view: dict[str, Any]) -> dict[str, Any]:
    terms = approvals.approval_terms(conn, view["approval_id"])
    scope = terms["scope"]
    return {"datasets": scope.get("datasets", []), "columns": scope.get("columns"),
            "aggregates": scope.get("aggregates"), "scenario": terms["scenario"]}
