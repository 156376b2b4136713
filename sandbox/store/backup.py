"""Online, consistent, integrity-checked backup and restore of a workspace (issue 8;
第二十四条: disaster recovery).

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

Restore refuses a non-empty target without ``force`` (the old folder is then moved aside,
never deleted), extracts only regular files the manifest lists (no links, no absolute or
``..`` paths), checks every hash, then verifies the restored audit log against the signed
checkpoint (``audit_log.verify_file``) and replays it against the restored ledger
(``audit_log.replay`` / ``compare_with_ledger``). Only then does the staged folder take the
target's place.

SECURITY: the manifest is an integrity check against corruption, not a signature; to detect
a forged archive, pass the log's public key obtained out of band (``--public-key``): the
restored log must then verify under that key.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import socket
import sqlite3
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import audit_log.store as audit_store
import keys
from audit_log.errors import AuditError, VerificationError
from audit_log.replay import compare_with_ledger, read_jsonl, replay
from audit_log.verify import verify_file
from sandbox.errors import SandboxError
from sandbox.store.ledger_sums import approval_sums
from sandbox.store.workspace import DB_NAME, Workspace, connect, resolve_data_dir
from sandbox.store.workspace import log_origin as _log_origin

log = logging.getLogger(__name__)

FORMAT = "data-sandbox-backup/1"
MANIFEST = "manifest.json"
SKIPPED = {DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", DB_NAME + "-journal"}
CHUNK = 1 << 20
SCRATCH_PREFIX = ".sandbox-backup-"
SCRATCH_OWNER = "owner.json"


class BackupError(SandboxError):
    code = "backup_failed"
    http_status = 500


@dataclass(frozen=True)
class BackupReport:
    path: Path
    files: int
    bytes: int
    audit_size: int
    checkpoint_size: int | None


@dataclass(frozen=True)
class RestoreReport:
    path: Path
    files: int
    audit_size: int
    checkpoint_size: int | None
    verified_with: str
    moved_aside: Path | None = None
    ledger_differences: list[dict[str, Any]] = field(default_factory=list)


def _file_hasher(name: str) -> Any:
    """A streaming hash object: ``sha256``, or ``sm3`` (the ``sm`` profile's file hash)."""
    if name == "sm3":
        return keys.sm3_stream()
    return hashlib.sha256()


def _hash_file(path: Path, name: str = "sha256") -> str:
    h = _file_hasher(name)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return str(h.hexdigest())


def _sign_checkpoint(ws: Workspace, conn: sqlite3.Connection, now: datetime) -> None:
    """Cover the whole live log with a signed checkpoint (idempotent if nothing changed)."""

    try:
        ring = keys.KeyRing.open_or_create(ws.keys_dir, profile=ws.crypto_profile())
        audit_store.issue_checkpoint(conn, ring.log_signer(), _log_origin(conn), now)
    except (keys.KeysError, AuditError) as err:
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
        conn = connect(snap)
        try:
            if sign_checkpoint:
                # Entries appended between the live checkpoint and the copy are in the copy:
                # sign the copy's own tree head so the whole backed-up log is covered.
                _sign_checkpoint(ws, conn, now)
            stored = audit_store.latest_stored_checkpoint(conn)
            audit_size = audit_store.size(conn)
            sums = approval_sums(conn)
            schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):
            Path(str(snap) + suffix).unlink(missing_ok=True)
        files = [(DB_NAME, snap), *_workspace_files(ws.root)]
        file_hash = "sm3" if ws.crypto_profile() == "sm" else "sha256"
        entries: dict[str, dict[str, Any]] = {
            rel: {
                file_hash: _hash_file(p, file_hash),
                "size": p.stat().st_size,
                "mode": f"{p.stat().st_mode & 0o777:o}",
            }
            for rel, p in files
        }
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat().replace("+00:00", "Z"),
            "source": str(ws.root),
            "schema_version": schema,
            "files": entries,
            "audit": {
                "size": audit_size,
                "checkpoint": None if stored is None else stored.note,
                "checkpoint_size": None if stored is None else stored.tree_size,
            },
            "ledger": {k: {"epsilon": e, "delta": d} for k, (e, d) in sums.items()},
        }
        partial = Path(tmp) / "backup.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            blob = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(blob), 0o600, int(now.timestamp())
            tar.addfile(info, io.BytesIO(blob))
            for rel, path in files:
                tar.add(path, arcname=rel, recursive=False)
            tar.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out_path)  # atomic: a reader never sees a half-written backup
    total = sum(e["size"] for e in entries.values())
    log.info(
        "backup of %s: %d files, %d bytes, audit size %d", ws.root, len(entries), total, audit_size
    )
    return BackupReport(
        out_path, len(entries), total, audit_size, None if stored is None else stored.tree_size
    )


