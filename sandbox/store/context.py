"""The opened workspace that every layer works through: store connections, keys, the clock
and the audit log.

Why a class of its own: the regulation's modules (``sandbox.governance``) need a
connection, the time and an audit append, and nothing of the engine. They take a
``Context``; the query service's ``Sandbox`` extends it with the engines, so governance
never imports the service above it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from typing import Any

import audit_log.store as audit_store
import keys
from sandbox.clock import Clock, utc_now
from sandbox.errors import WorkspaceError
from sandbox.store.users import User
from sandbox.store.workspace import Workspace
from sandbox.store.workspace import log_origin as workspace_log_origin


class KeyringDecryptor:
    """Decrypts dataset files whose data keys ``keyring``'s master key wrapped (the server
    and every engine worker read data at rest through this one object)."""

    def __init__(self, keyring: keys.KeyRing):
        self.keyring = keyring

    def __call__(self, blob: bytes, wrapped: bytes, aad: bytes) -> bytes:
        return keys.decrypt_blob(self.keyring.unwrap_data_key(wrapped), blob, aad)

    def data_key(self, wrapped: bytes) -> bytes:
        return self.keyring.unwrap_data_key(wrapped)


class Context:
    """One workspace opened: per-thread SQLite connections, the key ring, the clock."""

    def __init__(self, workspace: Workspace, *, now: Clock = utc_now):
        self.ws = workspace
        self.now = now
        self.keyring = open_keyring(workspace)
        self._local = threading.local()

    def conn(self) -> sqlite3.Connection:
        """One SQLite connection per thread (sqlite3 connections are not thread-safe)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.ws.connect()
        return conn

    def encryptor(self):
        """Encrypt a blob under a fresh data key wrapped by the ring (files at rest)."""

        def encrypt(plain: bytes, aad: bytes) -> tuple[bytes, bytes]:
            data_key, wrapped = self.keyring.new_data_key()
            return keys.encrypt_blob(data_key, plain, aad), wrapped

        return encrypt

    def decryptor(self) -> KeyringDecryptor:
        """The inverse of ``encryptor``: a wrapped data key and a blob back to plaintext."""
        return KeyringDecryptor(self.keyring)

    def audit(self, conn: sqlite3.Connection, actor: User | None, action: str, subject: str,
              details: dict[str, Any]) -> audit_store.AppendedEntry:
        """Append to the audit log inside the caller's transaction."""
        return audit_store.append(
            conn,
            actor=actor.username if actor else "system",
            role=actor.role if actor else "system",
            action=action,
            subject=subject,
            details=details,
            now=self.now(),
        )

    @property
    def log_origin(self) -> str:
        return workspace_log_origin(self.conn())

    def issue_checkpoint(self) -> str:
        """Sign the current tree head (idempotent when nothing was appended since)."""
        return issue_checkpoint(self.ws, self.conn(), self.now(), ring=self.keyring)


def open_keyring(ws: Workspace) -> keys.KeyRing:
    """The workspace's key ring, of the workspace's cryptography profile (a ring of the
    other profile is refused by ``KeyRing.open_or_create``, as a ``SandboxError``)."""
    try:
        return keys.KeyRing.open_or_create(ws.keys_dir, profile=ws.crypto_profile())
    except keys.PassphraseError:
        raise
    except keys.KeysError as err:
        raise WorkspaceError(str(err), code="profile_mismatch") from None


def issue_checkpoint(ws: Workspace, conn: sqlite3.Connection, now: dt.datetime,
                     ring: keys.KeyRing | None = None) -> str:
    """Sign the log's current tree head with the workspace's log key, under its origin: the
    one way every caller (server, CLI export and trace, witness, backup) issues a checkpoint.
    ``ring`` is the already open key ring, if the caller has one."""
    ring = ring if ring is not None else open_keyring(ws)
    return audit_store.issue_checkpoint(conn, ring.log_signer(), workspace_log_origin(conn), now)
