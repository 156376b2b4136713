"""One workspace folder: SQLite store (WAL), Parquet data, keys.

Layout::

    DATA_DIR/
      sandbox.db        SQLite in WAL mode: catalog, users, approvals, ledger, cache, audit log
      data/             one Parquet file per dataset version (encrypted for conditional tiers)
      keys/             signing keys and the master key (private keys encrypted at rest)

Schema changes are versioned migrations (``sandbox.store.migrations``); a workspace written by a
newer release is refused instead of being silently misread.

Cryptography profile (issue 17): ``intl`` (default) or ``sm``, chosen by ``sandbox init
--crypto`` and fixed for the workspace's life. It is recorded three times, each by its
owner: the ``crypto_profile`` setting (here), the audit log's tree hash (``audit_params``,
``audit_log.store``) and the key ring (``keyring.json``); ``Workspace.init`` writes the
first two, the key ring records its own, and ``sandbox.service.query_service`` refuses a ring whose
profile differs from the workspace's.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import audit_log.store as audit_store
from keys import DEFAULT_PROFILE, PROFILES, Profile
from sandbox.errors import WorkspaceError
from sandbox.store.migrations import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "sandbox.db"
DEFAULT_DATA_DIR = "./sandbox-data"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """``--data-dir`` wins, then ``SANDBOX_DATA_DIR``, then ``./sandbox-data``."""
    chosen = data_dir or os.environ.get("SANDBOX_DATA_DIR") or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection with the pragmas every use needs (WAL, foreign keys, busy wait).

    ``isolation_level=None``: transactions are explicit (``BEGIN IMMEDIATE``) so that a
    budget charge, its release and its audit entry commit together (DESIGN.md).
    """
    conn = sqlite3.connect(db_path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=FULL")  # durable before a release is returned
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any exception.

    IMMEDIATE takes the write lock at the start, so two concurrent charges can never both
    read the same remaining budget (the lost-update race).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def connect(self) -> sqlite3.Connection:
        return connect(self.db_path)

    def crypto_profile(self) -> Profile:
        """The workspace's cryptography profile (``intl`` or ``sm``)."""
        conn = self.connect()
        try:
            return crypto_profile(conn)
        finally:
            conn.close()

    @classmethod
    def init(
        cls, data_dir: str | os.PathLike[str] | None = None, crypto: str | None = None
    ) -> Workspace:
        """Create (or upgrade) a workspace. Idempotent.

        ``crypto`` is the cryptography profile of a new workspace (``intl`` by default, or
        ``sm``); for an existing workspace it must be the one it has (``None`` accepts it).
        """
        if crypto is not None and crypto not in PROFILES:
            raise WorkspaceError(
                f"unknown cryptography profile {crypto!r}: use 'intl' or 'sm'", code="bad_profile"
            )
        root = resolve_data_dir(data_dir)
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "keys"):
            (root / sub).mkdir(exist_ok=True)
        os.chmod(root / "keys", 0o700)
        ws = cls(root)
        conn = ws.connect()
        try:
            migrate(conn)
            set_crypto_profile(conn, crypto)
        finally:
            conn.close()
        return ws

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str] | None = None) -> Workspace:
        """Open an existing workspace; refuse a missing or newer one with a clear message."""
        root = resolve_data_dir(data_dir)
        ws = cls(root)
        if not ws.db_path.exists():
            raise WorkspaceError(
                f"no workspace at {root}: run `sandbox init --data-dir {root}` "
                "(or `sandbox demo`) first",
                code="no_workspace",
            )
        conn = ws.connect()
        try:
            migrate(conn)
        finally:
            conn.close()
        return ws


def log_origin(conn: sqlite3.Connection) -> str:
    """The audit log's checkpoint origin: unique per workspace, fixed at first use (C2SP).

    INSERT OR IGNORE, so concurrent first uses agree on one value.
    """
    row = conn.execute("SELECT value FROM settings WHERE name = 'log_origin'").fetchone()
    if row is None:
        # the ``sm`` profile shows in the origin too (issue 17), for people reading a
        # checkpoint; verifiers choose the algorithms by the log key, never by this text
        profile = "sm/" if crypto_profile(conn) == "sm" else ""
        origin = f"data-sandbox.local/log/{profile}{secrets.token_hex(6)}"
        conn.execute("INSERT OR IGNORE INTO settings (name, value) VALUES ('log_origin', ?)", (origin,))
        row = conn.execute("SELECT value FROM settings WHERE name = 'log_origin'").fetchone()
    return str(row["value"])


def crypto_profile(conn: sqlite3.Connection) -> Profile:
    """The recorded profile; ``intl`` for workspaces made before profiles existed."""
    row = conn.execute("SELECT value FROM settings WHERE name = 'crypto_profile'").fetchone()
    value = DEFAULT_PROFILE if row is None else str(row["value"])
    if value not in PROFILES:
        raise WorkspaceError(f"the workspace records an unknown cryptography profile {value!r}")
    return "sm" if value == "sm" else "intl"


def set_crypto_profile(conn: sqlite3.Connection, crypto: str | None) -> Profile:
    """Record the profile once (default ``intl``) with the log's tree hash; refuse a change.

    Moving a workspace between profiles is refused rather than re-keyed (issue 17): every
    signature, hash and ciphertext in it would have to be remade, and the audit log's
    history cannot be re-hashed without breaking every checkpoint already published.
    """
    row = conn.execute("SELECT value FROM settings WHERE name = 'crypto_profile'").fetchone()
    if row is not None:
        have = crypto_profile(conn)
        if crypto is not None and crypto != have:
            raise WorkspaceError(
                f"this workspace uses the {have!r} cryptography profile; a workspace's profile "
                f"is fixed when it is created and cannot change to {crypto!r}: create a new "
                f"workspace with `sandbox init --crypto {crypto}` instead",
                code="profile_fixed",
            )
        return have
    chosen: Profile = "sm" if crypto == "sm" else "intl"
    with transaction(conn):
        if audit_store.size(conn) > 0 and chosen != "intl":
            raise WorkspaceError(
                "this workspace already has an international (SHA-256) audit log; its "
                "cryptography profile cannot change to 'sm': create a new workspace",
                code="profile_fixed",
            )
        audit_store.set_tree_hash(conn, "sm3" if chosen == "sm" else "sha256")
        conn.execute(
            "INSERT INTO settings (name, value) VALUES ('crypto_profile', ?)", (chosen,)
        )
    return chosen


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations in order, each in its own transaction."""
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise WorkspaceError(
            f"this workspace has schema version {current}, newer than this release of "
            f"data-sandbox understands ({SCHEMA_VERSION}); upgrade data-sandbox to open it",
            code="schema_too_new",
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        with transaction(conn):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
    return SCHEMA_VERSION
