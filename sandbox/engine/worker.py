"""The engine worker process's main loop (started by ``sandbox.engine.pool.EnginePool``;
the messages it exchanges: ``sandbox.engine.worker_protocol``).

Each worker holds its own :class:`~sandbox.engine.embedded.Engine` (its file access limited
to the engine files' directory), :class:`~sandbox.engine.tables.TableCache` (opened on the
workspace key ring, as the server does; it holds keys and file names, not decrypted tables:
docs/decisions/0013) and :class:`~sandbox.engine.execution.KeepColumns`, kept across
requests. It exits when the parent asks, closes the pipe, or dies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import pyarrow as pa

import keys
from sandbox.engine.embedded import Engine, EngineLimits
from sandbox.engine.execution import KeepColumns, execute
from sandbox.engine.tables import TableCache
from sandbox.engine.worker_protocol import UNKNOWN_ERROR, error_reply, to_ipc
from sandbox.errors import SandboxError
from sandbox.governance.datasets import DatasetVersion, engine_dir
from sandbox.store.context import KeyringDecryptor

log = logging.getLogger(__name__)


class _ReportingEngine:
    """The worker's engine, telling the parent when each engine call starts and its timeout."""

    def __init__(self, engine: Engine, conn: Connection):
        self.engine = engine
        self.limits = engine.limits
        self._conn = conn

    def execute(self, sql: str, tables: Any, *, timeout_seconds: float | None = None) -> pa.Table:
        timeout = self.limits.timeout_seconds if timeout_seconds is None else timeout_seconds
        self._conn.send(("phase", timeout))
        return self.engine.execute(sql, tables, timeout_seconds=timeout)


def worker_main(conn: Connection, data_dir: str, keys_dir: str | None, limits: EngineLimits,
                resident_bytes: int, parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's; it stops us
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    try:
        engine = Engine(limits, engine_dir(Path(data_dir)))
        # The same key ring and decryptor as the server's (sandbox.service.query_service), in this process.
        decryptor = KeyringDecryptor(keys.KeyRing.open_or_create(Path(keys_dir))) if keys_dir else None
        cache = TableCache(Path(data_dir), decryptor, resident_bytes=resident_bytes)
        keep = KeepColumns()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which refuses to start
        conn.send(("fatal", str(exc) if isinstance(exc, SandboxError) else type(exc).__name__))
        return
    conn.send(("ready", os.getpid()))
    reporting = cast(Engine, _ReportingEngine(engine, conn))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        if isinstance(msg, tuple) and msg[0] == "warm":
            _warm(cache, msg[1])
            continue
        try:
            buf = to_ipc(execute(reporting, cache, keep, msg))
        except SandboxError as err:
            conn.send(error_reply(err))
            continue
        except Exception as exc:  # noqa: BLE001 - SECURITY: class name only, the text may hold data
            log.warning("engine worker error %s", type(exc).__name__)
            conn.send(UNKNOWN_ERROR)
            continue
        conn.send(("ok",))
        conn.send_bytes(buf)


def _warm(cache: TableCache, versions: list[DatasetVersion]) -> None:
    for v in versions:
        try:
            cache.source(v)
        except Exception as exc:  # noqa: BLE001 - a query on it will report the failure
            log.warning("engine worker could not preload %s: %s", v.name, type(exc).__name__)


def _exit_with_parent(parent_pid: int) -> None:
    """Leave as soon as the server is gone, even in the middle of a query."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(0)
