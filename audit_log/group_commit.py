"""Group commit: concurrent write transactions share one durable COMMIT.

A durable append is bound by one fsync per COMMIT (WAL, ``synchronous=FULL``). When many
threads each run ``BEGIN IMMEDIATE … COMMIT`` on their own connection they also queue on
SQLite's write lock, whose busy handler sleeps in steps of up to 100 ms: under load the
waits, not the disk, set the latency. A :class:`GroupCommitter` owns one connection and
one writer thread instead. Callers hand it a unit of work (a function of the connection
that runs statements, for example a budget charge and its ``store.append``); the writer
takes every unit waiting, runs them in order inside one ``BEGIN IMMEDIATE`` transaction,
each in its own SAVEPOINT, and commits once. Only then does any caller return.

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

import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from audit_log.errors import StoreError

T = TypeVar("T")

#: Most units in one transaction: bounds the time the first waits for the last.
MAX_BATCH = 256


class _Unit(Generic[T]):
    """One caller's work. ``done`` is a lock held until the unit is settled: a waiter
    blocks in C on ``acquire`` (a ``threading.Event`` costs several Python-level lock
    operations per wake-up, which under the GIL was much of an append's time)."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], T] | None):
        self.work = work
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommitter:
    """Runs units of write work on one connection, many per durable COMMIT.

    ``connect`` opens the writer's connection (``isolation_level=None``, WAL,
    ``synchronous=FULL`` for durability); it is called in the writer thread, once.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, max_batch: int = MAX_BATCH,
                 name: str = "group-commit"):
        self._connect = connect
        self._max_batch = max_batch
        self._name = name
        self._lock = threading.Lock()  # guards _thread and _closed
        self._queue: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: sqlite3.Connection | None = None
        #: Batches committed and units acknowledged (for benches and tests).
        self.batches = 0
        self.units = 0

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work(conn)`` in the next batch; return its result once committed durably.

        Raises what ``work`` raised (its statements rolled back), or ``StoreError`` if the
        batch could not commit. Called from a unit (the writer thread), it runs inline
        in a nested savepoint, and is durable with the outer unit.
        """
        if threading.current_thread() is self._thread:
            return self._run_one(self._conn, _Unit(work), nested=True)
        unit = _Unit(work)
        with self._lock:
            if self._closed:
                raise StoreError(f"{self._name} is closed")
            self._queue.put(unit)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
        unit.done.acquire()
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[return-value]

    def close(self) -> None:
        """Commit what is queued, stop the writer and close its connection (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(_Unit(None))  # wakes the writer, which then stops
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- the writer thread -----------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear of it
            self._fail_all(exc)
            return
        conn = self._conn
        try:
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                while len(batch) < self._max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                if any(unit.work is None for unit in batch):  # close(): what came before
                    stopping = True  # still commits; nothing can come after
                    batch = [unit for unit in batch if unit.work is not None]
                if batch:
                    self._commit_batch(conn, batch)
        finally:
            conn.close()

    def _fail_all(self, exc: BaseException) -> None:
        with self._lock:
            self._closed = True
        while True:
            try:
                unit = self._queue.get_nowait()
            except queue.Empty:
                return
            unit.error = StoreError(f"{self._name} could not open its connection: {exc}")
            unit.done.release()

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

    @staticmethod
    def _finish(units: list[_Unit], error: BaseException | None) -> None:
        for unit in units:
            if error is not None:
                unit.error, unit.result = error, None
            unit.done.release()
