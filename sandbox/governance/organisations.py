"""Organisations and jurisdictions (第五、二十八条; issue 14).

第五条 makes the city and district big-data bureaus (大数据主管部门) responsible each at its
level, and 第二十八条 brings the development zones' administrations in under their own
remits. So users belong to organisations — bureaus, district bureaus, research institutions,
enterprises — and a dataset belongs to the organisation of the owner who registered it
(``datasets.org_id``). A regulator has a *jurisdiction*: the city (``city``, the default) or
one district; a district regulator sees and acts on applications and approvals only when one
of their datasets belongs to an organisation of that district.

Admins create organisations and place users in them (``POST /api/v1/organisations``,
``PUT /api/v1/users/<name>/organisation``); both are logged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.errors import BadRequest, NotFound
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict
from sandbox.store.users import User, find_user
from sandbox.store.workspace import transaction

KINDS: Final = ("bureau", "district_bureau", "research_institution", "enterprise")
CITY: Final = "city"


def create(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/organisations`` ``{"name", "kind", "district"?}`` (admin)."""
    authz.check_role("organisation.manage", user)
    name = fields.text(body, "name", limit=100)
    kind = body.get("kind")
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}", code="bad_kind")
    district = fields.text(body, "district", required=kind == "district_bureau", limit=50) or None
    conn = sb.conn()
    with transaction(conn):
        if conn.execute("SELECT 1 FROM organisations WHERE name = ?", (name,)).fetchone():
            raise conflict(f"an organisation named {name!r} exists already")
        cur = conn.execute("INSERT INTO organisations (name, kind, district, created_at) VALUES (?,?,?,?)",
                           (name, kind, district, iso(sb.now())))
        org_id = int(cur.lastrowid)  # type: ignore[arg-type]
        sb.audit(conn, user, Action.ORGANISATION_CREATED, f"organisation/{org_id}",
                 {"organisation_id": org_id, "name": name, "kind": kind, "district": district})
    return {"organisation_id": org_id, "name": name, "kind": kind, "district": district}


def list_all(sb: Context, user: User | None) -> list[dict[str, Any]]:
    authz.check_role("organisation.list", user)
    conn = sb.conn()
    return [{"organisation_id": r["id"], "name": r["name"], "kind": r["kind"], "district": r["district"],
             "members": [u["username"] for u in conn.execute(
                 "SELECT username FROM users WHERE org_id = ? ORDER BY username", (r["id"],))]}
            for r in conn.execute("SELECT * FROM organisations ORDER BY id")]


def assign(sb: Context, user: User | None, username: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PUT /api/v1/users/<username>/organisation`` ``{"organisation", "jurisdiction"?}`` (admin).

    ``jurisdiction`` (regulators only): ``city`` or a district name. The user's datasets move
    with them to the organisation (a dataset belongs to its owner's organisation).
    """
    authz.check_role("organisation.manage", user)
    conn = sb.conn()
    target = find_user(conn, username)
    if target is None:
        raise NotFound(f"no user {username!r}")
    org = conn.execute("SELECT * FROM organisations WHERE name = ?", (fields.text(body, "organisation"),)).fetchone()
    if org is None:
        raise BadRequest(f"no organisation {body.get('organisation')!r}", code="unknown_organisation")
    jurisdiction = fields.text(body, "jurisdiction", required=False, limit=50) or None
    if jurisdiction is not None and target.role != "regulator":
        raise BadRequest("only regulators have a jurisdiction", code="bad_jurisdiction")
    with transaction(conn):
        conn.execute("UPDATE users SET org_id = ?, jurisdiction = COALESCE(?, jurisdiction) WHERE id = ?",
                     (org["id"], jurisdiction, target.id))
        moved = conn.execute("UPDATE datasets SET org_id = ? WHERE owner_id = ?", (org["id"], target.id)).rowcount
        sb.audit(conn, user, Action.ORGANISATION_MEMBER_SET, f"user/{target.username}", {
            "username": target.username, "organisation": org["name"], "jurisdiction": jurisdiction,
            "datasets_moved": moved})
    return {"username": target.username, "organisation": org["name"], "jurisdiction": jurisdiction}


# -- jurisdiction checks -------------------------------------------------------------------------------
def jurisdiction_of(conn: sqlite3.Connection, user: User) -> str:
    row = conn.execute("SELECT jurisdiction FROM users WHERE id = ?", (user.id,)).fetchone()
    return (row["jurisdiction"] if row and row["jurisdiction"] else CITY)


def districts_of(conn: sqlite3.Connection, dataset_names: Iterable[str]) -> set[str | None]:
    names = [n.lower() for n in dataset_names]
    if not names:
        return set()
    marks = ",".join("?" * len(names))
    rows = conn.execute(f"SELECT o.district FROM datasets d LEFT JOIN organisations o ON o.id = d.org_id "
                        f"WHERE d.name IN ({marks})", names)
    return {r["district"] for r in rows}


def in_jurisdiction(conn: sqlite3.Connection, user: User | None, dataset_names: Iterable[str]) -> bool:
    """Whether a regulator's jurisdiction covers an object concerning ``dataset_names`` (第五条):
    the city covers everything; a district, objects with a dataset of an organisation there.
    Other roles: True (their own rules apply)."""
    if user is None or user.role != "regulator":
        return True
    where = jurisdiction_of(conn, user)
    return where == CITY or where in districts_of(conn, dataset_names)


def owner_ids(conn: sqlite3.Connection, dataset_names: Iterable[str]) -> set[int]:
    names = [n.lower() for n in dataset_names]
    if not names:
        return set()
    marks = ",".join("?" * len(names))
    return {r[0] for r in conn.execute(f"SELECT owner_id FROM datasets WHERE name IN ({marks})", names)}
