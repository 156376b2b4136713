"""``keyring.json`` on disk: its format, atomic private writes, and the writers' lock.

Apart from ``keys.ring`` because this is the file-system half of the ring (modes, fsync,
``flock``), which the key logic above it never needs to see.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from keys.errors import KeysError

RING_FILE: Final = "keyring.json"
FORMAT: Final = "sandbox-keyring/v1"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def timestamp(now: datetime | None) -> str:
    """``now`` (default: the current time) as the ring's UTC timestamp text."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise KeysError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600, fsynced, directory fsynced)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked(keys_dir: Path) -> Iterator[None]:
    """Hold the ring's advisory lock (``.lock``): server and CLI may share the ring."""
    fd = os.open(keys_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def load_ring(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeysError(f"cannot read key ring {path}: {exc}") from None
    if data.get("format") != FORMAT:
        raise KeysError(f"{path} is not a {FORMAT} key ring")
    return data


def dump_ring(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"
