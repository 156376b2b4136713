"""Appending an entry: the log's hot path, one fsync-bound COMMIT per call.

Apart from reading and proofs because it keeps state: the right border of the tree,
cached per connection (``_heads``), from which the subtrees a new leaf completes are
hashed without reading anything back (see ``audit_log.store``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from audit_log import tree
from audit_log.compact_range import CompactRange
from audit_log.entry import ZERO_CHAIN, chain_hash, encode_entry, format_time
from audit_log.errors import EntryError, StoreError
from audit_log.store.stored_tree import (
    MAX_CACHED_CONNECTIONS,
    cached_tree_hash,
    fetch_nodes,
    remember_tree_hash,
    tree_hash_of,
)


@dataclass(frozen=True)
class AppendedEntry:
    """Where an appended entry landed: enough to build a receipt."""

    seq: int
    leaf_hash: str
    chain_hash: str
    tree_size: int
    time: str


class _Head(NamedTuple):
    """The log as one connection last left it: size, last chain hash, and its compact
    range ``[0, size)`` (hashed with the log's tree hash), from which the subtrees
    completed by the next leaf are computed without reading anything."""

    size: int
    chain: bytes
    border: CompactRange


# Keyed by id(connection) (sqlite3 connections take no weak references) and only used
# when the log's last entry, read in the caller's transaction, is still the one the
# head ends with: another process's append or a rolled-back transaction costs one
# re-read of ~log2(n) stored subtrees, never a wrong node.
_heads: dict[int, _Head] = {}
_LAST_ENTRY = "SELECT seq, chain_hash FROM audit_entries ORDER BY seq DESC LIMIT 1"
# The entry's UTF-8 bytes are bound as they are and stored as TEXT by the CAST (no
# decoding to str and encoding back on every append).
_INSERT_ENTRY = (
    "INSERT INTO audit_entries (seq, time, actor, role, action, subject, entry, leaf_hash,"
    " chain_hash) VALUES (?, ?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?)"
)
_INSERT_NODE = "INSERT INTO audit_nodes (level, idx, hash) VALUES (?, ?, ?)"


def _head(conn: sqlite3.Connection) -> _Head:
    """Where the log ends, in this transaction: the cached head if it still matches the
    last entry (one primary-key read), else read from the stored subtrees."""
    last = conn.execute(_LAST_ENTRY).fetchone()
    if last is None:
        return _Head(0, ZERO_CHAIN, CompactRange(tree_hash_of(conn)))
    tree_size, chain = int(last[0]) + 1, bytes(last[1])
    head = _heads.get(id(conn))
    if head is not None and head.size == tree_size and head.chain == chain:
        # the chain hash commits to every leaf (and so to the log), so border and hash are right
        return head
    nodes = tree.perfect_subtrees(0, tree_size)
    node = fetch_nodes(conn, nodes, tree_size)
    border = CompactRange(cached_tree_hash(conn), 0, tree_size, [node(*n) for n in nodes])
    return _Head(tree_size, chain, border)


def append(
    conn: sqlite3.Connection,
    *,
    actor: str,
    role: str,
    action: str,
    subject: str,
    details: dict[str, Any],
    now: datetime,
) -> AppendedEntry:
    """Append one entry inside the caller's transaction; return its position and hashes.

    Raises ``EntryError`` for details that are not JSON data, ``StoreError`` outside a
    transaction. Durability is the caller's COMMIT (WAL + ``synchronous=FULL``).

    Cost: one primary-key read of the last entry, one INSERT, and one more for the
    subtrees it completes (every second append); the hashes those need come from this
    connection's cached head while the last entry is still the one it ends with.
    """
    if not conn.in_transaction:
        raise StoreError(
            "audit_log.store.append must run inside the caller's transaction "
            "(BEGIN IMMEDIATE ... COMMIT) so the entry commits with what it records"
        )
    for name, value in (("actor", actor), ("role", role), ("action", action), ("subject", subject)):
        if not isinstance(value, str):
            raise EntryError(f"{name} must be a string")
    action = str(action)  # an ``audit_log.actions.Action`` is written as its plain name
    head = _head(conn)
    seq, prev = head.size, head.chain
    time = format_time(now)
    data = encode_entry(
        seq=seq,
        time=time,
        actor=actor,
        role=role,
        action=action,
        subject=subject,
        details=details,
        prev=prev.hex(),
    )
    # The border grows in place, so the head leaves the cache until the append is done:
    # an append that fails halfway leaves no head (one re-read), never a wrong one.
    _heads.pop(id(conn), None)
    border = head.border
    th = border.th
    leaf = th.hash_leaf(data)
    chain = chain_hash(prev, leaf, th)
    conn.execute(_INSERT_ENTRY, (seq, time, actor, role, action, subject, data, leaf, chain))
    completed = border.append(leaf)  # (level, idx, hash) rows of the subtrees it completes
    if len(completed) == 1:
        conn.execute(_INSERT_NODE, completed[0])
    elif completed:
        conn.executemany(_INSERT_NODE, completed)
    if id(conn) not in _heads and len(_heads) >= MAX_CACHED_CONNECTIONS:
        _heads.pop(next(iter(_heads)))
    _heads[id(conn)] = _Head(seq + 1, chain, border)
    remember_tree_hash(conn, th)
    return AppendedEntry(seq, leaf.hex(), chain.hex(), seq + 1, time)
