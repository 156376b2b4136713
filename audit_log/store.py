"""The log in the workspace's SQLite database (the only I/O of the log besides export).

The caller supplies a ``sqlite3.Connection`` (``row_factory=sqlite3.Row``,
``isolation_level=None``) and owns the transaction: nothing here issues BEGIN or COMMIT,
so an entry commits together with the budget charge and the release it records
(DESIGN.md, "a crash leaves either all three or none"). ``append`` refuses to run outside
a transaction, because an append is several statements that must not half-commit.

Tables (created by ``SCHEMA_STATEMENTS``, run by ``sandbox.store.migrations``):

``audit_entries``
    one row per entry: ``seq`` (0, 1, 2, ... with no gap, enforced by a trigger), the
    canonical entry text, its RFC 6962 leaf hash and its chain hash, and copies of
    time/actor/role/action/subject for indexed filtering.
``audit_nodes``
    the hash of every complete perfect subtree at level >= 1 (level 0 is
    ``audit_entries.leaf_hash``), written as the tree grows; roots and proofs then need
    O(log n) indexed lookups at any size (``audit_log.tree``), made in one query.
``audit_checkpoints``
    every signed checkpoint issued (note text, size, root, key id, time).
``audit_cosignatures``
    witness cosignature lines received for a checkpoint.
``audit_params``
    fixed parameters of the log: ``tree_hash`` = ``sha256`` (the default, also when the
    row or the table is absent) or ``sm3`` (the ``sm`` cryptography profile, issue 17),
    set once before the first entry by ``set_tree_hash``, which creates the table
    (``PARAMS_SCHEMA_STATEMENTS``, idempotent) so that logs made before it need no
    migration: they have no table and are SHA-256. Every function here hashes with the
    log's own tree hash, so no caller can mix two in one tree.

Durable appends are bound by one fsync per COMMIT (WAL, ``synchronous=FULL``), so an
append does as little else as it can: one primary-key read of the last entry, one
INSERT, and one more for the subtrees the new leaf completes (every second append),
whose hashes come from the tree's right border cached per connection and used only
while the log still ends where the cache says (other processes may append too).

SECURITY: triggers refuse UPDATE and DELETE on all four tables. That stops mistakes and
casual edits through the application, not an operator with the database file (who can
drop a trigger); that case is what the signed checkpoints, the witness and ``verify``
detect.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from audit_log import tree
from audit_log.checkpoint import Checkpoint, Note, sign_checkpoint
from audit_log.compact_range import CompactRange, fold
from audit_log.entry import ZERO_CHAIN, chain_hash, encode_entry, format_time
from audit_log.errors import CheckpointError, EntryError, ProofError, StoreError
from audit_log.hashing import PROFILE_TREE_HASH, SHA256, TreeHash, tree_hash
from keys import Signer


def _immutable(table: str) -> list[str]:
    return [
        f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {table} rows cannot be updated'); END""",
        f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
           BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {table} rows cannot be deleted'); END""",
    ]


SCHEMA_STATEMENTS: list[str] = [
    """CREATE TABLE audit_entries (
        seq INTEGER PRIMARY KEY CHECK (seq >= 0),
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        entry TEXT NOT NULL,
        leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
        chain_hash BLOB NOT NULL CHECK (length(chain_hash) = 32)
    )""",
    "CREATE INDEX audit_entries_actor ON audit_entries(actor, seq)",
    "CREATE INDEX audit_entries_action ON audit_entries(action, seq)",
    "CREATE INDEX audit_entries_subject ON audit_entries(subject, seq)",
    "CREATE INDEX audit_entries_time ON audit_entries(time)",
    # SECURITY: sequence numbers are dense: 0, 1, 2, ... (the tree index is the seq).
    """CREATE TRIGGER audit_entries_dense BEFORE INSERT ON audit_entries
       WHEN NEW.seq != (SELECT COALESCE(MAX(seq), -1) + 1 FROM audit_entries)
       BEGIN SELECT RAISE(ABORT, 'audit entries must be appended with the next sequence number'); END""",
    """CREATE TABLE audit_nodes (
        level INTEGER NOT NULL CHECK (level >= 1),
        idx INTEGER NOT NULL CHECK (idx >= 0),
        hash BLOB NOT NULL CHECK (length(hash) = 32),
        PRIMARY KEY (level, idx)
    ) WITHOUT ROWID""",
    """CREATE TABLE audit_checkpoints (
        id INTEGER PRIMARY KEY,
        origin TEXT NOT NULL,
        tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
        root_hash BLOB NOT NULL CHECK (length(root_hash) = 32),
        key_id TEXT NOT NULL,
        note TEXT NOT NULL,
        issued_at TEXT NOT NULL
    )""",
    "CREATE INDEX audit_checkpoints_size ON audit_checkpoints(tree_size)",
    """CREATE TABLE audit_cosignatures (
        id INTEGER PRIMARY KEY,
        checkpoint_id INTEGER NOT NULL REFERENCES audit_checkpoints(id),
        witness TEXT NOT NULL,
        signature_line TEXT NOT NULL,
        added_at TEXT NOT NULL,
        UNIQUE (checkpoint_id, witness)
    )""",
    *_immutable("audit_entries"),
    *_immutable("audit_nodes"),
    *_immutable("audit_checkpoints"),
    *_immutable("audit_cosignatures"),
]