# -- restore ----------------------------------------------------------------------------------
def _safe_name(name: str) -> str:
    """SECURITY: reject absolute paths, ``..`` and odd names (path traversal from an archive)."""
    p = PurePosixPath(name)
    if (
        p.is_absolute()
        or not p.parts
        or any(part in ("..", ".", "") for part in p.parts)
        or "\\" in name
    ):
        raise BackupError(f"unsafe path in the archive: {name!r}", code="unsafe_archive")
    return p.as_posix()


def read_manifest(archive: str | os.PathLike[str]) -> dict[str, Any]:
    with tarfile.open(archive, mode="r:*") as tar:
        member = tar.getmember(MANIFEST)
        fh = tar.extractfile(member)
        if fh is None:
            raise BackupError("the manifest is not a file", code="bad_manifest")
        manifest = json.loads(fh.read())
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"not a {FORMAT} archive", code="bad_manifest")
    return manifest


def _extract(archive: Path, staging: Path, manifest: dict[str, Any]) -> int:
    expected: dict[str, dict[str, Any]] = manifest["files"]
    seen: set[str] = set()
    with tarfile.open(archive, mode="r:*") as tar:
        for member in tar:
            name = _safe_name(member.name)
            if name == MANIFEST:
                continue
            if not member.isfile():
                raise BackupError(f"{name!r} is not a regular file", code="unsafe_archive")
            if name not in expected or name in seen:
                raise BackupError(
                    f"{name!r} is not listed in the manifest (or listed twice)", code="bad_manifest"
                )
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            file_hash = "sm3" if "sm3" in expected[name] else "sha256"
            h = _file_hasher(file_hash)
            src = tar.extractfile(member)
            assert src is not None
            mode = int(str(expected[name].get("mode", "600")), 8) & 0o777
            if name.startswith("keys/"):
                mode &= 0o700  # SECURITY: key material stays private whatever the archive says
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            os.chmod(fd, mode)  # not narrowed by the umask: the key ring checks exact modes
            with os.fdopen(fd, "wb") as dst:
                while block := src.read(CHUNK):
                    h.update(block)
                    dst.write(block)
            if h.hexdigest() != expected[name][file_hash]:
                raise BackupError(
                    f"{name}: {file_hash.upper()} does not match the manifest",
                    code="hash_mismatch",
                )
            seen.add(name)
        # Read to the end of the compressed stream: gzip checks its CRC and length only
        # there, so an archive cut inside its trailing padding is refused too.
        if tar.fileobj is not None:
            while tar.fileobj.read(CHUNK):
                pass
    missing = set(expected) - seen
    if missing:
        raise BackupError(
            f"files missing from the archive: {sorted(missing)}", code="missing_files"
        )
    if (staging / "keys").is_dir():
        os.chmod(staging / "keys", 0o700)
    return len(seen)


def _log_public_keys(staging: Path) -> list[str]:
    ring = keys.KeyRing.open_or_create(staging / "keys")
    return [info.pem() for info in ring.log_public_keys()]


