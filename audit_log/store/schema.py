"""The audit log's tables and triggers (declarative data, run by ``sandbox.store.migrations``).

Kept apart from the code that reads and writes them so that the schema, which a
regulator reads to know what the database can hold, is one page. Table by table: see
``audit_log.store``.
"""

from __future__ import annotations


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
