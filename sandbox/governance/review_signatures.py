"""What both parties of a publication review sign, and the check of their signatures (第十二条).

The owner and the regulator sign the same RFC 8785 canonical terms (dataset, version and
content hash, old and new tier, basis, scan and recipe digests) with their own keys
(``owner:<name>``, ``regulator:<name>``); the terms are rebuilt from the store, so a changed
row, a swapped derivative or recipe breaks both signatures. Split out of
:mod:`sandbox.governance.publication`, which signs at submission and at the co-signature.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from typing import Any, Final

import rfc8785

import keys
from sandbox.clock import iso
from sandbox.store.context import Context
from sandbox.store.fields import username_of
from sandbox.store.users import User

TERMS_FORMAT: Final = "data-sandbox/publication-review/v1"


def _sha(obj: Any) -> str:
    return hashlib.sha256(rfc8785.dumps(obj)).hexdigest()


def terms(conn: sqlite3.Connection, review_id: int) -> dict[str, Any]:
    """What both parties sign, rebuilt from the store (a changed row breaks the signatures)."""
    r = conn.execute("SELECT * FROM publication_reviews WHERE id = ?", (review_id,)).fetchone()
    v = conn.execute("SELECT d.name, v.version, v.content_hash FROM dataset_versions v JOIN datasets d "
                     "ON d.id = v.dataset_id WHERE v.id = ?", (r["version_id"],)).fetchone()
    der = (conn.execute("SELECT content_hash, recipe_json FROM dataset_derivatives WHERE id = ?",
                        (r["derivative_id"],)).fetchone() if r["derivative_id"] else None)
    return {
        "format": TERMS_FORMAT, "review_id": r["id"], "kind": r["kind"], "dataset": v["name"],
        "version": v["version"], "content_hash": v["content_hash"], "from": r["from_tier"], "to": r["to_tier"],
        "basis": r["basis"], "deidentification": r["deidentification"],
        "scan_sha256": _sha(json.loads(r["scan_json"])), "acknowledged_findings": r["acknowledged_findings"],
        "k_target": r["k_target"], "derivative_sha256": der["content_hash"] if der else None,
        "recipe_sha256": _sha(json.loads(der["recipe_json"])) if der else None,
        "submitted_by": username_of(conn, r["submitted_by"]), "submitted_at": r["submitted_at"],
    }


def sign(sb: Context, conn: sqlite3.Connection, review_id: int, user: User) -> dict[str, str]:
    message = rfc8785.dumps(terms(conn, review_id))
    signer = sb.keyring.signer(f"{user.role}:{user.username}")
    return {"signer": user.username, "role": user.role, "key": signer.name, "key_id": signer.key_id_hex,
            "value": base64.b64encode(signer.sign(message)).decode(),
            "terms_sha256": hashlib.sha256(message).hexdigest(), "at": iso(sb.now())}


def verify(sb: Context, review_id: int) -> list[str]:
    """Check every signature on a review against the terms rebuilt from the store now; returns
    the signers' roles. Raises ``keys.KeysError`` when one does not hold (a changed row, a
    swapped derivative or recipe breaks both)."""

    conn = sb.conn()
    r = conn.execute("SELECT owner_signature, regulator_signature FROM publication_reviews WHERE id = ?",
                     (review_id,)).fetchone()
    message = rfc8785.dumps(terms(conn, review_id))
    roles = []
    for raw in (r["owner_signature"], r["regulator_signature"]):
        if not raw:
            continue
        sig = json.loads(raw)
        infos = [i for i in sb.keyring.public_keys(sig["key"]) if i.key_id == sig["key_id"]]
        if not infos:
            raise keys.KeyNotFound(f"no key {sig['key']}/{sig['key_id']}")
        keys.verify_signature(infos[0].public_key, message, base64.b64decode(sig["value"]))
        roles.append(sig["role"])
    return roles