def verify_workspace_log(
    root: Path,
    manifest: dict[str, Any],
    public_keys: list[str] | None = None,
) -> tuple[int, list[dict[str, Any]], str]:
    """Verify a workspace's audit log against the manifest's signed checkpoint and replay it
    against its ledger. Returns (log size, ledger differences, which keys were used)."""
    with tempfile.TemporaryDirectory(prefix=".sandbox-verify-") as tmp:
        conn = connect(root / DB_NAME)
        try:
            exported = audit_store.export_jsonl(conn, Path(tmp) / "audit.jsonl")
            sums = approval_sums(conn)
        finally:
            conn.close()
        if exported.entries != manifest["audit"]["size"]:
            raise BackupError(
                f"the restored log has {exported.entries} entries, the manifest "
                f"{manifest['audit']['size']}",
                code="log_size_mismatch",
            )
        checkpoints = [str(exported.checkpoint_path)] if exported.checkpoint_path else []
        if manifest["audit"].get("checkpoint"):
            cp = Path(tmp) / "manifest.checkpoint"
            cp.write_text(manifest["audit"]["checkpoint"], encoding="utf-8")
            checkpoints.append(str(cp))
        if not checkpoints and exported.entries:
            raise BackupError(
                "the backup holds no signed checkpoint to verify the log against",
                code="no_checkpoint",
            )
        verified_with = "the public key given" if public_keys else "the key ring in the backup"
        pems = public_keys or _log_public_keys(root)
        if exported.entries:
            try:
                report = verify_file(exported.path, pems, checkpoints)
            except VerificationError as err:
                raise BackupError(
                    f"the restored audit log does not verify: {err.kind} at seq {err.seq}: "
                    f"{err.message}",
                    code="log_invalid",
                ) from None
            if report.unsigned_tail:
                raise BackupError(
                    f"{report.unsigned_tail} entries are not covered by the checkpoint",
                    code="log_unsigned_tail",
                )
        replayed = replay(read_jsonl(exported.path))
        differences = compare_with_ledger(replayed, sums)
        if replayed["inconsistencies"] or differences:
            raise BackupError(
                f"the ledger does not equal the logged charges: "
                f"{(replayed['inconsistencies'] + differences)[:3]}",
                code="ledger_mismatch",
            )
        return exported.entries, differences, verified_with


def _unreadable(archive: Path, err: BaseException) -> BackupError:
    """A clear refusal for an archive that cannot be read to its end.

    ``EOFError`` (gzip: "Compressed file ended before the end-of-stream marker") means the
    file was cut short, typically a copy of an interrupted backup; it must not escape as a
    bare ``EOFError``, which click reports as "Aborted!".
    """
    if isinstance(err, EOFError) or "unexpected end of data" in str(err):
        return BackupError(
            f"{archive} is truncated (the archive ends before its end-of-stream marker: an "
            f"interrupted or partial backup); nothing was restored",
            code="truncated_archive",
        )
    return BackupError(
        f"cannot read {archive}: {str(err) or type(err).__name__} (damaged or not a backup); "
        f"nothing was restored",
        code="bad_archive",
    )


def restore(
    archive: str | os.PathLike[str],
    data_dir: str | os.PathLike[str] | None,
    *,
    force: bool = False,
    public_keys: list[str] | None = None,
    now: datetime | None = None,
) -> RestoreReport:
    """Restore ``archive`` into ``data_dir`` after checking hashes, the log and the ledger."""

    now = now or datetime.now(UTC)
    archive_path = Path(archive).expanduser().resolve()
    target = resolve_data_dir(data_dir)
    if target.exists() and not target.is_dir():
        raise BackupError(f"{target} is not a folder", code="bad_target")
    if target.exists() and any(target.iterdir()) and not force:
        raise BackupError(
            f"{target} is not empty; pass --force to replace it (it is moved aside, not deleted)",
            code="target_not_empty",
        )
    try:
        manifest = read_manifest(archive_path)
    except (tarfile.TarError, KeyError, ValueError, OSError, EOFError, zlib.error) as err:
        raise _unreadable(archive_path, err) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
    try:
        try:
            files = _extract(archive_path, staging, manifest)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
            raise _unreadable(archive_path, err) from None
        size, differences, verified_with = verify_workspace_log(staging, manifest, public_keys)
        Workspace.open(staging)  # refuses a schema newer than this release; applies migrations
        moved = None
        if target.exists():
            if any(target.iterdir()):
                moved = target.with_name(f"{target.name}.replaced-{now.strftime('%Y%m%dT%H%M%SZ')}")
                os.replace(target, moved)
            else:
                target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RestoreReport(
        target,
        files,
        size,
        manifest["audit"].get("checkpoint_size"),
        verified_with,
        moved,
        differences,
    )
