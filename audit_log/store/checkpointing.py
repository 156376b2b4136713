"""Signed checkpoints of the stored log, and the witness cosignatures attached to them.

Apart from appending because a checkpoint is issued at its own pace (by the caller's
policy, not per entry) and is the only part of the store that signs.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from audit_log.checkpoint import Checkpoint, Note, sign_checkpoint
from audit_log.entry import format_time
from audit_log.errors import CheckpointError, StoreError
from audit_log.hashing import PROFILE_TREE_HASH
from audit_log.store.stored_tree import root, size, tree_hash_of
from keys import Signer


@dataclass(frozen=True)
class StoredCheckpoint:
    id: int
    origin: str
    tree_size: int
    root_hash: str
    key_id: str
    issued_at: str
    note: str


def _stored(row: sqlite3.Row, cosignatures: list[str]) -> StoredCheckpoint:
    return StoredCheckpoint(
        id=int(row["id"]),
        origin=row["origin"],
        tree_size=int(row["tree_size"]),
        root_hash=bytes(row["root_hash"]).hex(),
        key_id=row["key_id"],
        issued_at=row["issued_at"],
        note=row["note"] + "".join(cosignatures),
    )


def _cosignature_lines(conn: sqlite3.Connection, checkpoint_id: int) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT signature_line FROM audit_cosignatures WHERE checkpoint_id = ? ORDER BY id",
            (checkpoint_id,),
        )
    ]


def issue_checkpoint(conn: sqlite3.Connection, signer: Signer, origin: str, now: datetime) -> str:
    """Sign and store a checkpoint of the current tree; return the signed note text.

    Idempotent: if the latest checkpoint already covers the current size with the same
    origin and key, it is returned instead of a duplicate. Safe outside a transaction
    (stored subtrees never change, so the size and root read belong together).

    SECURITY: the key must be of the log's profile (Ed25519 for a SHA-256 tree, SM2 for an
    SM3 tree): verifiers choose the tree hash by the log key's algorithm (``verify``).
    """
    th = tree_hash_of(conn)
    if PROFILE_TREE_HASH[signer.profile] is not th:
        raise StoreError(
            f"a {signer.algorithm} key cannot sign checkpoints of a {th.name} log: the log "
            "key must be of the workspace's cryptography profile"
        )
    tree_size = size(conn)
    latest = conn.execute("SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    if (
        latest is not None
        and int(latest["tree_size"]) == tree_size
        and latest["origin"] == origin
        and latest["key_id"] == signer.key_id.hex()
    ):
        return _stored(latest, _cosignature_lines(conn, int(latest["id"]))).note
    if latest is not None and int(latest["tree_size"]) > tree_size:
        raise StoreError("the log is smaller than its latest checkpoint (rollback?)")
    root_hash = root(conn, tree_size)
    note = sign_checkpoint(Checkpoint(origin, tree_size, root_hash), signer)
    conn.execute(
        "INSERT INTO audit_checkpoints (origin, tree_size, root_hash, key_id, note, issued_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (origin, tree_size, root_hash, signer.key_id.hex(), note, format_time(now)),
    )
    return note


def checkpoints(conn: sqlite3.Connection) -> list[StoredCheckpoint]:
    """Every stored checkpoint, oldest first, notes including cosignatures."""
    rows = conn.execute("SELECT * FROM audit_checkpoints ORDER BY id").fetchall()
    return [_stored(r, _cosignature_lines(conn, int(r["id"]))) for r in rows]


def latest_stored_checkpoint(conn: sqlite3.Connection) -> StoredCheckpoint | None:
    row = conn.execute("SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else _stored(row, _cosignature_lines(conn, int(row["id"])))


def latest_checkpoint(conn: sqlite3.Connection) -> str | None:
    """The latest signed checkpoint note (with any witness cosignatures), or ``None``."""
    stored = latest_stored_checkpoint(conn)
    return None if stored is None else stored.note


def add_cosignature(
    conn: sqlite3.Connection, checkpoint_id: int, signature_line: str, now: datetime
) -> None:
    """Attach a witness cosignature line (already verified by the caller) to a checkpoint."""
    if not signature_line.endswith("\n"):
        signature_line += "\n"
    row = conn.execute(
        "SELECT note FROM audit_checkpoints WHERE id = ?", (checkpoint_id,)
    ).fetchone()
    if row is None:
        raise StoreError(f"no checkpoint {checkpoint_id}")
    note = Note.parse(row["note"] + signature_line)  # raises CheckpointError if malformed
    witness = note.signatures[-1].name
    try:
        conn.execute(
            "INSERT INTO audit_cosignatures (checkpoint_id, witness, signature_line, added_at)"
            " VALUES (?, ?, ?, ?)",
            (checkpoint_id, witness, signature_line, format_time(now)),
        )
    except sqlite3.IntegrityError:
        raise CheckpointError(f"{witness} already cosigned checkpoint {checkpoint_id}") from None
