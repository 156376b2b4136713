"""Published versions made ready for queries in the background (issues 16 and 18).

Why: the first query of a grouping on a new version used to rank every row of the
bounded dataset (decision 0004's keep query): 7–8 s at 10M persons, paid by whichever
researcher came first, and its absence told later researchers that someone had used
that grouping (a timing side channel about others' activity). Now, as soon as a version
is published (or an approval granted, or the server starts on an older workspace), a
background thread of the server:

1. writes the version's engine file (Parquet modular encryption, decision 0013) — the
   migration for versions stored before engine files existed;
2. for every approval whose scope reaches the version and every grouping its policy's
   public keys allow (no grouping, and each column with ``public_values``), plans
   ``SELECT k, COUNT(*) … GROUP BY k`` with the guard and computes the keep column, which
   is persisted encrypted beside the version (``sandbox.engine.tables.KeepStore``), so every worker and
   every restart reads it instead of computing it.

Nothing here depends on a researcher's query: only on versions, policies and approvals.
Progress is logged, held in ``Preparer.progress`` and written to ``prepare-status.json``
in the workspace (for operators and the benchmarks).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import query_guard
from sandbox.clock import iso
from sandbox.engine.embedded import Engine
from sandbox.engine.execution import KeepColumns, engine_request, materialise
from sandbox.engine.tables import TableCache
from sandbox.governance import datasets, workflow
from sandbox.store.context import Context

log = logging.getLogger(__name__)

#: how often the watcher looks for newly published versions and new approvals
POLL_SECONDS = 2.0


def groupings(policy) -> list[tuple[str, ...]]:
    """The groupings prepared for a bounded dataset: none, and each public-key column."""
    keys = [c.name for c in policy.columns.values() if c.public_values]
    return [(), *((k,) for k in keys)]


def jobs(conn, versions: list[datasets.DatasetVersion], now: str) -> list[tuple[Any, str]]:
    """(approval, SQL) pairs whose keep columns should exist for ``versions``."""
    out = []
    bounded = [v for v in versions if not v.policy.one_row_per_unit]
    for a in workflow.all_approvals(conn):
        if a.expires_at is not None and a.expires_at < now:
            continue
        for v in bounded:
            if v.name not in a.datasets:
                continue
            for g in groupings(v.policy):
                cols = ", ".join(g)
                sql = (f"SELECT {cols}, COUNT(*) FROM {v.name} GROUP BY {cols}" if g
                       else f"SELECT COUNT(*) FROM {v.name}")
                out.append((a, sql))
    return out


class Preparer:
    """The server's background preparation thread (``start``/``stop``; idempotent work)."""

    def __init__(self, ctx: Context, engine: Engine, tables: TableCache):
        self.ctx, self.engine, self.tables = ctx, engine, tables
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: tuple = ()
        self.progress: dict[str, Any] = {"state": "idle", "done": 0, "total": 0}

    def start(self) -> None:
        self.progress = {"state": "starting", "done": 0, "total": 0}
        self._publish()  # a status left by the previous run must not read "ready"
        self._thread = threading.Thread(target=self._loop, name="sandbox-prepare", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        conn = self.ctx.ws.connect()
        try:
            while not self._stop.is_set():
                try:
                    self.run_once(conn)
                except Exception as exc:  # noqa: BLE001 - retried next round; class name only (SECURITY)
                    log.warning("preparing versions failed: %s", type(exc).__name__)
                self._stop.wait(POLL_SECONDS)
        finally:
            conn.close()

    def run_once(self, conn) -> dict[str, Any]:
        """Prepare what is new since the last round; returns the progress."""
        versions = datasets.latest_versions(conn)
        approvals = conn.execute("SELECT COALESCE(MAX(id), 0) FROM approvals").fetchone()[0]
        seen = (tuple(v.version_id for v in versions), approvals)
        if seen == self._seen:
            return self.progress
        todo = jobs(conn, versions, iso(self.ctx.now()))
        self.progress = {"state": "preparing", "done": 0, "total": len(versions) + len(todo)}
        for v in versions:
            if self._stop.is_set():
                return self.progress
            self.tables.source(v)  # the engine file (written once; the migration)
            self._step(f"engine file of {v.name} version {v.version}")
        keep = KeepColumns(max_columns=1)  # the flags persist on disk; memory holds one
        catalog = datasets.build_catalog(versions)
        for approval, sql in todo:
            if self._stop.is_set():
                return self.progress
            try:
                plan = query_guard.plan(sql, approval.scenario, catalog)
            except query_guard.GuardError:
                plan = None  # the approval does not allow this grouping: nothing to prepare
            if plan is not None and plan.materialisation is not None:
                materialise(self.engine, self.tables, keep,
                            engine_request(plan, versions, scope=f"approval:{approval.id}"))
            self._step(f"bounding for approval {approval.id}: {sql}")
        self._seen = seen
        self.progress = {**self.progress, "state": "ready"}
        self._publish()
        log.info("versions prepared: %d engine files, %d bounding materialisations", len(versions), len(todo))
        return self.progress

    def _step(self, what: str) -> None:
        self.progress["done"] += 1
        log.info("preparing %d/%d: %s", self.progress["done"], self.progress["total"], what)
        self._publish()

    def _publish(self) -> None:
        path = self.ctx.ws.root / "prepare-status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.progress))
        tmp.replace(path)
