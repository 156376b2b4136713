"""Engine worker processes that read the encrypted engine files and are killed at their limits.

Why (docs/decisions/0005): DuckDB's ``memory_limit`` does not stop every allocation
(``SELECT len(range(200000000))`` grew one process to 14 GB under a 4 GB limit) and its
interrupt is only checked between vectors (``list_sort`` over one 6M-element list ran on
for 8 s after ``interrupt()``). Inside the server process neither can be enforced. A
worker process can: the parent watches each query's wall clock and the worker's resident
memory and, on a breach, kills the worker (SIGKILL) and starts a replacement.

Each worker (``sandbox.engine.worker``) keeps its engine, table cache and kept columns
across requests. A request (:class:`EngineRequest`, plain data) goes down a pipe
(``sandbox.engine.worker_protocol``); the worker reports each engine call as it starts
(``("phase", timeout)``) so table loading is timed apart from the query, and the exact
result comes back as Arrow IPC bytes.

Failures keep :meth:`InProcessExecutor.run`'s contract: :class:`EngineFailure` with a
stable code and a generic message, never engine text (SECURITY). The service charges
every ``EngineFailure`` (DESIGN.md: a data-dependent failure after execution starts is
charged); :class:`EngineBusy` is raised before any worker saw the query and is not.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import pyarrow as pa

from sandbox.engine.embedded import EngineLimits
from sandbox.engine.execution import EngineRequest
from sandbox.engine.worker import worker_main
from sandbox.engine.worker_protocol import GENERIC, from_ipc, rebuild
from sandbox.errors import EngineFailure, SandboxError
from sandbox.governance.datasets import DatasetVersion

log = logging.getLogger(__name__)

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size as DuckDB writes it (``4GB`` = 4·10⁹, ``512MiB`` = 512·2²⁰).

    >>> parse_size("4GB"), parse_size("1.5 GiB"), parse_size("1000")
    (4000000000, 1610612736, 1000)
    """
    s = text.strip().lower().replace(" ", "")
    number = s.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = s[len(number):]
    try:
        size = int(float(number) * _UNITS[unit])
    except (KeyError, ValueError, OverflowError):
        size = 0
    if size <= 0:
        raise ValueError(f"not a size: {text!r} (use e.g. 512MB, 4GB, 2GiB)")
    return size


def default_resident_bytes(limits: EngineLimits) -> int:
    """The residency budget of each worker (decision 0013): ``SANDBOX_RESIDENT_MEMORY``
    (a size, ``0`` to read everything in place), else an eighth of the engine's memory
    limit, 500 MB of the default 4 GB. Why an eighth: two workers then hold at most 1 GB
    of decrypted data, below one copy of the 10M-person demo (1.8 GiB as Arrow, issue 16),
    while a 1M-person workspace (180 MiB) is held whole (issue 18)."""
    configured = os.environ.get("SANDBOX_RESIDENT_MEMORY", "").strip()
    if configured:
        return 0 if configured == "0" else parse_size(configured)
    return parse_size(limits.memory_limit) // 8


def default_workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class PoolSettings:
    """How many workers, and the limits the parent enforces on them."""

    workers: int = field(default_factory=default_workers)
    #: a worker is killed this long after the engine's own timeout (its interrupt) failed
    grace_seconds: float = 5.0
    #: growth of the worker's resident memory allowed per query; None: DuckDB's limit + 1 GiB
    query_memory_bytes: int | None = None
    #: loading (decrypting, decoding) a request's datasets into a worker
    load_timeout_seconds: float = 300.0
    #: decrypted data a worker may hold in memory (the residency budget, decision 0013);
    #: None: SANDBOX_RESIDENT_MEMORY or an eighth of DuckDB's memory limit. Versions over it are read in place.
    resident_bytes: int | None = None
    #: how long a request waits for an idle worker before ``engine_busy``
    queue_timeout_seconds: float = 60.0
    poll_seconds: float = 0.02


class EngineBusy(SandboxError):
    """No worker took the query in time; it never reached an engine, so it is not charged."""

    code = "engine_busy"
    http_status = 503


class _Worker:
    def __init__(self, process: Any, conn: Connection):
        self.process = process
        self.conn = conn

    @property
    def pid(self) -> int:
        return int(self.process.pid)


