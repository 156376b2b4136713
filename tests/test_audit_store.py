"""The SQLite store: append, filters, immutability triggers, proofs, checkpoints, export."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
from test_audit_support import ORIGIN, T0, create_log, crypto_profile, fill, open_db, ring, th  # noqa: F401 (crypto_profile: fixture)

from audit_log import proofs, store, tree
from audit_log.checkpoint import Note, open_checkpoint
from audit_log.entry import check_canonical
from audit_log.errors import EntryError, ProofError, StoreError
from audit_log.receipt import Receipt, ReceiptError, make_receipt, verify_receipt
from audit_log.witness import cosign

# Every test here runs once per cryptography profile (issue 17): SHA-256/Ed25519 and SM3/SM2.
pytestmark = pytest.mark.usefixtures("crypto_profile")


@pytest.fixture
def conn(tmp_path):
    c = create_log(tmp_path / "audit.db")
    yield c
    c.close()


def append_one(conn, i=0, **kw):
    conn.execute("BEGIN IMMEDIATE")
    try:
        return store.append(
            conn,
            actor=kw.get("actor", "alice"),
            role="researcher",
            action=kw.get("action", "query.released"),
            subject=f"query:{i}",
            details=kw.get("details", {"i": i}),
            now=T0 + timedelta(seconds=i),
        )
    finally:
        conn.execute("COMMIT")


def test_append_returns_position_and_hashes(conn):
    first = append_one(conn, 0)
    second = append_one(conn, 1)
    assert (first.seq, first.tree_size, second.seq, second.tree_size) == (0, 1, 1, 2)
    rows = store.entries(conn)
    assert [r["seq"] for r in rows] == [0, 1]
    assert rows[0]["prev"] == "0" * 64 and rows[1]["prev"] == first.chain_hash
    assert rows[1]["leaf_hash"] == th().hash_leaf(store.entry_bytes(conn, 1)).hex() == second.leaf_hash
    check_canonical(store.entry_bytes(conn, 1))


def test_append_needs_the_callers_transaction(conn):
    with pytest.raises(StoreError, match="inside the caller's transaction"):
        store.append(conn, actor="a", role="r", action="x", subject="s", details={}, now=T0)
    assert store.size(conn) == 0


def test_a_rolled_back_transaction_leaves_no_entry(conn):
    conn.execute("BEGIN IMMEDIATE")
    store.append(conn, actor="a", role="r", action="x", subject="s", details={}, now=T0)
    conn.execute("ROLLBACK")
    assert store.size(conn) == 0 and store.root(conn) == tree.root(0, lambda *a: b"", th())


def test_bad_details_are_refused_before_writing(conn):
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(EntryError):
        store.append(
            conn, actor="a", role="r", action="x", subject="s", details={"x": float("nan")}, now=T0
        )
    with pytest.raises(EntryError, match="timezone-aware"):
        store.append(
            conn,
            actor="a",
            role="r",
            action="x",
            subject="s",
            details={},
            now=T0.replace(tzinfo=None),
        )
    conn.execute("COMMIT")
    assert store.size(conn) == 0


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_entries SET actor = 'mallory'",
        "DELETE FROM audit_entries WHERE seq = 1",
        "UPDATE audit_nodes SET hash = zeroblob(32)",
        "DELETE FROM audit_nodes",
        "UPDATE audit_checkpoints SET tree_size = 0",
        "DELETE FROM audit_checkpoints",
        "DELETE FROM audit_cosignatures",
        "UPDATE audit_cosignatures SET witness = 'x'",
    ],
)
def test_triggers_refuse_update_and_delete(conn, tmp_path, sql):
    for i in range(4):
        append_one(conn, i)
    keyring = ring(tmp_path / "keys")
    note = store.issue_checkpoint(conn, keyring.log_signer(), ORIGIN, T0)
    line = cosign(keyring.signer("witness"), Note.parse(note).text, 1).line()
    store.add_cosignature(conn, store.latest_stored_checkpoint(conn).id, line, T0)
    assert store.latest_checkpoint(conn) == note + line
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(sql)


def test_sequence_numbers_must_be_dense(conn):
    append_one(conn, 0)
    with pytest.raises(sqlite3.IntegrityError, match="next sequence number"):
        conn.execute(
            "INSERT INTO audit_entries VALUES (5, 't', 'a', 'r', 'x', 's', '{}', zeroblob(32), zeroblob(32))"
        )


def test_filters(conn):
    for i in range(30):
        append_one(
            conn,
            i,
            actor=f"u{i % 3}",
            action="query.refused" if i % 5 == 0 else "query.released",
            details={"approval_id": i % 2, "i": i},
        )
    assert {r["actor"] for r in store.entries(conn, actor="u1")} == {"u1"}
    assert len(store.entries(conn, action="query.refused")) == 6
    assert len(store.entries(conn, action_prefix="query.")) == 30
    assert [r["seq"] for r in store.entries(conn, subject="query:2")] == [
        2,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        29,
    ]
    assert [
        r["seq"]
        for r in store.entries(
            conn, since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=13)
        )
    ] == [10, 11, 12]
    assert [r["seq"] for r in store.entries(conn, start=25, limit=2)] == [25, 26]
    assert all(
        r["details"]["approval_id"] == 1 for r in store.entries(conn, details={"approval_id": 1})
    )
    with pytest.raises(StoreError):
        store.entries(conn, details={"x') OR 1=1 --": 1})


def test_stored_tree_matches_in_memory_tree_at_every_size(conn, tmp_path):
    leaves = []
    signer = ring(tmp_path / "keys").log_signer()
    for i in range(70):
        leaves.append(bytes.fromhex(append_one(conn, i).leaf_hash))
        node = tree.leaves_node_reader(leaves, th())
        assert store.root(conn) == tree.root(len(leaves), node, th())
    n = len(leaves)
    note = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    cp = open_checkpoint(note, [signer.public_key_pem()], origin=ORIGIN)
    assert cp.size == n and cp.root_hash == store.root(conn)
    for index in range(n):
        proof = store.inclusion_proof(conn, index, n)
        proofs.verify_inclusion(leaves[index], index, n, proof, cp.root_hash, th())
    for old in range(0, n + 1):
        proof = store.consistency_proof(conn, old, n)
        proofs.verify_consistency(old, n, store.root(conn, old), cp.root_hash, proof, th())
    with pytest.raises(ProofError):
        store.inclusion_proof(conn, 0, n + 1)


def test_checkpoints_are_idempotent_and_track_growth(conn, tmp_path):
    signer = ring(tmp_path / "keys").log_signer()
    assert store.latest_checkpoint(conn) is None
    empty = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    assert open_checkpoint(empty, [signer.public_key_pem()]).size == 0
    append_one(conn, 0)
    first = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    assert store.issue_checkpoint(conn, signer, ORIGIN, T0) == first
    assert len(store.checkpoints(conn)) == 2
    assert store.latest_checkpoint(conn) == first


def test_receipt_round_trip(conn, tmp_path):
    signer = ring(tmp_path / "keys").log_signer()
    appended = [append_one(conn, i) for i in range(9)]
    receipt = make_receipt(appended[4], "q-4", ORIGIN)
    assert Receipt.from_json(receipt.to_json()) == receipt
    for i in range(9, 20):
        append_one(conn, i)
    cp = open_checkpoint(
        store.issue_checkpoint(conn, signer, ORIGIN, T0), [signer.public_key_pem()]
    )
    proof = store.inclusion_proof(conn, receipt.log_index, cp.size)
    verify_receipt(receipt, store.entry_bytes(conn, 4), proof, cp, th())
    with pytest.raises(ReceiptError):
        verify_receipt(receipt, store.entry_bytes(conn, 5), proof, cp, th())
    with pytest.raises(ReceiptError):
        Receipt.from_json('{"query_id": "x", "log_index": 3, "leaf_hash": "zz", "tree_size": 4}')
    legacy = dict(receipt.to_dict(), seq=4)
    del legacy["log_index"]
    assert Receipt.from_dict(legacy) == receipt


def test_export_writes_entries_and_checkpoint(conn, tmp_path):
    signer = ring(tmp_path / "keys").log_signer()
    fill(conn, 50)
    store.issue_checkpoint(conn, signer, ORIGIN, T0)
    fill(conn, 5, start=50)  # appended after the checkpoint: an unsigned tail
    result = store.export_jsonl(conn, tmp_path / "out.jsonl")
    assert result.entries == 55 and result.checkpoint_size == 50
    lines = (tmp_path / "out.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 56
    assert all(check_canonical(line)["seq"] == i for i, line in enumerate(lines[:-1]))
    assert (tmp_path / "out.checkpoint").read_text() == store.latest_checkpoint(conn)


def test_append_throughput_is_reasonable(conn):
    """Sanity only (the benchmark measures properly): 500 batched appends well under 5 s."""
    import time

    start = time.perf_counter()
    fill(conn, 500)
    assert time.perf_counter() - start < 5


CRASH_CHILD = r"""
import sys, sqlite3
from datetime import UTC, datetime
from audit_log import store
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.row_factory = sqlite3.Row
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=FULL")
i = 0
while True:
    conn.execute("BEGIN IMMEDIATE")
    a = store.append(conn, actor="r", role="researcher", action="query.released", subject=f"query:{i}",
                     details={"approval_id": 1, "epsilon": 0.1, "i": i}, now=datetime.now(UTC))
    if i % 2:
        store.append(conn, actor="r", role="researcher", action="query.refused", subject=f"query:{i}b",
                     details={"approval_id": 1, "code": "x"}, now=datetime.now(UTC))
    conn.execute("COMMIT")
    print(a.seq, flush=True)  # acknowledged only after COMMIT returned
    i += 1
