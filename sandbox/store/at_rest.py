"""Data at rest: master-key rotation over the stored data keys (issue 6; keys/envelope.py).

Conditional and not-open Parquet files are encrypted with AES-256-GCM under a per-version
data key; only the data key *wrapped* under the workspace master key is stored
(``dataset_versions.wrapped_key``). Rotating the master key re-wraps every data key and
leaves the data files untouched.

Order of steps (crash safety): the key ring gets the new master first and keeps the old one
(``KeyRing.rotate_master_key``); the re-wrapped keys and the audit entry commit in one
transaction; only after COMMIT are retired master keys destroyed. A crash before COMMIT
leaves the old wrapped keys, still readable under the retained old master.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from audit_log.actions import Action
from sandbox.store.context import Context
from sandbox.store.workspace import transaction

if TYPE_CHECKING:
    from sandbox.store.users import User

log = logging.getLogger(__name__)


def rotate_master_key(sb: Context, actor: User | None = None, *, destroy_retired: bool = True) -> dict[str, Any]:
    """Re-wrap every stored data key under a new master key, in one transaction, logged.

    ``destroy_retired``: delete the old master key(s) afterwards, so a copy of the old
    ring and database can no longer decrypt (the point of rotating after a suspected leak).
    """
    conn = sb.conn()
    with transaction(conn):  # BEGIN IMMEDIATE: no version can be added meanwhile
        rows = conn.execute(
            "SELECT id, wrapped_key FROM dataset_versions WHERE wrapped_key IS NOT NULL ORDER BY id"
        ).fetchall()
        old_id = sb.keyring.master_key_id
        rewrapped = sb.keyring.rotate_master_key([bytes(r["wrapped_key"]) for r in rows], now=sb.now())
        new_id = sb.keyring.master_key_id
        for row, wrapped in zip(rows, rewrapped, strict=True):
            conn.execute("UPDATE dataset_versions SET wrapped_key = ? WHERE id = ?", (wrapped, row["id"]))
        sb.audit(conn, actor, Action.KEY_MASTER_ROTATED, "key/master", {
            "old_key_id": old_id, "new_key_id": new_id, "data_keys_rewrapped": len(rows),
        })
    destroyed: list[str] = []
    if destroy_retired:
        destroyed = sb.keyring.destroy_retired_master_keys()
    log.info("master key rotated %s -> %s (%d data keys re-wrapped)", old_id, new_id, len(rows))
    return {"old_key_id": old_id, "new_key_id": new_id, "data_keys_rewrapped": len(rows),
            "destroyed": destroyed}
