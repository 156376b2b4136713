"""Group commit (audit_log.group_commit): many appends per durable COMMIT, and no caller
told "done" unless its unit is committed.

The batching tests hold the writer in a first unit until the others are queued, so the
batch they share is certain, not a matter of thread timing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import timedelta

import pytest
from test_audit_append import assert_consistent
from test_audit_support import T0, create_log, crypto_profile, open_db  # noqa: F401 (fixture)

from audit_log import store
from audit_log.errors import StoreError
from audit_log.group_commit import GroupCommitter

pytestmark = pytest.mark.usefixtures("crypto_profile")


def appender(i: int, extra=None):
    """A unit: a ledger-like row and its audit entry, like the sandbox's charge."""

    def work(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO charges (i) VALUES (?)", (i,))
        entry = store.append(conn, actor="r", role="researcher", action="query.started",
                             subject=f"query:{i}", details={"i": i}, now=T0 + timedelta(seconds=i))
        if extra is not None:
            extra(conn)
        return entry.seq

    return work


def writer_db(path):
    """The committer's connection: used by whichever caller leads a batch."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "audit.db"
    conn = create_log(path)
    conn.execute("CREATE TABLE charges (i INTEGER PRIMARY KEY)")
    return path, conn


def start(gc: GroupCommitter, work, out: dict, key) -> threading.Thread:
    def go():
        try:
            out[key] = ("ok", gc.run(work))
        except BaseException as exc:  # noqa: BLE001
            out[key] = ("error", exc)

    t = threading.Thread(target=go)
    t.start()
    return t


def hold_writer(gc: GroupCommitter, out: dict) -> tuple[threading.Event, threading.Thread]:
    """Occupy the writer with a unit that waits for ``release``, so what is queued
    meanwhile forms the next batch."""
    entered, release = threading.Event(), threading.Event()

    def block(conn):
        entered.set()
        release.wait(10)

    t = start(gc, block, out, "hold")
    assert entered.wait(10)
    return release, t


def queue_and_wait(gc: GroupCommitter, units: list, out: dict) -> list[threading.Thread]:
    threads = []
    for key, work in units:
        threads.append(start(gc, work, out, key))
        deadline = time.monotonic() + 10
        while len(gc._queue) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.001)
    assert len(gc._queue) == len(threads)
    return threads


def test_concurrent_writers_get_dense_unique_seqs_and_a_verifying_log(db, tmp_path):
    path, conn = db
    gc = GroupCommitter(lambda: writer_db(path))
    results: dict = {}
    per_thread = 60

    def writer(w: int):
        for k in range(per_thread):
            i = w * per_thread + k
            results[i] = gc.run(appender(i))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.close()
    total = 16 * per_thread
    assert sorted(results.values()) == list(range(total))  # no lost or duplicate seq
    assert gc.units == total
    # every acknowledged unit is durable: a fresh connection sees its row and entry
    fresh = open_db(path)
    assert [r[0] for r in fresh.execute("SELECT i FROM charges ORDER BY i")] == list(range(total))
    by_seq = {e["seq"]: e["details"]["i"] for e in store.entries(fresh)}
    assert all(by_seq[seq] == i for i, seq in results.items())
    assert_consistent(fresh, tmp_path)


def test_waiting_units_share_one_commit(db, tmp_path):
    path, _ = db
    gc = GroupCommitter(lambda: writer_db(path))
    out: dict = {}
    release, holder = hold_writer(gc, out)
    threads = queue_and_wait(gc, [(i, appender(i)) for i in range(10)], out)
    release.set()
    for t in [holder, *threads]:
        t.join()
    gc.close()
    assert gc.batches == 2 and gc.units == 11  # the holder's batch, then the ten together
    assert sorted(v for k, v in out.values() if k == "ok" and v is not None) == list(range(10))
    assert_consistent(open_db(path), tmp_path)


def test_a_failing_unit_is_rolled_back_alone(db, tmp_path):
    path, _ = db
    gc = GroupCommitter(lambda: writer_db(path))
    out: dict = {}

    def boom(conn):
        raise ValueError("over budget")

    release, holder = hold_writer(gc, out)
    units = [(0, appender(0)), (1, appender(1, extra=boom)), (2, appender(2))]
    threads = queue_and_wait(gc, units, out)
    release.set()
    for t in [holder, *threads]:
        t.join()
    gc.close()
    assert out[0] == ("ok", 0) and out[2] == ("ok", 1)  # 1's entry was rolled back: 2 takes seq 1
    assert out[1][0] == "error" and isinstance(out[1][1], ValueError)
    fresh = open_db(path)
    assert [r[0] for r in fresh.execute("SELECT i FROM charges ORDER BY i")] == [0, 2]
    assert [e["details"]["i"] for e in store.entries(fresh)] == [0, 2]
    assert_consistent(fresh, tmp_path)


def test_a_lost_transaction_acknowledges_none_of_the_units_run_in_it(db, tmp_path):
    """If the whole transaction is gone (here a unit rolls it back, as SQLite itself does
    on some errors), units that ran before in it are told they failed, not done."""
    path, _ = db
    gc = GroupCommitter(lambda: writer_db(path))
    out: dict = {}
    release, holder = hold_writer(gc, out)
    units = [(0, appender(0)), (1, appender(1, extra=lambda c: c.execute("ROLLBACK"))), (2, appender(2))]
    threads = queue_and_wait(gc, units, out)
    release.set()
    for t in [holder, *threads]:
        t.join()
    gc.close()
    assert out[0][0] == "error" and isinstance(out[0][1], StoreError)
    assert out[1][0] == "error" and isinstance(out[1][1], StoreError)
    assert out[2] == ("ok", 0)  # ran in a new transaction after the loss
    fresh = open_db(path)
    assert [r[0] for r in fresh.execute("SELECT i FROM charges")] == [2]
    assert_consistent(fresh, tmp_path)


class FailingCommit(sqlite3.Connection):
    """A connection whose COMMIT fails (as on an I/O error at the fsync)."""

    def execute(self, sql, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


def test_no_acknowledgement_when_the_commit_fails(db):
    path, _ = db

    def connect():
        conn = sqlite3.connect(path, isolation_level=None, factory=FailingCommit, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    gc = GroupCommitter(connect)
    out: dict = {}
    release, holder = hold_writer(gc, out)
    threads = queue_and_wait(gc, [(i, appender(i)) for i in range(3)], out)
    release.set()
    for t in [holder, *threads]:
        t.join()
    gc.close()
    assert all(out[i][0] == "error" and isinstance(out[i][1], StoreError) for i in range(3))
    fresh = open_db(path)
    assert fresh.execute("SELECT COUNT(*) FROM charges").fetchone()[0] == 0
    assert store.size(fresh) == 0


def test_a_unit_may_run_another_inline(db, tmp_path):
    path, _ = db
    gc = GroupCommitter(lambda: writer_db(path))

    def outer(conn):
        first = appender(0)(conn)
        with pytest.raises(ValueError):
            gc.run(appender(1, extra=lambda c: (_ for _ in ()).throw(ValueError("inner"))))
        return first, gc.run(appender(2))

    assert gc.run(outer) == (0, 1)
    gc.close()
    fresh = open_db(path)
    assert [r[0] for r in fresh.execute("SELECT i FROM charges ORDER BY i")] == [0, 2]
    assert_consistent(fresh, tmp_path)


def test_closed_committer_refuses(db):
    path, _ = db
    gc = GroupCommitter(lambda: writer_db(path))
    gc.run(appender(0))
    gc.close()
    with pytest.raises(StoreError):
        gc.run(appender(1))
