"""Objections and suggestions from the public, without login (第十七条; issue 14).

第十七条: anyone who objects to how public data is opened or used may raise objections and
suggestions through the portal *and provide supporting evidence*; the bureau has them verified,
handled and answered. So, on any public object — a dataset in the open list, one of its tier
changes, a project on the transparency page — anyone may file, without an account:

- rate-limited per client address (``public_objections_per_hour``; the address is kept only as
  a keyed hash);
- with up to ``MAX_FILES`` evidence files of at most ``MAX_FILE_BYTES`` each, accepted only when
  their bytes are what they claim (PDF, PNG, JPEG or UTF-8 text, checked by content, never by the
  name), stored outside the web root under a random name with their SHA-256;
- answered with a **tracking code** (the only way to read it back: ``GET
  /api/v1/public-objections/<code>`` shows status and answer, never the contact or the evidence).

The owner answers for its own datasets, the regulator for everything else (and may answer any);
due after ``time_limits.objection_days`` like every objection. Filing and answering are logged.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.errors import BadRequest, NotFound, SandboxError
from sandbox.governance import deadlines, jurisdiction, open_catalog
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.settings import Setting, SettingGroup
from sandbox.store.users import User
from sandbox.store.workspace import transaction

TARGETS: Final = ("dataset", "tier_change", "project")
MAX_FILES: Final = 3
MAX_FILE_BYTES: Final = 200_000
SETTING_GROUP: Final = SettingGroup(
    "public_objections",
    Setting("public_objections_per_hour", 5,
            "objections one client address may file per hour without login (第十七条); 0 closes the form"),
)


def sniff(data: bytes) -> str | None:
    """The evidence type by content, or None when it is not one we accept.

    >>> sniff(b"%PDF-1.7 ..."), sniff(b"\\x89PNG\\r\\n\\x1a\\n..."), sniff("说明".encode()), sniff(b"MZ\\x90\\x00")
    ('application/pdf', 'image/png', 'text/plain', None)
    """
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"


def address_key(sb: Context, address: str) -> str:
    """PRIVACY: the client's address is kept only as a keyed hash (for the rate limit)."""
    secret = sb.conn().execute("SELECT value FROM settings WHERE name = 'web_secret_key'").fetchone()
    key = (secret[0] if secret else "public-objections").encode()
    return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()


def check_hourly_limit(conn: sqlite3.Connection, table: str, key: str, limit: int, *, what: str,
                       now: dt.datetime) -> None:
    """Refuse (429) a login-free submission when ``key``'s address filed ``limit`` rows of ``table``
    within the last hour: one rule for public objections and opening-plan comments (第十七条)."""
    since = iso(now - dt.timedelta(hours=1))
    recent = conn.execute(f"SELECT COUNT(*) FROM {table} WHERE address_key = ? AND created_at > ?",
                          (key, since)).fetchone()[0]
    if recent >= limit:
        raise SandboxError(f"at most {limit} {what} per hour from one address; try again later",
                           code="rate_limited", status=429)


def _target(sb: Context, target_type: str, target: Any) -> tuple[int | None, str]:
    """(owner to answer or None for the regulator, description) of a public object."""
    conn = sb.conn()
    if target_type == "dataset":
        entry = open_catalog.get_entry(sb, None, str(target))  # public entries only: NotFound otherwise
        row = conn.execute("SELECT owner_id FROM datasets WHERE name = ?", (entry["name"],)).fetchone()
        return row["owner_id"], f"dataset {entry['name']}"
    ident = fields.ident(target, target_type.replace("_", " "))
    if target_type == "tier_change":
        row = conn.execute("SELECT c.id, d.name FROM dataset_tier_changes c JOIN datasets d ON d.id = c.dataset_id "
                           "WHERE c.id = ?", (ident,)).fetchone()
        if row is None:
            raise NotFound(f"no tier change {target}")
        open_catalog.get_entry(sb, None, row["name"])  # the dataset must be public
        return None, f"tier change {ident} of {row['name']}"
    row = conn.execute("SELECT id FROM approvals WHERE id = ?", (ident,)).fetchone()
    if row is None:
        raise NotFound(f"no project {target}")
    return None, f"project {ident} on the transparency page"


