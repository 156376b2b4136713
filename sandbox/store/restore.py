"""Restore of a workspace from a backup archive (issue 8; 第二十四条: disaster recovery;
the archive's format: ``sandbox.store.backup_archive``).

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

import os
import shutil
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import audit_log.store as audit_store
import keys
from audit_log.errors import VerificationError
from audit_log.replay import compare_with_ledger, read_jsonl, replay
from audit_log.verify import verify_file
from sandbox.store.backup_archive import (
    CHUNK,
    MANIFEST,
    BackupError,
    file_hasher,
    read_manifest,
    safe_name,
)
from sandbox.store.ledger_sums import approval_sums
from sandbox.store.workspace import DB_NAME, Workspace, connect, resolve_data_dir


@dataclass(frozen=True)
class RestoreReport:
    path: Path
    files: int
    audit_size: int
    checkpoint_size: int | None
    verified_with: str
    moved_aside: Path | None = None
    ledger_differences: list[dict[str, Any]] = field(default_factory=list)


def _extract(archive: Path, staging: Path, manifest: dict[str, Any]) -> int:
    expected: dict[str, dict[str, Any]] = manifest["files"]
    seen: set[str] = set()
    with tarfile.open(archive, mode="r:*") as tar:
        for member in tar:
            name = safe_name(member.name)
            if name == MANIFEST:
                continue
            if not member.isfile():
                raise BackupError(f"{name!r} is not a regular file", code="unsafe_archive")
            if name not in expected or name in seen:
                raise BackupError(
                    f"{name!r} is not listed in the manifest (or listed twice)", code="bad_manifest"
                )
            src = tar.extractfile(member)
            assert src is not None
            _extract_file(src, staging / name, name, expected[name])
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


def _extract_file(src: Any, target: Path, name: str, listed: dict[str, Any]) -> None:
    """Copy one member to ``target`` with its listed mode, checking its listed hash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    file_hash = "sm3" if "sm3" in listed else "sha256"
    h = file_hasher(file_hash)
    mode = int(str(listed.get("mode", "600")), 8) & 0o777
    if name.startswith("keys/"):
        mode &= 0o700  # SECURITY: key material stays private whatever the archive says
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.chmod(fd, mode)  # not narrowed by the umask: the key ring checks exact modes
    with os.fdopen(fd, "wb") as dst:
        while block := src.read(CHUNK):
            h.update(block)
            dst.write(block)
    if h.hexdigest() != listed[file_hash]:
        raise BackupError(
            f"{name}: {file_hash.upper()} does not match the manifest",
            code="hash_mismatch",
        )


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
            _verify_log(exported.path, pems, checkpoints)
        replayed = replay(read_jsonl(exported.path))
        differences = compare_with_ledger(replayed, sums)
        if replayed["inconsistencies"] or differences:
            raise BackupError(
                f"the ledger does not equal the logged charges: "
                f"{(replayed['inconsistencies'] + differences)[:3]}",
                code="ledger_mismatch",
            )
        return exported.entries, differences, verified_with


def _verify_log(log: Path, pems: list[str], checkpoints: list[str]) -> None:
    """The restored log verifies under ``pems`` and the checkpoint covers all of it."""
    try:
        report = verify_file(log, pems, checkpoints)
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
