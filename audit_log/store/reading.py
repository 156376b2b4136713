"""Reading entries back: filtered listings, canonical bytes, and the JSONL export.

Apart from appending and proofs: these are what the console, the API and a regulator's
export read, and they touch only ``audit_entries`` (and the latest checkpoint, for export).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from audit_log.entry import format_time
from audit_log.errors import StoreError
from audit_log.store.checkpointing import latest_stored_checkpoint


@dataclass(frozen=True)
class ExportResult:
    path: Path
    entries: int
    checkpoint_path: Path | None
    checkpoint_size: int | None


def _time_bound(value: datetime | str) -> str:
    return format_time(value) if isinstance(value, datetime) else value


def entries(
    conn: sqlite3.Connection,
    start: int = 0,
    limit: int | None = None,
    *,
    actor: str | None = None,
    role: str | None = None,
    action: str | None = None,
    action_prefix: str | None = None,
    subject: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    details: dict[str, str | int | float | bool] | None = None,
) -> list[dict[str, Any]]:
    """Decoded entries with ``seq >= start`` in order, each plus ``leaf_hash``/``chain_hash`` hex.

    Filters: ``actor``, ``role``, ``action`` exact; ``action_prefix`` (``"query."``);
    ``subject`` is a prefix (``"approval:7"``); ``since`` inclusive, ``until`` exclusive;
    ``details`` equality on top-level detail fields (``{"approval_id": 7}``).
    """
    where: list[str] = ["seq >= ?"]
    params: list[object] = [start]
    for column, value in (("actor", actor), ("role", role), ("action", action)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if action_prefix is not None:
        where.append("substr(action, 1, ?) = ?")
        params += [len(action_prefix), action_prefix]
    if subject is not None:
        where.append("substr(subject, 1, ?) = ?")
        params += [len(subject), subject]
    if since is not None:
        where.append("time >= ?")
        params.append(_time_bound(since))
    if until is not None:
        where.append("time < ?")
        params.append(_time_bound(until))
    for key, wanted in (details or {}).items():
        if not key.replace("_", "").isalnum():
            raise StoreError(f"details filter key {key!r} must be alphanumeric")
        where.append(f"json_extract(entry, '$.details.{key}') = ?")
        params.append(wanted)
    sql = (
        "SELECT entry, leaf_hash, chain_hash FROM audit_entries WHERE "
        + " AND ".join(where)
        + " ORDER BY seq"
    )
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    out = []
    for row in conn.execute(sql, params):
        item: dict[str, Any] = json.loads(row[0])
        item["leaf_hash"] = bytes(row[1]).hex()
        item["chain_hash"] = bytes(row[2]).hex()
        out.append(item)
    return out


def entry_bytes(conn: sqlite3.Connection, seq: int) -> bytes:
    """The canonical bytes of entry ``seq`` (what the leaf hash covers)."""
    row = conn.execute("SELECT entry FROM audit_entries WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        raise StoreError(f"no audit entry {seq}")
    return str(row[0]).encode()


def iter_entry_bytes(conn: sqlite3.Connection, stop: int | None = None) -> Iterator[bytes]:
    """Canonical bytes of entries ``0 .. stop-1`` in order (one SELECT: one snapshot)."""
    sql = "SELECT entry FROM audit_entries ORDER BY seq"
    params: tuple[int, ...] = ()
    if stop is not None:
        sql, params = "SELECT entry FROM audit_entries WHERE seq < ? ORDER BY seq", (stop,)
    for row in conn.execute(sql, params):
        yield str(row[0]).encode()


def export_jsonl(conn: sqlite3.Connection, out_path: str | os.PathLike[str]) -> ExportResult:
    """Write every entry (one canonical entry per line) and ``OUT.checkpoint`` beside it.

    The checkpoint is read *before* the entries, so the export always covers it (entries
    appended meanwhile are exported too and show as an unsigned tail in ``verify``).
    """
    out = Path(out_path)
    stored = latest_stored_checkpoint(conn)
    count = 0
    with open(out, "wb") as fh:
        for data in iter_entry_bytes(conn):
            fh.write(data + b"\n")
            count += 1
        fh.flush()
        os.fsync(fh.fileno())
    checkpoint_path = None
    if stored is not None:
        checkpoint_path = out.with_suffix(".checkpoint")
        checkpoint_path.write_text(stored.note, encoding="utf-8")
    return ExportResult(out, count, checkpoint_path, None if stored is None else stored.tree_size)
