"""Attachments of applications and evidence of signed-in objections (第十五、十七条; issue 14).

第十五条 lets an application carry its material, 第十七条 asks objections to come with evidence.
The same rules as the public objections' evidence (:mod:`sandbox.governance.public_objections`): at most
3 files of at most 200,000 bytes each, accepted only when their *content* is PDF, PNG, JPEG or
UTF-8 text (``400 bad_evidence`` / ``bad_evidence_type``).

SECURITY: an uploaded name is only ever shown, never used as a path: the content is stored as
``attachments/<sha256>`` in the workspace (content-addressed, written atomically), the shown
name is cut to its last path component with control characters removed. The SHA-256 of every
file goes into the audit entry that files the application or the objection, and a download
re-checks the file against it (``500 data_integrity`` otherwise). Downloads are for the parties
only: an application's researcher and the owners deciding it; an objection's filer, the one
whose decision it contests and the regulators answering it (within their district). Everyone
else reads a missing attachment (``404``).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from typing import Any, Final

from sandbox.clock import iso
from sandbox.errors import NotFound, Unauthorized
from sandbox.governance import datasets, jurisdiction, public_objections
from sandbox.governance.workflow import app_owner_ids
from sandbox.store import fields
from sandbox.store.context import Context
from sandbox.store.users import User

FOLDER: Final = "attachments"
OWNER_TYPES: Final = ("application", "objection")
#: what a download is served as, from the type found by content (public_objections.sniff)
MEDIA_TYPES: Final = {"application/pdf": "application/pdf", "image/png": "image/png", "image/jpeg": "image/jpeg",
                      "text/plain": "text/plain; charset=utf-8"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown_name(raw: str) -> str:
    """The name to show: the last path component, no control characters, never empty.

    >>> shown_name("../../etc/passwd"), shown_name("C:\\\\Users\\\\x\\\\scan.pdf"), shown_name("..")
    ('passwd', 'scan.pdf', 'attachment')
    """
    name = _CONTROL.sub("", raw).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name not in ("", ".", "..") else "attachment"


def parse(raw: Any) -> list[tuple[str, bytes, str]]:
    """Validate ``[{"name", "content_base64"}…]`` (limits and content types of the public evidence)."""
    return [(shown_name(name), data, kind) for name, data, kind in public_objections._evidence(raw)]


def store(sb: Context, conn: sqlite3.Connection, owner_type: str, owner_id: int, user: User,
          files: list[tuple[str, bytes, str]]) -> list[dict[str, Any]]:
    """Write the files and their rows (caller's transaction); the metadata for the audit entry."""
    assert owner_type in OWNER_TYPES
    folder = sb.ws.root / FOLDER
    folder.mkdir(exist_ok=True)
    out = []
    for name, data, kind in files:
        digest = hashlib.sha256(data).hexdigest()
        path = folder / digest  # SECURITY: server-chosen, content-addressed
        if not path.exists():
            tmp = folder / f".{digest}.tmp"
            tmp.write_bytes(data)
            tmp.replace(path)
        cur = conn.execute(
            "INSERT INTO attachments (owner_type, owner_id, name, media_type, bytes, sha256, uploaded_by, created_at) "
            "VALUES (?,?,?,?,?,?,?,?)", (owner_type, owner_id, name, kind, len(data), digest, user.id, iso(sb.now())))
        out.append({"attachment_id": cur.lastrowid, "name": name, "type": kind, "bytes": len(data), "sha256": digest})
    return out


def list_for(conn: sqlite3.Connection, owner_type: str, owner_id: int) -> list[dict[str, Any]]:
    return [{"attachment_id": r["id"], "name": r["name"], "type": r["media_type"], "bytes": r["bytes"],
             "sha256": r["sha256"]}
            for r in conn.execute("SELECT * FROM attachments WHERE owner_type = ? AND owner_id = ? ORDER BY id",
                                  (owner_type, owner_id))]


def _is_party(conn: sqlite3.Connection, user: User, row: sqlite3.Row) -> bool:
    if row["owner_type"] == "application":
        app = conn.execute("SELECT * FROM applications WHERE id = ?", (row["owner_id"],)).fetchone()
        return app is not None and (user.id == app["researcher_id"] or user.id in app_owner_ids(app))
    obj = conn.execute("SELECT * FROM objections WHERE id = ?", (row["owner_id"],)).fetchone()
    if obj is None:
        return False
    if user.id in (obj["filed_by"], obj["respondent_id"]):
        return True
    return user.role == "regulator" and jurisdiction.covers(
        conn, user, jurisdiction.target_datasets(conn, obj["target_type"], obj["target_id"]))


def read(sb: Context, user: User | None, attachment_id: Any) -> tuple[bytes, str, str]:
    """(content, media type, shown name) for a party; ``404`` for anyone else."""
    if user is None:
        raise Unauthorized("sign in to download an attachment")
    conn = sb.conn()
    ident = fields.ident(attachment_id, "attachment")
    row = conn.execute("SELECT * FROM attachments WHERE id = ?", (min(ident, 2**63 - 1),)).fetchone()
    if row is None or not _is_party(conn, user, row):
        raise NotFound(f"no attachment {attachment_id}")
    try:
        data = (sb.ws.root / FOLDER / row["sha256"]).read_bytes()
    except FileNotFoundError:
        raise datasets.DataIntegrityError(f"attachment {row['id']} is missing from the workspace") from None
    if hashlib.sha256(data).hexdigest() != row["sha256"]:
        raise datasets.DataIntegrityError(f"attachment {row['id']} does not match the SHA-256 recorded in the "
                                          "audit log; it was not served")
    return data, MEDIA_TYPES.get(row["media_type"], "application/octet-stream"), row["name"]


def summary(meta: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the audit entry records of each file (no content)."""
    return [{k: m[k] for k in ("name", "type", "bytes", "sha256")} for m in meta]
