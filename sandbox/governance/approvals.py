"""Approvals: their signed terms, their views, and reading them (第十五条).

An approval is signed with its owner's key (``owner:<username>`` in the workspace key
ring: Ed25519, or SM2 in the ``sm`` cryptography profile of issue 17) over the RFC 8785 canonical JSON of its terms, rebuilt from the store. The view
shows the signature, the exact signed bytes and the public key, so anyone can check it
without the server (``openssl pkeyutl -verify -rawin`` or ``keys.verify_signature``), and
whether it still verifies against what the store holds now: a changed budget or expiry in
the database breaks it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from typing import Any, Final

import rfc8785

import keys
from sandbox.errors import NotFound
from sandbox.governance import ledger, organisations, workflow
from sandbox.store import authz
from sandbox.store.context import Context
from sandbox.store.fields import ident, username_of
from sandbox.store.users import User

TERMS_FORMAT: Final = "data-sandbox/approval-terms/v1"


def _application_row(conn: sqlite3.Connection, application_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM applications WHERE id = ?", (application_id,)).fetchone()


def signing_key_name(username: str) -> str:
    return f"owner:{username}"


def approval_terms(conn: sqlite3.Connection, approval_id: int) -> dict[str, Any]:
    """What the owner signs: everything that binds the researcher, rebuilt from the store."""
    a = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    app = _application_row(conn, a["application_id"])
    assert app is not None  # approvals.application_id is a foreign key
    return {
        "format": TERMS_FORMAT,
        "approval_id": a["id"], "application_id": a["application_id"],
        "researcher": username_of(conn, a["researcher_id"]), "owner": username_of(conn, a["owner_id"]),
        "scenario": app["scenario"], "purpose": app["purpose"], "provision_method": app["provision_method"],
        "commitment_sha256": hashlib.sha256(app["commitment_text"].encode()).hexdigest(),
        "scope": json.loads(a["scope_json"]),
        "epsilon_total": a["epsilon_total"], "delta_total": a["delta_total"],
        "epsilon_per_query": a["epsilon_per_query"], "expires_at": a["expires_at"], "granted_at": a["created_at"],
    }


def canonical_terms(conn: sqlite3.Connection, approval_id: int) -> bytes:
    """RFC 8785 canonical JSON of :func:`approval_terms` (the signed bytes)."""
    return rfc8785.dumps(approval_terms(conn, approval_id))


def sign(sb: Context, conn: sqlite3.Connection, approval_id: int, owner_username: str) -> dict[str, str]:
    """Sign the stored terms with the owner's key and store the signature (caller's transaction)."""
    message = canonical_terms(conn, approval_id)
    signer = sb.keyring.signer(signing_key_name(owner_username))
    value = base64.b64encode(signer.sign(message)).decode()
    conn.execute("UPDATE approvals SET signature = ?, signature_key = ?, signature_key_id = ? WHERE id = ?",
                 (value, signer.name, signer.key_id_hex, approval_id))
    return {"key": signer.name, "key_id": signer.key_id_hex, "value": value,
            "terms_sha256": hashlib.sha256(message).hexdigest()}


def verify_approval(sb: Context, approval: workflow.Approval) -> keys.PublicKeyInfo:
    """Check the approval's signature against the stored terms; raise ``keys.KeysError`` if bad."""
    if not approval.signature:
        raise keys.SignatureError("the approval is not signed")
    infos = [i for i in sb.keyring.public_keys(approval.signature_key) if i.key_id == approval.signature_key_id]
    if not infos:
        raise keys.KeyNotFound(f"no key {approval.signature_key}/{approval.signature_key_id}")
    keys.verify_signature(infos[0].public_key, canonical_terms(sb.conn(), approval.id),
                          base64.b64decode(approval.signature))
    return infos[0]


HOW_TO_VERIFY: Final = (
    "Write signed_message to terms.json exactly (UTF-8, no trailing newline), public_key_pem to "
    "owner.pem and the base64-decoded value to sig.bin, then run: openssl pkeyutl -verify -pubin "
    "-inkey owner.pem -rawin -in terms.json -sigfile sig.bin (for an SM2 key, of the sm "
    "cryptography profile, add -digest sm3 -pkeyopt distid:1234567812345678). In Python: "
    "keys.verify_signature(public_key_pem, signed_message.encode(), base64.b64decode(value)) "
    "raises unless the signature holds. signed_message is the RFC 8785 canonical JSON of the terms."
)


def approval_relations(conn: sqlite3.Connection, user: User | None, approval: workflow.Approval) -> set[str]:
    rel = set()
    if user is not None and approval.researcher_id == user.id:
        rel.add("applicant")
    if user is not None and user.id in workflow.approval_owner_ids(conn, approval):
        rel.add("dataset_owner")
    return rel


def approval_view(sb: Context, approval: workflow.Approval) -> dict[str, Any]:
    conn = sb.conn()
    app = _application_row(conn, approval.application_id)
    assert app is not None  # approvals.application_id is a foreign key
    signature: dict[str, Any] = {
        "algorithm": keys.PROFILE_ALGORITHMS[sb.keyring.profile]["signature"], "key_name": approval.signature_key, "key_id": approval.signature_key_id,
        "value": approval.signature, "signed_message": canonical_terms(conn, approval.id).decode(),
        "how_to_verify": HOW_TO_VERIFY,
    }
    try:
        info = verify_approval(sb, approval)
    except keys.KeysError as err:
        signature.update(verified=False, public_key_pem=None, problem=str(err))
    else:
        signature.update(verified=True, public_key_pem=info.pem())
    return {
        "approval_id": approval.id, "application_id": approval.application_id,
        "researcher": username_of(conn, approval.researcher_id), "owner": username_of(conn, approval.owner_id),
        "scenario": app["scenario"], "purpose": app["purpose"], "scope": approval.scope,
        "epsilon_total": approval.epsilon_total, "delta_total": approval.delta_total,
        "epsilon_per_query": approval.epsilon_per_query, "expires_at": approval.expires_at,
        "created_at": approval.created_at, "reason": approval.reason,
        "status": workflow.approval_status(conn, approval, now=sb.now),
        "budget": ledger.budget(conn, approval.id).as_dict(),
        "signature": signature,
    }



def list_approvals(sb: Context, user: User | None) -> list[dict[str, Any]]:
    authz.check_role("approval.list", user)
    assert user is not None
    return [approval_view(sb, a) for a in workflow.approvals_for(sb.conn(), user)]


def read_approval(sb: Context, user: User | None, approval_id: Any) -> dict[str, Any]:
    authz.check_role("approval.read", user)
    conn = sb.conn()
    approval = workflow.get_approval(conn, ident(approval_id, "approval"))
    missing = f"no approval {approval_id}"
    if approval is None or not organisations.in_jurisdiction(conn, user, approval.datasets):
        raise NotFound(missing)  # outside a district regulator's jurisdiction reads like missing (第五条)
    authz.check("approval.read", user, approval_relations(conn, user, approval), missing=missing)
    return approval_view(sb, approval)