def _evidence(raw: Any) -> list[tuple[str, bytes, str]]:
    if raw in (None, []):
        return []
    if not isinstance(raw, list) or len(raw) > MAX_FILES:
        raise BadRequest(f"evidence must be a list of at most {MAX_FILES} files", code="bad_evidence")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("content_base64"), str):
            raise BadRequest("each evidence file is {\"name\", \"content_base64\"}", code="bad_evidence")
        name = fields.text(item, "name", limit=120)
        try:
            data = base64.b64decode(item["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"evidence {name!r} is not valid base64", code="bad_evidence") from None
        if not data or len(data) > MAX_FILE_BYTES:
            raise BadRequest(f"evidence {name!r} must be 1 to {MAX_FILE_BYTES:,} bytes", code="bad_evidence")
        kind = sniff(data)
        if kind is None:
            raise BadRequest(f"evidence {name!r} is not a PDF, PNG, JPEG or UTF-8 text file (checked by its "
                             "content)", code="bad_evidence_type")
        out.append((name, data, kind))
    return out


def file(sb: Context, body: dict[str, Any], *, address: str) -> dict[str, Any]:
    """``POST /api/v1/public-objections`` (no login) ``{"target_type", "target", "text", "contact"?,
    "evidence"?: [{"name", "content_base64"}]}`` → ``{"tracking_code", "status", "due_at"}``."""
    target_type = body.get("target_type")
    if target_type not in TARGETS:
        raise BadRequest(f"target_type must be one of {', '.join(TARGETS)}", code="bad_target")
    text = fields.text(body, "text", limit=5000)
    contact = fields.text(body, "contact", required=False, limit=200)
    evidence = _evidence(body.get("evidence"))
    respondent, what = _target(sb, target_type, body.get("target"))
    conn = sb.conn()
    key = address_key(sb, address)
    limit = SETTING_GROUP.get(conn, "public_objections_per_hour")
    code = "PO-" + secrets.token_hex(6).upper()
    evidence_dir = sb.ws.root / "public-evidence"
    written = []
    with transaction(conn):
        check_hourly_limit(conn, "public_objections", key, limit, what="objections", now=sb.now())
        stored = []
        for i, (name, data, kind) in enumerate(evidence):
            evidence_dir.mkdir(exist_ok=True)
            path = evidence_dir / f"{code}-{i}.bin"  # never the submitted name: no path games
            path.write_bytes(data)
            written.append(path)
            stored.append({"name": name, "type": kind, "bytes": len(data),
                           "sha256": hashlib.sha256(data).hexdigest(), "file": path.name})
        due = deadlines.due_at(conn, "objection", sb.now())
        cur = conn.execute(
            "INSERT INTO public_objections (tracking_code, target_type, target, description, respondent_id, text, "
            "contact, evidence_json, address_key, due_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (code, target_type, str(body.get("target")), what, respondent, text, contact,
             json.dumps(stored, ensure_ascii=False), key, due, iso(sb.now())))
        oid = int(cur.lastrowid)  # type: ignore[arg-type]
        sb.audit(conn, None, Action.PUBLIC_OBJECTION_FILED, f"public_objection/{oid}", {
            "public_objection_id": oid, "target_type": target_type, "target": what,
            "respondent": username_of(conn, respondent) or "regulator", "text": text,
            "evidence": [{k: e[k] for k in ("name", "type", "bytes", "sha256")} for e in stored]})
    return {"tracking_code": code, "status": "open", "due_at": due, "evidence": len(stored)}


def track(sb: Context, code: str) -> dict[str, Any]:
    """``GET /api/v1/public-objections/<code>`` (no login): status and answer only."""
    row = sb.conn().execute("SELECT * FROM public_objections WHERE tracking_code = ?", (str(code).upper(),)).fetchone()
    if row is None:
        raise NotFound("no objection with this tracking code")
    return {"tracking_code": row["tracking_code"], "target": row["description"], "status": row["status"],
            "filed_at": row["created_at"], "due_at": row["due_at"], "answer": row["answer"],
            "answered_at": row["answered_at"]}


def _view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    return {"public_objection_id": row["id"], "target_type": row["target_type"], "target": row["description"],
            "text": row["text"], "contact": row["contact"] or None, "evidence": json.loads(row["evidence_json"]),
            "respondent": username_of(conn, row["respondent_id"]) or "regulator", "status": row["status"],
            "answer": row["answer"], "answered_by": username_of(conn, row["answered_by"]),
            "due_at": row["due_at"], "created_at": row["created_at"]}


def list_for(sb: Context, user: User | None) -> list[dict[str, Any]]:
    """Owners: those about their datasets; regulators: all."""
    authz.check_role("public_objection.list", user)
    assert user is not None
    conn = sb.conn()
    rows = conn.execute("SELECT * FROM public_objections ORDER BY id DESC").fetchall()
    now = sb.now()
    return [deadlines.annotate(_view(conn, r), now) for r in rows
            if (user.role == "regulator" and jurisdiction.covers(conn, user, jurisdiction.public_objection_datasets(
                conn, r))) or r["respondent_id"] == user.id]


def answer(sb: Context, user: User | None, objection_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The owner answers for its datasets, the regulator for anything."""
    authz.check_role("public_objection.answer", user)
    assert user is not None
    conn = sb.conn()
    row = conn.execute("SELECT * FROM public_objections WHERE id = ?",
                       (min(fields.ident(objection_id, "objection"), 2**63 - 1),)).fetchone()
    if row is None or (user.role == "owner" and row["respondent_id"] != user.id) or (
            user.role == "regulator"
            and not jurisdiction.covers(conn, user, jurisdiction.public_objection_datasets(conn, row))):
        raise NotFound(f"no public objection {objection_id}")  # a district regulator: its district (第五条)
    text = fields.text(body, "answer", limit=5000)
    with transaction(conn):
        if conn.execute("SELECT status FROM public_objections WHERE id = ?", (row["id"],)).fetchone()[0] != "open":
            raise conflict(f"public objection {row['id']} was already answered")
        conn.execute("UPDATE public_objections SET status = 'answered', answer = ?, answered_by = ?, answered_at = ? "
                     "WHERE id = ?", (text, user.id, iso(sb.now()), row["id"]))
        sb.audit(conn, user, Action.PUBLIC_OBJECTION_ANSWERED, f"public_objection/{row['id']}",
                 {"public_objection_id": row["id"], "answer": text})
    return {"public_objection_id": row["id"], "status": "answered"}
