"""The backup archive's format, shared by ``sandbox.store.backup`` (writing) and
``sandbox.store.restore`` (reading): a tar.gz of the workspace's files and a
``manifest.json`` naming each with its hash, size and mode, the audit log's size and
latest signed checkpoint, and the per-approval ledger sums.

Files are hashed with SHA-256, or SM3 in the ``sm`` cryptography profile (issue 17).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import keys
from sandbox.errors import SandboxError

FORMAT = "data-sandbox-backup/1"
MANIFEST = "manifest.json"
CHUNK = 1 << 20


class BackupError(SandboxError):
    code = "backup_failed"
    http_status = 500


def file_hasher(name: str) -> Any:
    """A streaming hash object: ``sha256``, or ``sm3`` (the ``sm`` profile's file hash)."""
    if name == "sm3":
        return keys.sm3_stream()
    return hashlib.sha256()


def hash_file(path: Path, name: str = "sha256") -> str:
    h = file_hasher(name)
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return str(h.hexdigest())


def file_entries(files: list[tuple[str, Path]], file_hash: str) -> dict[str, dict[str, Any]]:
    """The manifest's ``files``: each archive name's hash, size and mode."""
    return {
        rel: {
            file_hash: hash_file(p, file_hash),
            "size": p.stat().st_size,
            "mode": f"{p.stat().st_mode & 0o777:o}",
        }
        for rel, p in files
    }


def write_archive(
    path: Path, manifest: dict[str, Any], files: list[tuple[str, Path]], now: datetime
) -> None:
    """Write the manifest, then ``files`` under their names, to a new tar.gz at ``path``
    (mode 0600: it holds the key ring), flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        blob = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(blob), 0o600, int(now.timestamp())
        tar.addfile(info, io.BytesIO(blob))
        for rel, file in files:
            tar.add(file, arcname=rel, recursive=False)
        tar.close()
        raw.flush()
        os.fsync(raw.fileno())


def safe_name(name: str) -> str:
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
