"""The service layer: the only place that orchestrates a query's walk (DESIGN.md).

``Sandbox.run_query`` composes the named stages of ``sandbox.service.pipeline``:

    check → plan → cached? → reserve an engine → charge (and log) → execute → release
          → post-process → respond                      then the after-query hooks (alerts)

PRIVACY (docs/decisions/0008): everything decided before the charge is a logged refusal
that costs nothing and reads no data; the charge and ``query.started`` are durable (group
commit, docs/decisions/0012) before the engine reads anything; once the charge is committed,
the caller sees either the release or one generic ``query_failed`` (charged, logged against
the start entry); no status, code, charge or log entry depends on the data except through
the noisy release. Invariant: no figure leaves unless its charge and its audit entries are
committed.
"""

from __future__ import annotations

import contextlib
from typing import Any

from audit_log.group_commit import GroupCommitter
from query_guard import QueryPlan
from sandbox.clock import Clock, utc_now
from sandbox.engine.embedded import Engine, EngineLimits
from sandbox.engine.execution import InProcessExecutor
from sandbox.engine.pool import EnginePool, PoolSettings
from sandbox.engine.routing import Engines, load_config
from sandbox.engine.tables import TableCache
from sandbox.errors import BadRequest
from sandbox.governance import datasets, jurisdiction, ledger, workflow
from sandbox.service import pipeline
from sandbox.service.hooks import AlertPasses
from sandbox.service.memo import Memo, SingleFlight
from sandbox.service.pipeline import QueryFailed, QueryRequest
from sandbox.service.prepare import Preparer
from sandbox.store.context import Context
from sandbox.store.users import User
from sandbox.store.workspace import Workspace


class Sandbox(Context):
    """One workspace opened for serving: the context (store, keys, audit log) with the
    engines, the table cache and the query walk."""

    def __init__(self, workspace: Workspace, *, now: Clock = utc_now, limits: EngineLimits | None = None,
                 pool: PoolSettings | None = None):
        """``pool``: run queries in engine worker processes (docs/decisions/0005), as
        ``sandbox serve`` does; None runs them in this process (tests, demo, CLI tools)."""
        super().__init__(workspace, now=now)
        self.engine = Engine(limits, datasets.engine_dir(workspace.data_dir))
        self.tables = TableCache(workspace.data_dir, self.decryptor())
        self.flights = SingleFlight()  # identical requests one at a time (0008)
        self.plans: Memo[QueryPlan] = Memo()  # checked plans (``pipeline.guard_plan``)
        self.empty_checked: Memo[bool] = Memo()  # plans that ran on empty tables
        self.alert_passes = AlertPasses()  # the after-query hook (``sandbox.service.hooks``)
        # The query walk's write transactions (charge, release, failure, refusal) go through
        # one writer that commits concurrent ones together (issue 18): one fsync for many,
        # and no thread queues on SQLite's write lock. Each caller still returns only once
        # its own transaction is durable, so the charge precedes any data read (0008).
        self.writer = GroupCommitter(workspace.connect, name="sandbox-writer")
        self.executor: InProcessExecutor | EnginePool
        self.preparer: Preparer | None = None
        if pool is None:
            self.executor = InProcessExecutor(self.engine, self.tables)
        else:
            self.executor = EnginePool(workspace.data_dir, workspace.keys_dir, self.engine.limits, pool,
                                       warm=[v for v in datasets.latest_versions(self.conn())
                                             if not v.file_name.startswith("spark:")])
            # issue 18: engine files and bounding materialisations, prepared in the background
            self.preparer = Preparer(self, self.engine, self.tables)
            self.preparer.start()
        self.engines = Engines(self.executor, load_config(workspace.root))

    def close(self) -> None:
        """Stop the background preparer, the writer and the engine workers, if any (idempotent)."""
        if self.preparer is not None:
            self.preparer.stop()
        self.writer.close()
        if isinstance(self.executor, EnginePool):
            self.executor.close()
        self.engines.close()

    # -- the query walk ---------------------------------------------------------------
    def run_query(self, user: User, req: QueryRequest) -> dict[str, Any]:
        """Plan, charge, run, release (module docstring), then the after-query hooks: the
        alert pass runs for every query, released, cached or refused, whichever interface
        asked (API, console, Python client, scripts)."""
        try:
            return self._walk(user, req)
        finally:  # budget levels, refusal bursts and patterns, checked at once
            self.alert_passes.after_query(self, user, req.approval_id)

    def _walk(self, user: User, req: QueryRequest) -> dict[str, Any]:
        """The stages in order; from the charge on, any failure is one generic outcome."""
        planned = pipeline.plan(self, pipeline.check(self, user, req))
        served = pipeline.cached(self, planned)
        if served is not None:
            return served
        with self.flights.one(planned.cache_key), contextlib.ExitStack() as engine:
            engine_run = pipeline.reserve_engine(self, planned, engine)
            started = pipeline.charge(self, planned)
            if not isinstance(started, pipeline.Started):
                return started  # released meanwhile: served from the cache
            try:
                # PRIVACY: the exact result is held by no name; it goes no further than the noise
                rel = pipeline.release(planned, pipeline.execute(planned, engine_run))
                shown = pipeline.post_process(planned.plan, rel)
                return pipeline.respond(self, planned, started, rel, shown)
            except Exception as err:  # anything at all: the charge stands, one outcome
                pipeline.log_failure(self, planned, started, err)
                if isinstance(err, datasets.DataIntegrityError):
                    # a tampered or damaged file: about the deployment, not any
                    # person's record, and the operator must be told (charged still)
                    raise
                raise QueryFailed(started.query_id) from None

    # -- budgets --------------------------------------------------------------------
    def budget(self, user: User, approval_id: Any) -> dict[str, Any]:
        conn = self.conn()
        try:
            ident = int(approval_id)
        except (TypeError, ValueError):
            raise BadRequest("approval id must be a number") from None
        approval = workflow.get_approval(conn, ident)

        visible = approval is not None and (
            (user.role == "regulator" and jurisdiction.covers(conn, user, approval.datasets))  # 第五条
            or (user.role == "researcher" and approval.researcher_id == user.id)
            or (user.role == "owner" and approval.owner_id == user.id)
        )
        if not visible:
            raise workflow.NotFound(f"no approval {ident}")
        return ledger.budget(conn, ident).as_dict()