class EnginePool:
    """``run(req)`` on one of N worker processes; thread-safe (waitress serves on threads)."""

    def __init__(self, data_dir: Path, keys_dir: Path | None, limits: EngineLimits | None = None,
                 settings: PoolSettings | None = None, *, warm: Iterable[DatasetVersion] = ()):
        self.limits = limits or EngineLimits()
        self.settings = settings or PoolSettings()
        if self.settings.workers < 1:
            raise ValueError("an engine pool needs at least one worker")
        self.memory_limit = self.settings.query_memory_bytes or parse_size(self.limits.memory_limit) + 2**30
        self.resident_bytes = (self.settings.resident_bytes if self.settings.resident_bytes is not None
                               else default_resident_bytes(self.limits))
        self._args = (str(data_dir), str(keys_dir) if keys_dir else None, self.limits, self.resident_bytes)
        # spawn: the server has threads, and a forked copy of them (and their locks) is unsafe
        self._ctx = multiprocessing.get_context("spawn")
        self._cond = threading.Condition()
        self._spawn_lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._warm: dict[str, DatasetVersion] = {v.name: v for v in warm}
        self._closed = False
        started = [self._spawn() for _ in range(self.settings.workers)]
        try:
            for w in started:
                _await_ready(w, timeout=120.0)
        except BaseException:
            self.close()
            raise
        with self._cond:
            self._idle.extend(started)
            self._cond.notify_all()

    # -- public ---------------------------------------------------------------------
    def run(self, req: EngineRequest) -> pa.Table:
        """The exact result of ``req`` (same contract as ``InProcessExecutor.run``)."""
        with self.slot() as run:
            return run(req)

    @contextlib.contextmanager
    def slot(self) -> Iterator[Callable[[EngineRequest], pa.Table]]:
        """Reserve an idle worker, then run one request on it.

        Why: the service charges a query before the engine reads any data, and a query
        that cannot get an engine must not be charged. Reserving first makes
        :class:`EngineBusy` happen (uncharged, data-independent) before the charge.
        """
        w = self._acquire()
        used = False

        def run(req: EngineRequest) -> pa.Table:
            nonlocal used
            if used:
                raise RuntimeError("an engine slot runs one request")
            used = True
            return self._run_on(w, req)

        try:
            yield run
        finally:
            if not used:
                self._release(w)

    def _run_on(self, w: _Worker | None, req: EngineRequest) -> pa.Table:
        try:
            w = self._send(cast(_Worker, w), req)
            with self._cond:
                self._warm.update({v.name: v for v in req.versions})
            return self._await_result(w)
        except _Killed as killed:
            w = self._replace(cast(_Worker, w), killed.reason)
            raise killed.failure from None
        except SandboxError:
            raise  # the worker answered, or was never used: it is in step with us
        except BaseException:
            w = self._replace(cast(_Worker, w), "its answer could not be read")  # out of step
            raise
        finally:
            if w is not None:
                self._release(w)

    def pids(self) -> list[int]:
        with self._cond:
            return sorted(w.pid for w in self._workers)

    def idle(self) -> int:
        """How many workers are waiting for a query."""
        with self._cond:
            return len(self._idle)

    def close(self) -> None:
        """Stop every worker (they also exit by themselves when this process dies).

        Idle workers are asked to exit; a worker still running a query is killed, and its
        caller gets an ``EngineFailure``.
        """
        with self._cond:
            self._closed = True
            idle, busy = list(self._idle), [w for w in self._workers if w not in self._idle]
            self._workers.clear()
            self._idle.clear()
            self._cond.notify_all()
        for w in idle:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        for w in idle:
            w.process.join(timeout=2.0)
        for w in idle + busy:
            self._stop(w)

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dispatch -------------------------------------------------------------------
    def _acquire(self) -> _Worker:
        with self._cond:
            if not self._cond.wait_for(lambda: self._idle or self._closed, self.settings.queue_timeout_seconds):
                raise EngineBusy(
                    f"all {self.settings.workers} query engines stayed busy for "
                    f"{self.settings.queue_timeout_seconds:g} s; try again in a moment"
                )
            if self._closed:
                raise EngineBusy("the query engine is shutting down")
            w = self._idle.pop(0)  # round robin: every worker's health is seen in turn
        if not w.process.is_alive():
            fresh = self._replace(w, "it had exited while idle")
            if fresh is None:
                raise EngineBusy("the query engine is shutting down")
            w = fresh
        return w

    def _release(self, w: _Worker) -> None:
        with self._cond:
            keep = not self._closed and w in self._workers
            if keep:
                self._idle.append(w)
                self._cond.notify()
        if not keep:
            self._stop(w)

    def _send(self, w: _Worker, req: EngineRequest) -> _Worker:
        """Hand ``req`` to ``w``, or to a fresh worker if ``w`` died while idle (nothing ran)."""
        try:
            w.conn.send(req)
            return w
        except (OSError, ValueError):
            pass
        fresh = self._replace(w, "its pipe was closed while idle")
        if fresh is not None:
            try:
                fresh.conn.send(req)
                return fresh
            except (OSError, ValueError):
                self._release(fresh)  # the next acquire replaces it
        raise EngineBusy("the query engine is unavailable; try again in a moment")

    def _spawn(self) -> _Worker:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        with self._spawn_lock:
            process = self._ctx.Process(target=worker_main, args=(child_end, *self._args, os.getpid()),
                                        name="sandbox-engine", daemon=True)
            process.start()
        child_end.close()
        w = _Worker(process, parent_end)
        with self._cond:
            self._workers.add(w)
            warm = list(self._warm.values())
        if warm:  # queued before any request: the replacement loads while it is idle
            parent_end.send(("warm", warm))
        return w

    def _replace(self, w: _Worker, reason: str) -> _Worker | None:
        """Kill ``w`` and start its successor (None once the pool is closing)."""
        log.warning("engine worker %d stopped: %s", w.pid, reason)
        with self._cond:
            self._workers.discard(w)
            closed = self._closed
        self._stop(w)
        return None if closed else self._spawn()

    def _stop(self, w: _Worker) -> None:
        with self._spawn_lock:
            if w.process.is_alive():
                w.process.kill()  # SIGKILL: an engine stuck in native code ignores anything milder
            w.process.join(timeout=5.0)
        w.conn.close()

    # -- one request ----------------------------------------------------------------
    def _await_result(self, w: _Worker) -> pa.Table:
        """Wait for ``w``'s answer while watching its wall clock and resident memory."""
        s = self.settings
        deadline = time.monotonic() + s.load_timeout_seconds
        timeout: float | None = None  # the engine's own timeout for the running call
        baseline: int | None = None  # resident bytes when the engine work began
        while True:
            try:
                ready = w.conn.poll(max(0.0, min(s.poll_seconds, deadline - time.monotonic())))
                msg: tuple[Any, ...] = w.conn.recv() if ready else ("wait",)
                if msg[0] == "ok":
                    return from_ipc(w.conn.recv_bytes())
            except (EOFError, OSError):  # crashed, OOM-killed, or killed by close()
                raise _Killed("it stopped unexpectedly", EngineFailure(GENERIC)) from None
            if msg[0] == "error":
                raise rebuild(*msg[1:])
            if msg[0] == "phase":
                timeout = float(msg[1])
                deadline = time.monotonic() + timeout + s.grace_seconds
                baseline = _rss(w.pid) if baseline is None else baseline
            if time.monotonic() >= deadline:
                raise _Killed("it passed the wall-clock limit", self._timeout(timeout))
            if baseline is not None and _rss(w.pid) - baseline > self.memory_limit:
                raise _Killed("it passed the memory limit", EngineFailure(
                    f"the query used more than {_human(self.memory_limit)} of memory and was stopped",
                    code="query_memory_limit", status=422))

    def _timeout(self, timeout: float | None) -> EngineFailure:
        if timeout is None:
            return EngineFailure(f"loading the query's data took longer than {self.settings.load_timeout_seconds:g} s "
                                 "and the query was stopped", code="query_timeout", status=408)
        return EngineFailure(f"the query ran longer than {timeout:g} s and was stopped",
                             code="query_timeout", status=408)


class _Killed(Exception):
    def __init__(self, reason: str, failure: EngineFailure):
        super().__init__(reason)
        self.reason = reason
        self.failure = failure


def _await_ready(w: _Worker, timeout: float) -> None:
    if not w.conn.poll(timeout):
        raise SandboxError("an engine worker did not start in time", code="engine_start", status=500)
    try:
        msg = w.conn.recv()
    except (EOFError, OSError):
        msg = ("fatal", "it exited")
    if msg[0] != "ready":
        raise SandboxError(f"an engine worker could not start: {msg[1]}", code="engine_start", status=500)


def _rss(pid: int) -> int:
    """Resident bytes of ``pid`` (0 where /proc is missing: no memory limit there)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _human(n: int) -> str:
    return f"{n / 2**30:.3g} GiB" if n >= 2**30 else f"{n / 2**20:.3g} MiB"
