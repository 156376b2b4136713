"""Online, consistent, integrity-checked backup of a workspace (issue 8; 第二十四条:
disaster recovery). The archive's format: ``sandbox.store.backup_archive``; restoring it:
``sandbox.store.restore``.

Backup (safe while ``sandbox serve`` runs):

1. sign a fresh audit checkpoint of the live log, so the backup's log is fully covered;
2. copy ``sandbox.db`` with SQLite's online backup API (``sqlite3.Connection.backup``):
   one consistent snapshot, taken under a read transaction, never a torn file copy of a
   WAL database;
3. copy ``data/``, ``keys/`` and the other workspace files (after the snapshot: data files
   are written before the catalog rows naming them, and the key ring keeps retired keys,
   so every file the snapshot refers to is present);
4. write ``manifest.json``: SHA-256 (SM3 in the ``sm`` cryptography profile, issue 17)
   and size of every file, the audit log size, the latest signed checkpoint (Ed25519 or
   SM2) and the per-approval ledger sums, into a tar.gz written atomically with mode 0600
   (it holds the key ring).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import audit_log.store as audit_store
import keys
from audit_log.errors import AuditError
from audit_log.store import StoredCheckpoint
from sandbox.errors import SandboxError
from sandbox.store.backup_archive import (
    FORMAT,
    BackupError,
    file_entries,
    write_archive,
)
from sandbox.store.context import issue_checkpoint
from sandbox.store.ledger_sums import approval_sums
from sandbox.store.workspace import DB_NAME, Workspace, connect

log = logging.getLogger(__name__)

SKIPPED = {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal"}
SCRATCH_PREFIX = ".sandbox-backup-"
SCRATCH_OWNER = "owner.json"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    files: int
    bytes: int
    audit_size: int
    checkpoint_size: int | None


@dataclass(frozen=True)
class _StoreFacts:
    """What the manifest records of the store snapshot."""

    checkpoint: StoredCheckpoint | None
    audit_size: int
    ledger: dict[str, tuple[float, float]]
    schema: int


def _sign_checkpoint(ws: Workspace, conn: sqlite3.Connection, now: datetime) -> None:
    """Cover the whole live log with a signed checkpoint (idempotent if nothing changed)."""

    try:
        issue_checkpoint(ws, conn, now)
    except (keys.KeysError, AuditError, SandboxError) as err:
        raise BackupError(
            f"cannot sign a checkpoint before the backup: {err}", code="checkpoint_failed"
        ) from None


def _snapshot(ws: Workspace, dest: Path, now: datetime, sign: bool) -> None:
    src = ws.connect()
    try:
        if sign:
            _sign_checkpoint(ws, src, now)
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst)  # one step (pages=-1): a single consistent read transaction
            dst.execute("PRAGMA journal_mode=DELETE")  # a self-contained file; WAL again on open
        finally:
            dst.close()
    finally:
        src.close()


def _snapshot_facts(ws: Workspace, snap: Path, now: datetime, sign: bool) -> _StoreFacts:
    """Read the snapshot's log size, checkpoint, ledger sums and schema version."""

    conn = connect(snap)
    try:
        if sign:
            # Entries appended between the live checkpoint and the copy are in the copy:
            # sign the copy's own tree head so the whole backed-up log is covered.
            _sign_checkpoint(ws, conn, now)
        facts = _StoreFacts(
            audit_store.latest_stored_checkpoint(conn),
            audit_store.size(conn),
            approval_sums(conn),
            int(conn.execute("PRAGMA user_version").fetchone()[0]),
        )
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(str(snap) + suffix).unlink(missing_ok=True)
    return facts


def _claim_scratch(scratch: Path) -> None:
    """Record which process owns a scratch folder, so a later backup can tell it is stale."""
    owner = {"host": socket.gethostname(), "pid": os.getpid()}
    (scratch / SCRATCH_OWNER).write_text(json.dumps(owner), encoding="utf-8")


def remove_stale_scratch(folder: Path) -> list[Path]:
    """Remove scratch folders of backups killed before they could clean up (SIGKILL, OOM).

    Only folders this host's backups claimed whose process is gone; anything else (another
    host's, a live or reused pid, no owner file) is left alone. They hold a copy of the store
    and a partial archive, in a 0700 folder; the archive never reached OUT (atomic rename).
    """
    removed = []
    for scratch in sorted(folder.glob(SCRATCH_PREFIX + "*")):
        try:
            owner = json.loads((scratch / SCRATCH_OWNER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
            continue
        pid = owner.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
            continue
        try:
            os.kill(pid, 0)
            continue  # still running (or the pid was reused): not ours to judge
        except ProcessLookupError:
            pass
        except OSError:
            continue
        shutil.rmtree(scratch, ignore_errors=True)
        log.warning("removed %s, left by an interrupted backup (pid %d)", scratch, pid)
        removed.append(scratch)
    return removed


def _workspace_files(root: Path) -> list[tuple[str, Path]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel in SKIPPED or name.endswith((".tmp", ".lock")):
                continue
            if path.is_symlink():
                raise BackupError(f"refusing to back up a symbolic link: {rel}", code="symlink")
            out.append((rel, path))
    return out


def _manifest(
    ws: Workspace, facts: _StoreFacts, entries: dict[str, dict[str, Any]], now: datetime
) -> dict[str, Any]:
    stored = facts.checkpoint
    return {
        "format": FORMAT,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "source": str(ws.root),
        "schema_version": facts.schema,
        "files": entries,
        "audit": {
            "size": facts.audit_size,
            "checkpoint": None if stored is None else stored.note,
            "checkpoint_size": None if stored is None else stored.tree_size,
        },
        "ledger": {k: {"epsilon": e, "delta": d} for k, (e, d) in facts.ledger.items()},
    }


def backup(
    data_dir: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    *,
    now: datetime | None = None,
    sign_checkpoint: bool = True,
) -> BackupReport:
    """Write a consistent, hashed backup of the workspace to ``out`` (a .tar.gz)."""
    now = now or datetime.now(UTC)
    ws = Workspace.open(data_dir)
    out_path = Path(out).expanduser().resolve()
    if out_path == ws.root or ws.root in out_path.parents:
        raise BackupError("write the backup outside the workspace", code="bad_output")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(out_path.parent)
    with tempfile.TemporaryDirectory(prefix=SCRATCH_PREFIX, dir=out_path.parent) as tmp:
        _claim_scratch(Path(tmp))
        snap = Path(tmp) / DB_NAME
        _snapshot(ws, snap, now, sign_checkpoint)
        facts = _snapshot_facts(ws, snap, now, sign_checkpoint)
        files = [(DB_NAME, snap), *_workspace_files(ws.root)]
        entries = file_entries(files, "sm3" if ws.crypto_profile() == "sm" else "sha256")
        partial = Path(tmp) / "backup.tar.gz"
        write_archive(partial, _manifest(ws, facts, entries, now), files, now)
        os.replace(partial, out_path)  # atomic: a reader never sees a half-written backup
    total = sum(e["size"] for e in entries.values())
    log.info(
        "backup of %s: %d files, %d bytes, audit size %d",
        ws.root, len(entries), total, facts.audit_size,
    )
    stored = facts.checkpoint
    return BackupReport(
        out_path, len(entries), total, facts.audit_size, None if stored is None else stored.tree_size
    )
