"""The stored Merkle tree: its hash function, its size, and roots and proofs served from it.

Apart from appending (``audit_log.store.appending``) because serving a proof only reads:
each root or proof is one indexed query for the nodes ``audit_log.tree`` says it needs.
The log's tree hash (``audit_params.tree_hash``) is read here too, since every node read
here must be combined with it, and is fixed once by ``set_tree_hash``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from audit_log import tree
from audit_log.compact_range import fold
from audit_log.errors import ProofError, StoreError
from audit_log.hashing import SHA256, TreeHash, tree_hash
from audit_log.store.schema import PARAMS_SCHEMA_STATEMENTS

#: How many connections the per-connection caches (tree hash, head) remember.
MAX_CACHED_CONNECTIONS = 64


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


def cached_tree_hash(conn: sqlite3.Connection) -> TreeHash:
    """The log's tree hash, from the per-connection cache when the log is known non-empty."""
    hit = _tree_hashes.get(id(conn))
    if hit is not None and hit[0] is conn:
        return hit[1]
    return tree_hash_of(conn)


def remember_tree_hash(conn: sqlite3.Connection, th: TreeHash) -> None:
    """Cache ``th`` for ``conn`` once the log holds entries (its hash can no longer change)."""
    if id(conn) not in _tree_hashes and len(_tree_hashes) >= MAX_CACHED_CONNECTIONS:
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


def fetch_nodes(
    conn: sqlite3.Connection, nodes: Iterable[tree.Node], tree_size: int
) -> tree.NodeReader:
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
    node = fetch_nodes(conn, dict.fromkeys(n for part in parts for n in part), tree_size)
    if not any(len(part) > 1 for part in parts):
        return [node(*part[0]) for part in parts]
    th = cached_tree_hash(conn)
    remember_tree_hash(conn, th)  # the fetch proved the log holds ``tree_size`` > 0 entries
    return [
        node(*part[0]) if len(part) == 1 else fold([node(*n) for n in part], th) for part in parts
    ]


def root(conn: sqlite3.Connection, size: int | None = None) -> bytes:
    """Root hash of the first ``size`` entries (default: all)."""
    tree_size = _current_size(conn) if size is None else size
    if tree_size <= 0:
        fetch_nodes(conn, (), tree_size)  # raises for a negative size
        return tree_hash_of(conn).empty_root()
    return _hashes(conn, [tree.perfect_subtrees(0, tree_size)], tree_size)[0]


def inclusion_proof(conn: sqlite3.Connection, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3 inclusion proof of entry ``index`` in the tree of ``size``."""
    return _hashes(conn, tree.inclusion_plan(index, size), size)


def consistency_proof(conn: sqlite3.Connection, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4 consistency proof from ``old_size`` to ``new_size``."""
    ranges = tree.consistency_ranges(old_size, new_size)
    if not ranges:
        fetch_nodes(conn, (), new_size)  # still: the log must hold ``new_size`` entries
        return []
    return _hashes(conn, tree.plan(ranges), new_size)
