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

One module per job, so that the hot path stays short to read: ``schema`` (the tables),
``stored_tree`` (tree hash, size, roots and proofs: reads only), ``appending`` (the
append path and its cached head), ``checkpointing`` (signed checkpoints and
cosignatures) and ``reading`` (entries and the JSONL export).
"""

from audit_log.store.appending import AppendedEntry, append
from audit_log.store.checkpointing import (
    StoredCheckpoint,
    add_cosignature,
    checkpoints,
    issue_checkpoint,
    latest_checkpoint,
    latest_stored_checkpoint,
)
from audit_log.store.reading import (
    ExportResult,
    entries,
    entry_bytes,
    export_jsonl,
    iter_entry_bytes,
)
from audit_log.store.schema import PARAMS_SCHEMA_STATEMENTS, SCHEMA_STATEMENTS
from audit_log.store.stored_tree import (
    consistency_proof,
    inclusion_proof,
    root,
    set_tree_hash,
    size,
    tree_hash_of,
)

__all__ = [
    "PARAMS_SCHEMA_STATEMENTS",
    "SCHEMA_STATEMENTS",
    "AppendedEntry",
    "ExportResult",
    "StoredCheckpoint",
    "add_cosignature",
    "append",
    "checkpoints",
    "consistency_proof",
    "entries",
    "entry_bytes",
    "export_jsonl",
    "inclusion_proof",
    "issue_checkpoint",
    "iter_entry_bytes",
    "latest_checkpoint",
    "latest_stored_checkpoint",
    "root",
    "set_tree_hash",
    "size",
    "tree_hash_of",
]
