"""Annual opening plans and their public consultation (第十三条; issue 14).

第十三条: the bureau organises the owners to make an annual opening plan and sets the year's
priorities after consulting the public, industry bodies and enterprises. Here each owner (for its
organisation) publishes a plan for a year — the datasets it plans to open, each with the tier
and the planned date — which is listed publicly (``GET /api/v1/opening-plans``, the open-list
page) and open to comments without login until its consultation closes. Comments are
rate-limited per address like objections (:mod:`sandbox.governance.public_objections`); the owner and the
regulator read them. Publishing and commenting are logged.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso, parse_iso
from sandbox.errors import BadRequest, NotFound, SandboxError
from sandbox.governance import (
    jurisdiction,  # a district regulator: its district's plans (第五条)
    public_objections,
)
from sandbox.governance.policy import TIERS
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import username_of
from sandbox.store.users import User
from sandbox.store.workspace import transaction

MAX_ITEMS: Final = 200
CONSULTATION_DAYS: Final = (7, 90)  # the allowed range; default 30


def publish(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/opening-plans`` (owner) ``{"year", "items": [{"dataset", "title", "tier",
    "planned"}], "consultation_days"?}`` → the plan, open for comment."""
    authz.check_role("opening_plan.publish", user)
    assert user is not None
    year = body.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 2024 <= year <= 2100:
        raise BadRequest("year must be a year from 2024", code="bad_year")
    days = body.get("consultation_days", 30)
    if isinstance(days, bool) or not isinstance(days, int) or not CONSULTATION_DAYS[0] <= days <= CONSULTATION_DAYS[1]:
        raise BadRequest(f"consultation_days must be {CONSULTATION_DAYS[0]} to {CONSULTATION_DAYS[1]}",
                         code="bad_consultation")
    raw = body.get("items")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_ITEMS:
        raise BadRequest(f"items must list 1 to {MAX_ITEMS} planned datasets", code="bad_items")
    items = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise BadRequest(f"items[{i}] must be an object", code="bad_items")
        tier = item.get("tier")
        if tier not in TIERS:
            raise BadRequest(f"items[{i}].tier must be one of {', '.join(TIERS)}", code="bad_items")
        planned = fields.text(item, "planned", limit=10)
        try:
            day = dt.date.fromisoformat(planned)
        except ValueError:
            raise BadRequest(f"items[{i}].planned must be a date YYYY-MM-DD", code="bad_items") from None
        if day.year != year:
            raise BadRequest(f"items[{i}].planned is not in {year}", code="bad_items")
        items.append({"dataset": fields.text(item, "dataset", limit=63), "title": fields.text(item, "title", limit=200),
                      "tier": tier, "planned": planned})
    conn = sb.conn()
    now = sb.now()
    until = iso(now + dt.timedelta(days=days))
    org = conn.execute("SELECT org_id FROM users WHERE id = ?", (user.id,)).fetchone()["org_id"]
    with transaction(conn):
        cur = conn.execute("INSERT INTO opening_plans (owner_id, org_id, year, items_json, comment_until, created_at) "
                           "VALUES (?,?,?,?,?,?)", (user.id, org, year, json.dumps(items, ensure_ascii=False),
                                                    until, iso(now)))
        plan_id = int(cur.lastrowid)  # type: ignore[arg-type]
        sb.audit(conn, user, Action.OPENING_PLAN_PUBLISHED, f"opening_plan/{plan_id}",
                 {"plan_id": plan_id, "year": year, "items": items, "comment_until": until})
    return {"plan_id": plan_id, "year": year, "items": items, "comment_until": until}


def _view(conn: sqlite3.Connection, row: sqlite3.Row, now: dt.datetime) -> dict[str, Any]:
    org = (conn.execute("SELECT name FROM organisations WHERE id = ?", (row["org_id"],)).fetchone()
           if row["org_id"] else None)
    return {"plan_id": row["id"], "year": row["year"], "owner": username_of(conn, row["owner_id"]),
            "organisation": org["name"] if org else None, "items": json.loads(row["items_json"]),
            "comment_until": row["comment_until"], "open_for_comment": parse_iso(row["comment_until"]) > now,
            "comments": conn.execute("SELECT COUNT(*) FROM opening_plan_comments WHERE plan_id = ?",
                                     (row["id"],)).fetchone()[0],
            "published_at": row["created_at"]}


def list_plans(sb: Context) -> list[dict[str, Any]]:
    """Public: every plan, newest year first."""
    conn = sb.conn()
    now = sb.now()
    return [_view(conn, r, now) for r in conn.execute("SELECT * FROM opening_plans ORDER BY year DESC, id DESC")]


def comment(sb: Context, plan_id: Any, body: dict[str, Any], *, address: str) -> dict[str, Any]:
    """``POST /api/v1/opening-plans/<id>/comments`` (no login) ``{"text", "contact"?}``."""
    conn = sb.conn()
    row = conn.execute("SELECT * FROM opening_plans WHERE id = ?",
                       (min(fields.ident(plan_id, "opening plan"), 2**63 - 1),)).fetchone()
    if row is None:
        raise NotFound(f"no opening plan {plan_id}")
    if parse_iso(row["comment_until"]) <= sb.now():
        raise SandboxError(f"the consultation on plan {row['id']} closed on {row['comment_until'][:10]}",
                           code="consultation_closed", status=409)
    text = fields.text(body, "text", limit=5000)
    contact = fields.text(body, "contact", required=False, limit=200)
    key = public_objections.address_key(sb, address)
    limit = public_objections.SETTING_GROUP.get(conn, "public_objections_per_hour")
    with transaction(conn):
        public_objections.check_hourly_limit(conn, "opening_plan_comments", key, limit, what="comments",
                                             now=sb.now())
        cur = conn.execute("INSERT INTO opening_plan_comments (plan_id, text, contact, address_key, created_at) "
                           "VALUES (?,?,?,?,?)", (row["id"], text, contact, key, iso(sb.now())))
        sb.audit(conn, None, Action.OPENING_PLAN_COMMENTED, f"opening_plan/{row['id']}",
                 {"plan_id": row["id"], "comment_id": cur.lastrowid, "text": text})
    return {"plan_id": row["id"], "comment_id": cur.lastrowid}


def comments(sb: Context, user: User | None, plan_id: Any) -> list[dict[str, Any]]:
    """The plan's owner and regulators read the comments (with contacts)."""
    authz.check_role("opening_plan.comments", user)
    assert user is not None
    conn = sb.conn()
    row = conn.execute("SELECT * FROM opening_plans WHERE id = ?",
                       (min(fields.ident(plan_id, "opening plan"), 2**63 - 1),)).fetchone()

    if row is None or (user.role == "owner" and row["owner_id"] != user.id) or not jurisdiction.covers(
            conn, user, jurisdiction.subject_datasets(conn, f"opening_plan/{row['id']}")):
        raise NotFound(f"no opening plan {plan_id}")
    return [{"comment_id": r["id"], "text": r["text"], "contact": r["contact"] or None, "created_at": r["created_at"]}
            for r in conn.execute("SELECT * FROM opening_plan_comments WHERE plan_id = ? ORDER BY id", (row["id"],))]