"""


@pytest.mark.slow
def test_kill_9_during_appends_leaves_a_verifiable_log(tmp_path):
    """SIGKILL a process appending durable transactions: every acknowledged entry is
    there, no transaction is half-applied, and the log verifies."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from audit_log.compact_range import CompactRange
    from audit_log.verify import verify_file

    db = tmp_path / "audit.db"
    create_log(db).close()
    for round_ in range(2):
        child = subprocess.Popen(
            [sys.executable, "-c", CRASH_CHILD, str(db)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        acknowledged = -1
        deadline = time.monotonic() + 30
        assert child.stdout is not None
        while acknowledged < 150 * (round_ + 1) and time.monotonic() < deadline:
            acknowledged = int(child.stdout.readline())
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
        conn = open_db(db)
        n = store.size(conn)
        assert n > acknowledged
        rows = store.entries(conn)
        assert [r["seq"] for r in rows] == list(range(n))
        # transactions are atomic: every odd release is followed by its refusal
        released = [r for r in rows if r["action"] == "query.released"]
        for r in released:
            if r["details"]["i"] % 2:
                assert rows[r["seq"] + 1]["action"] == "query.refused"
        streamed = CompactRange(th())
        for r in rows:
            streamed.append(bytes.fromhex(r["leaf_hash"]))
        assert store.root(conn) == streamed.root()
        signer = ring(tmp_path / "keys").log_signer()
        store.issue_checkpoint(conn, signer, ORIGIN, T0)
        store.export_jsonl(conn, tmp_path / "log.jsonl")
        assert verify_file(tmp_path / "log.jsonl", [signer.public_key_pem()]).entries == n
        conn.close()