PARAMS_SCHEMA_STATEMENTS: list[str] = [
    """CREATE TABLE IF NOT EXISTS audit_params (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    *(
        s.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS")
        for s in _immutable("audit_params")
    ),
]


def tree_hash_of(conn: sqlite3.Connection) -> TreeHash:
    """The log's tree hash: ``audit_params.tree_hash``, SHA-256 when unset (logs made
    before issue 17 have no such row, or no such table)."""
    try:
        row = conn.execute("SELECT value FROM audit_params WHERE name = 'tree_hash'").fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return SHA256
        raise
    return SHA256 if row is None else tree_hash(str(row[0]))


# The tree hash of a log with entries never changes (``set_tree_hash`` refuses then), so it
# is remembered per connection once the log is known to be non-empty: a proof stays one
# query. The connection itself is kept in the value, so its id cannot be reused meanwhile.
_tree_hashes: dict[int, tuple[sqlite3.Connection, TreeHash]] = {}


def _log_tree_hash(conn: sqlite3.Connection) -> TreeHash:
    hit = _tree_hashes.get(id(conn))
    if hit is not None and hit[0] is conn:
        return hit[1]
    return tree_hash_of(conn)


def _remember_tree_hash(conn: sqlite3.Connection, th: TreeHash) -> None:
    if id(conn) not in _tree_hashes and len(_tree_hashes) >= _MAX_HEADS:
        _tree_hashes.pop(next(iter(_tree_hashes)))
    _tree_hashes[id(conn)] = (conn, th)


def set_tree_hash(conn: sqlite3.Connection, name: str) -> None:
    """Fix the log's tree hash (``sha256`` or ``sm3``) before its first entry.

    Idempotent for the same value; ``StoreError`` if the log already has another one, or
    already has entries hashed with SHA-256 (the hash of a log never changes).
    """
    wanted = tree_hash(name)
    for statement in PARAMS_SCHEMA_STATEMENTS:
        conn.execute(statement)
    current = tree_hash_of(conn)
    row = conn.execute("SELECT value FROM audit_params WHERE name = 'tree_hash'").fetchone()
    if row is not None:
        if current is not wanted:
            raise StoreError(
                f"the audit log is hashed with {current.name}; it cannot change to {wanted.name}"
            )
        return
    if wanted is not SHA256 and size(conn) > 0:
        raise StoreError(
            f"the audit log already holds SHA-256 entries; it cannot change to {wanted.name}"
        )
    conn.execute("INSERT INTO audit_params (name, value) VALUES ('tree_hash', ?)", (wanted.name,))


@dataclass(frozen=True)
class AppendedEntry:
    """Where an appended entry landed: enough to build a receipt."""

    seq: int
    leaf_hash: str
    chain_hash: str
    tree_size: int
    time: str


@dataclass(frozen=True)
class StoredCheckpoint:
    id: int
    origin: str
    tree_size: int
    root_hash: str
    key_id: str
    issued_at: str
    note: str


@dataclass(frozen=True)
class ExportResult:
    path: Path
    entries: int
    checkpoint_path: Path | None
    checkpoint_size: int | None


# ----------------------------------------------------------------------------- tree access
_INDEX_BITS = 40  # a node (level, index) travels as level << 40 | index (2^40 ≈ 10^12 entries)
_INDEX_MASK = (1 << _INDEX_BITS) - 1
# One statement, the same text for every proof (so it stays prepared in the connection's
# statement cache), looking up each wanted node by primary key.
_FETCH_NODES = f"""
    SELECT j.value, n.hash FROM json_each(?1) AS j JOIN audit_nodes AS n
        ON n.level = (j.value >> {_INDEX_BITS}) AND n.idx = (j.value & {_INDEX_MASK})
    UNION ALL
    SELECT j.value, e.leaf_hash FROM json_each(?2) AS j JOIN audit_entries AS e
        ON e.seq = j.value"""


def _fetch(conn: sqlite3.Connection, nodes: Iterable[tree.Node], tree_size: int) -> tree.NodeReader:
    """Read the hashes of ``nodes`` (level 0: leaf hashes) of the tree of ``tree_size``
    entries in one query; ``ProofError`` if the log has fewer entries.

    One query instead of one per node: a proof at 1M entries needs ~25 nodes, and the
    per-statement overhead was much of its time. A stored node exists only once its last
    leaf was appended, so the size is proved by any wanted node ending at ``tree_size``,
    or else by also reading leaf ``tree_size - 1``.
    """
    if tree_size < 0:
        raise ProofError(f"tree size {tree_size} is outside 0..{_current_size(conn)}")
    inner: list[int] = []
    leaves: list[int] = []
    proves_size = tree_size == 0
    for level, index in nodes:
        if not 0 <= index <= _INDEX_MASK:
            raise ProofError(f"node index {index} is out of range")
        if (index + 1) << level == tree_size:
            proves_size = True
        if level:
            inner.append(level << _INDEX_BITS | index)
        else:
            leaves.append(index)
    if not proves_size:
        leaves.append(tree_size - 1)
    cursor = conn.cursor()
    cursor.row_factory = None  # plain (key, hash) tuples whatever the connection uses
    cursor.execute(
        _FETCH_NODES,
        ("[" + ",".join(map(str, inner)) + "]", "[" + ",".join(map(str, leaves)) + "]"),
    )
    found: dict[int, bytes] = dict(cursor.fetchall())
    if tree_size and len(found) < len(inner) + len(set(leaves)):
        if tree_size > _current_size(conn):
            raise ProofError(f"tree size {tree_size} is outside 0..{_current_size(conn)}")

    def node(level: int, index: int) -> bytes:
        try:
            return found[level << _INDEX_BITS | index]
        except KeyError:
            raise StoreError(
                f"the stored tree has no node at level {level} index {index}"
            ) from None

    return node


def size(conn: sqlite3.Connection) -> int:
    """Number of entries (the current tree size)."""
    row = conn.execute("SELECT MAX(seq) FROM audit_entries").fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


_current_size = size  # ``root``, ``inclusion_proof`` … take a ``size`` argument


def _hashes(conn: sqlite3.Connection, parts: list[list[tree.Node]], tree_size: int) -> list[bytes]:
    """The hash of each part (a fold of stored perfect subtrees), in one query."""
    node = _fetch(conn, dict.fromkeys(n for part in parts for n in part), tree_size)
    if not any(len(part) > 1 for part in parts):
        return [node(*part[0]) for part in parts]
    th = _log_tree_hash(conn)
    _remember_tree_hash(conn, th)  # the fetch proved the log holds ``tree_size`` > 0 entries
    return [
        node(*part[0]) if len(part) == 1 else fold([node(*n) for n in part], th) for part in parts
    ]


def root(conn: sqlite3.Connection, size: int | None = None) -> bytes:
    """Root hash of the first ``size`` entries (default: all)."""
    tree_size = _current_size(conn) if size is None else size
    if tree_size <= 0:
        _fetch(conn, (), tree_size)  # raises for a negative size
        return tree_hash_of(conn).empty_root()
    return _hashes(conn, [tree.perfect_subtrees(0, tree_size)], tree_size)[0]


def inclusion_proof(conn: sqlite3.Connection, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3 inclusion proof of entry ``index`` in the tree of ``size``."""
    return _hashes(conn, tree.inclusion_plan(index, size), size)


