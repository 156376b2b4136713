"""Group commit: concurrent write transactions share one durable COMMIT.

A durable append is bound by one fsync per COMMIT (WAL, ``synchronous=FULL``). When many
threads each run ``BEGIN IMMEDIATE … COMMIT`` on their own connection they also queue on
SQLite's write lock, whose busy handler sleeps in steps of up to 100 ms: under load the
waits, not the disk, set the latency. A :class:`GroupCommitter` owns one connection
instead. Callers hand it a unit of work (a function of the connection that runs
statements, for example a budget charge and its ``store.append``); one caller at a time,
the leader, takes every unit waiting, runs them in order inside one ``BEGIN IMMEDIATE``
transaction, each in its own SAVEPOINT, and commits once. Only then does any of their
callers return. (A leader rather than a writer thread: a lone caller then pays no
hand-off between threads, which on a loaded 2-core machine cost milliseconds.)

Guarantees (what callers, such as the sandbox's charge-first walk, rely on):

* **No acknowledgement before durability.** ``run`` returns a unit's result only after
  the COMMIT that holds it returned (fsynced); if that COMMIT fails, every unit of the
  batch raises instead.
* **Units are atomic and isolated from each other's failures.** A unit that raises is
  rolled back to its savepoint and its caller gets the exception; the others commit. If
  SQLite rolled back the whole transaction (a statement error can do that, for example
  on a full disk), the units already run in it are not acknowledged: their callers get
  :class:`~audit_log.errors.StoreError` and the rest of the batch runs in a new
  transaction.
* **Serial order.** Units run one after another on one connection, so each sees every
  earlier unit's writes (a budget check cannot miss a concurrent charge) and the audit
  log's sequence numbers are dense and follow the run order.

A unit must not issue BEGIN, COMMIT or ROLLBACK, should not wait on anything but the
database, and should be short: it holds the batch. This module knows nothing of what the
units do (library layering: no ``sandbox`` import).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from audit_log.errors import StoreError

T = TypeVar("T")

#: Most units in one transaction: bounds the time the first waits for the last.
MAX_BATCH = 256


class _Unit(Generic[T]):
    """One caller's work. A waiting caller blocks on ``wake`` (held from creation), which
    is released once: when its unit is settled, or when it is handed the lead. One lock
    per waiter wakes only that waiter; a shared condition woke every waiter after every
    batch, which with 16 writers under one GIL cost about as much as the fsync."""

    __slots__ = ("error", "lead", "result", "settled", "waiting", "wake", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], T]):
        self.work = work
        self.wake = threading.Lock()
        self.wake.acquire()
        self.waiting = False  # blocked on ``wake`` (changed under the committer's lock)
        self.lead = False  # woken to lead the next batch
        self.settled = False  # committed or failed (under the committer's lock)
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommitter:
    """Runs units of write work on one connection, many per durable COMMIT.

    No thread of its own: a caller that finds no batch in progress leads one, committing
    its own unit on the shared connection; callers arriving meanwhile queue, and when the
    batch is done the first of them is woken to lead the next batch, with all the others
    queued by then. So a lone caller pays no hand-off to another thread (its latency is
    that of a plain transaction), and concurrent callers share one fsync.

    ``connect`` opens the connection (``isolation_level=None``, WAL, ``synchronous=FULL``
    for durability, ``check_same_thread=False``: each batch's leader uses it, one at a
    time), once, on first use.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, max_batch: int = MAX_BATCH,
                 name: str = "group-commit"):
        self._connect = connect
        self._max_batch = max_batch
        self._name = name
        self._lock = threading.Lock()
        self._queue: list[_Unit] = []
        self._leader: int | None = None  # thread ident of the caller committing a batch
        self._leading = False  # a batch is in progress (or its lead is being handed over)
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        #: Batches committed and units acknowledged (for benches and tests).
        self.batches = 0
        self.units = 0

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(conn)`` in a batch; return its result once committed durably.

        Raises what ``work`` raised (its statements rolled back), or ``StoreError`` if the
        batch could not commit. Called from inside a unit, it runs inline in a nested
        savepoint and is durable with the outer unit.
        """
        if self._leader == threading.get_ident():
            return self._run_one(self._conn, _Unit(work), nested=True)
        unit = _Unit(work)
        with self._lock:
            if self._closed:
                raise StoreError(f"{self._name} is closed")
            if self._leading:
                unit.waiting = True
                self._queue.append(unit)
            else:
                self._leading = True
                unit.lead = True
        if unit.waiting or not unit.lead:
            unit.wake.acquire()
        if unit.lead:
            with self._lock:
                self._leader = threading.get_ident()
                batch = [unit, *self._queue[: self._max_batch - 1]]
                del self._queue[: self._max_batch - 1]
            try:
                self._lead(batch)
            finally:
                self._hand_over()
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def _hand_over(self) -> None:
        """After a batch: wake the first queued caller to lead the next one, or stand down."""
        with self._lock:
            self._leader = None
            if self._queue:
                nxt = self._queue.pop(0)
                nxt.waiting, nxt.lead = False, True
                nxt.wake.release()
            else:
                self._leading = False

    def close(self) -> None:
        """Refuse new units, let queued and running batches finish, close the connection
        (idempotent)."""
        with self._lock:
            self._closed = True
        while True:
            with self._lock:
                if not self._leading and not self._queue:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    return
            time.sleep(0.001)

    def _lead(self, batch: list[_Unit]) -> None:
        """Commit ``batch`` as the leader (the only thread using the connection now)."""
        if self._conn is None:
            try:
                self._conn = self._connect()
            except BaseException as exc:  # noqa: BLE001 - every unit of the batch must hear of it
                self._finish(batch, StoreError(f"{self._name} could not open its connection: {exc}"))
                return
        try:
            self._commit_batch(self._conn, batch)
        finally:  # whatever happened, no caller may wait for ever
            self._finish([u for u in batch if not u.settled],
                         StoreError(f"{self._name}: the batch did not complete"))

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Unit]) -> None:
        pending = list(batch)
        while pending:
            ran: list[_Unit] = []  # units whose statements are in this transaction
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException as exc:  # noqa: BLE001 - fail the batch, keep serving
                self._finish(pending, StoreError(f"could not begin the batch's transaction: {exc}"))
                return
            rest: list[_Unit] = []
            for i, unit in enumerate(pending):
                self._run_one(conn, unit, nested=False)
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back: nothing run in it may be
                    # acknowledged; the unit that caused it keeps its own error.
                    lost = StoreError("the batch's transaction was rolled back by the database; "
                                      "this unit's writes were not committed")
                    for earlier in ran:
                        earlier.error, earlier.result = lost, None
                    self._finish([*ran, unit], None)
                    rest = pending[i + 1:]
                    ran = []
                    break
                ran.append(unit)
            if ran:
                try:
                    conn.execute("COMMIT")
                except BaseException as exc:  # noqa: BLE001 - no acknowledgement without durability
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    self._finish(ran, StoreError(f"the batch's COMMIT failed: {exc}"))
                else:
                    self.batches += 1
                    self.units += len(ran)
                    self._finish(ran, None)
            pending = rest

    @staticmethod
    def _run_one(conn: sqlite3.Connection | None, unit: _Unit, *, nested: bool):
        assert conn is not None
        savepoint = "gc_nested" if nested else "gc_unit"
        conn.execute(f"SAVEPOINT {savepoint}")
        try:
            unit.result = unit.work(conn)
        except BaseException as exc:  # noqa: BLE001 - the caller re-raises it
            unit.error = exc
            if conn.in_transaction:
                try:
                    conn.execute(f"ROLLBACK TO {savepoint}")
                    conn.execute(f"RELEASE {savepoint}")
                except sqlite3.Error:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
            if nested:
                raise
            return None
        if not conn.in_transaction:  # the unit ended the transaction itself: a bug in it
            unit.error = StoreError("a group-commit unit must not end the transaction")
            if nested:
                raise unit.error
            return None
        conn.execute(f"RELEASE {savepoint}")
        return unit.result

    def _finish(self, units: list[_Unit], error: BaseException | None) -> None:
        with self._lock:
            for unit in units:
                if error is not None:
                    unit.error, unit.result = error, None
                unit.settled = True
                if unit.waiting:  # the leader's own unit is not waiting
                    unit.waiting = False
                    unit.wake.release()