def consistency_proof(conn: sqlite3.Connection, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4 consistency proof from ``old_size`` to ``new_size``."""
    ranges = tree.consistency_ranges(old_size, new_size)
    if not ranges:
        _fetch(conn, (), new_size)  # still: the log must hold ``new_size`` entries
        return []
    return _hashes(conn, tree.plan(ranges), new_size)


# ----------------------------------------------------------------------------- appending
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
_MAX_HEADS = 64
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
    node = _fetch(conn, nodes, tree_size)
    border = CompactRange(_log_tree_hash(conn), 0, tree_size, [node(*n) for n in nodes])
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
    if id(conn) not in _heads and len(_heads) >= _MAX_HEADS:
        _heads.pop(next(iter(_heads)))
    _heads[id(conn)] = _Head(seq + 1, chain, border)
    _remember_tree_hash(conn, th)
    return AppendedEntry(seq, leaf.hex(), chain.hex(), seq + 1, time)


# ----------------------------------------------------------------------------- reading
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


# ----------------------------------------------------------------------------- checkpoints
def _stored(row: sqlite3.Row, cosignatures: list[str]) -> StoredCheckpoint:
    return StoredCheckpoint(
        id=int(row["id"]),
        origin=row["origin"],
        tree_size=int(row["tree_size"]),
        root_hash=bytes(row["root_hash"]).hex(),
        key_id=row["key_id"],
        issued_at=row["issued_at"],
        note=row["note"] + "".join(cosignatures),
    )


def _cosignature_lines(conn: sqlite3.Connection, checkpoint_id: int) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT signature_line FROM audit_cosignatures WHERE checkpoint_id = ? ORDER BY id",
            (checkpoint_id,),
        )
    ]


def issue_checkpoint(conn: sqlite3.Connection, signer: Signer, origin: str, now: datetime) -> str:
    """Sign and store a checkpoint of the current tree; return the signed note text.

    Idempotent: if the latest checkpoint already covers the current size with the same
    origin and key, it is returned instead of a duplicate. Safe outside a transaction
    (stored subtrees never change, so the size and root read belong together).

    SECURITY: the key must be of the log's profile (Ed25519 for a SHA-256 tree, SM2 for an
    SM3 tree): verifiers choose the tree hash by the log key's algorithm (``verify``).
    """
    th = tree_hash_of(conn)
    if PROFILE_TREE_HASH[signer.profile] is not th:
        raise StoreError(
            f"a {signer.algorithm} key cannot sign checkpoints of a {th.name} log: the log "
            "key must be of the workspace's cryptography profile"
        )
    tree_size = size(conn)
    latest = conn.execute("SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    if (
        latest is not None
        and int(latest["tree_size"]) == tree_size
        and latest["origin"] == origin
        and latest["key_id"] == signer.key_id.hex()
    ):
        return _stored(latest, _cosignature_lines(conn, int(latest["id"]))).note
    if latest is not None and int(latest["tree_size"]) > tree_size:
        raise StoreError("the log is smaller than its latest checkpoint (rollback?)")
    root_hash = root(conn, tree_size)
    note = sign_checkpoint(Checkpoint(origin, tree_size, root_hash), signer)
    conn.execute(
        "INSERT INTO audit_checkpoints (origin, tree_size, root_hash, key_id, note, issued_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (origin, tree_size, root_hash, signer.key_id.hex(), note, format_time(now)),
    )
    return note


def checkpoints(conn: sqlite3.Connection) -> list[StoredCheckpoint]:
    """Every stored checkpoint, oldest first, notes including cosignatures."""
    rows = conn.execute("SELECT * FROM audit_checkpoints ORDER BY id").fetchall()
    return [_stored(r, _cosignature_lines(conn, int(r["id"]))) for r in rows]


def latest_stored_checkpoint(conn: sqlite3.Connection) -> StoredCheckpoint | None:
    row = conn.execute("SELECT * FROM audit_checkpoints ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else _stored(row, _cosignature_lines(conn, int(row["id"])))


def latest_checkpoint(conn: sqlite3.Connection) -> str | None:
    """The latest signed checkpoint note (with any witness cosignatures), or ``None``."""
    stored = latest_stored_checkpoint(conn)
    return None if stored is None else stored.note


def add_cosignature(
    conn: sqlite3.Connection, checkpoint_id: int, signature_line: str, now: datetime
) -> None:
    """Attach a witness cosignature line (already verified by the caller) to a checkpoint."""
    if not signature_line.endswith("\n"):
        signature_line += "\n"
    row = conn.execute(
        "SELECT note FROM audit_checkpoints WHERE id = ?", (checkpoint_id,)
    ).fetchone()
    if row is None:
        raise StoreError(f"no checkpoint {checkpoint_id}")
    note = Note.parse(row["note"] + signature_line)  # raises CheckpointError if malformed
    witness = note.signatures[-1].name
    try:
        conn.execute(
            "INSERT INTO audit_cosignatures (checkpoint_id, witness, signature_line, added_at)"
            " VALUES (?, ?, ?, ?)",
            (checkpoint_id, witness, signature_line, format_time(now)),
        )
    except sqlite3.IntegrityError:
        raise CheckpointError(f"{witness} already cosigned checkpoint {checkpoint_id}") from None


# ----------------------------------------------------------------------------- export
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
