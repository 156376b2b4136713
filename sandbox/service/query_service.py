"""The service layer: the only place that orchestrates a query's walk (DESIGN.md).

    approval = workflow.active_approval(...)    suspended / expired / not yours → refuse
    prepare  = request_limits + query_guard.plan + calibrate
                                                 any refusal: logged, no charge, no data read
    cached?  → the earlier release, no charge
    reserve an engine                            engine_busy: logged refusal, no charge
    writer.run(charge): one transaction          charge first (before any data is read)
        re-check suspension, cache and budget    approval and dataset caps
        ledger.charge(...)                       what OpenDP's maps report
        audit_log.append(query.started)
    durable COMMIT (shared with concurrent units: group commit, issue 18) → only then on
    exact    = executor.run(plan)                bounding materialised per version (0004)
    release  = privacy.release(plan, exact)      OpenDP noise + intervals
    post     = postprocess.apply(...)            total: never raises on noisy values
    writer.run(record)
        audit_log.append(query.released {start_seq})   or query.failed {start_seq}
    durable COMMIT → response with receipt

PRIVACY (docs/decisions/0008): once the charge is committed, the caller sees either the
release or one generic ``query_failed`` (charged, logged against the start entry); no
status, code, charge or log entry depends on the data except through the noisy release.
Invariant: no figure leaves unless its charge and its audit entries are committed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import secrets
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import privacy
import query_guard
from audit_log.group_commit import GroupCommitter
from privacy import PrivacyError, calibrate, release
from query_guard import GuardError, QueryPlan
from sandbox.clock import Clock, iso, utc_now
from sandbox.engine.embedded import Engine, EngineLimits
from sandbox.engine.execution import InProcessExecutor, check_on_empty, engine_request
from sandbox.engine.pool import EngineBusy, EnginePool, PoolSettings
from sandbox.engine.routing import Engines, Routed, load_config
from sandbox.engine.tables import TableCache
from sandbox.errors import BadRequest, EngineFailure, SandboxError
from sandbox.governance import dataset_caps, datasets, jurisdiction, ledger, workflow
from sandbox.service import postprocess
from sandbox.service.accuracy import ACCURACY_NOTE, STATE, accuracy, with_confidence
from sandbox.service.prepare import Preparer
from sandbox.store import request_limits
from sandbox.store.context import Context
from sandbox.store.users import User
from sandbox.store.workspace import Workspace

log = logging.getLogger(__name__)

DEFAULT_CONFIDENCE = 0.95
#: How many (plan, versions) passed the empty-table check are remembered (LRU).
CHECKED_PLANS = 4096


@dataclass
class QueryRequest:
    approval_id: Any
    sql: str
    epsilon: float | None = None
    confidence: float = DEFAULT_CONFIDENCE


class QueryRefused(SandboxError):
    """A guard refusal, already logged; carries the SQL position."""

    http_status = 400

    def __init__(self, err: GuardError):
        super().__init__(err.message, code=err.code)
        self.position = err.position


class QueryFailed(SandboxError):
    """Anything that went wrong after the charge: one outcome whatever the cause.

    PRIVACY: the cause (an engine error, a timeout, a memory breach, a bug) may depend
    on the data, so the caller gets only this; the operator's log has the cause.
    """

    code = "query_failed"
    http_status = 500

    def __init__(self, query_id: str):
        super().__init__(
            f"query {query_id} did not complete; its charge stands and the failure is in the "
            "audit log. No detail is given because a detail could depend on the data")
        self.query_id = query_id


#: ``queries.error_code`` between the charge and the outcome (status stays 'failed'
#: until the release replaces it, so a crash in between leaves an honest row).
IN_PROGRESS = "in_progress"


@dataclass(frozen=True)
class Prepared:
    """A request checked and planned, with its charge calibrated: all before any data."""

    sql: str
    plan: QueryPlan
    epsilon: float
    delta: float
    confidence: float
    pure: bool
    used: list[datasets.DatasetVersion]
    noise: privacy.NoisePlan
    cache_key: str
    routed: Routed  # the engine that answers and its request (sandbox.engine.routing)


@dataclass(frozen=True)
class Started:
    """A query charged and logged as started."""

    query_id: str
    start_seq: int
    budget: ledger.Budget


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
        self._flights: dict[str, tuple[threading.Lock, int]] = {}
        self._flights_lock = threading.Lock()
        self._checked: OrderedDict[tuple, None] = OrderedDict()  # plans that ran on empty tables
        self._plans: OrderedDict[tuple, QueryPlan] = OrderedDict()  # checked plans (``_plan``)
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
        """Plan, charge, run, release: the walk of one query (module docstring).

        Everything decided before the charge is a logged refusal that costs nothing and
        reads no data. From the charge on, the only outcomes are the release or one
        generic ``query_failed``, and the charge stands either way.
        """
        conn = self.conn()
        approval, prepared = self.prepare_or_log(user, req)
        cached = _released(conn, prepared.cache_key)
        if cached is not None:
            return self._serve_cached(conn, user, approval.id, cached, prepared.confidence)
        with self._single_flight(prepared.cache_key), contextlib.ExitStack() as engine:
            try:
                engine_run = engine.enter_context(self.engines.slot(prepared.routed.engine))
            except EngineBusy as err:
                # No engine was reserved: nothing was read and nothing is charged.
                self.log_refusal(user, req, approval.id, err.code, err.message, None)
                raise
            started = self._start(conn, user, req, approval, prepared)
            if isinstance(started, dict):
                return started  # released meanwhile: served from the cache
            try:
                return self._finish(conn, user, req, approval, prepared, started, engine_run)
            except Exception as err:  # anything at all: the charge stands, one outcome
                self._log_failure(conn, user, approval, started, err)
                if isinstance(err, datasets.DataIntegrityError):
                    # a tampered or damaged file: about the deployment, not any
                    # person's record, and the operator must be told (charged still)
                    raise
                raise QueryFailed(started.query_id) from None

    def prepare_or_log(self, user: User, req: QueryRequest,
                       check: Callable[[workflow.Approval, Prepared], None] | None = None,
                       ) -> tuple[workflow.Approval, Prepared]:
        """The steps before the charge, shared by queries, previews and dummy runs: the
        approval, the request's ranges, the guard, the calibration and the empty-table run,
        then the caller's own ``check``. Every refusal is logged (and counts toward the
        automatic suspension), so no interface can probe the scope for free."""
        conn = self.conn()
        approval = self._approval_or_log(conn, user, req)
        try:
            prepared = self._prepare(conn, approval, req)
            if check is not None:
                check(approval, prepared)
        except (SandboxError, GuardError) as err:
            notice = self.log_refusal(user, req, approval.id, err.code, err.message, getattr(err, "position", None))
            if isinstance(err, GuardError):
                refused = QueryRefused(err)
                if notice:  # issue 14: warn before automatic suspension (第二十六条)
                    refused.message = f"{refused.message} {notice}"
                raise refused from None
            if notice and isinstance(err, SandboxError):
                err.message = f"{err.message} {notice}"
            raise
        return approval, prepared

    def _prepare(self, conn: sqlite3.Connection, approval: workflow.Approval, req: QueryRequest) -> Prepared:
        """Everything decided from the request, the approval and the catalog: no data read."""
        sql = request_limits.sql_text(req.sql)
        epsilon = self._epsilon(approval, req.epsilon)
        confidence = request_limits.confidence(req.confidence)
        versions = [v for v in datasets.latest_versions(conn) if v.name in approval.scenario.datasets]
        plan = self._plan(sql, approval, versions)
        pure = ledger.is_pure(approval)
        delta = privacy.per_query_delta(approval.delta_total, pure=pure)
        used = [v for v in versions if v.name in plan.datasets]
        try:
            noise = calibrate(plan, epsilon, delta, pure=pure)  # data-independent: the exact charge
            privacy.check_plan(plan)
        except PrivacyError as err:
            raise BadRequest(err.message, code=err.code) from None
        routed = self.engines.route(plan, used)  # engine_mixed / engine_unsupported: refused here
        try:
            self._check_on_empty(plan, used, routed, approval.id)
        except EngineFailure:
            raise BadRequest(
                "the engine cannot run this query on any data (it fails on empty tables of the "
                "datasets' declared types: check function arguments and types); nothing was "
                "charged", code="engine_rejected") from None
        return Prepared(sql, plan, epsilon, delta, confidence, pure, used, noise,
                        _cache_key(plan, used, approval.id, epsilon, delta), routed)

    def _plan(self, sql: str, approval: workflow.Approval, versions: list[datasets.DatasetVersion]) -> QueryPlan:
        """The guard's plan, remembered per (SQL, approval and its scope, dataset versions):
        a plan depends on nothing else (no data), and the same SQL at another ε is common.
        Keyed by the approval, so a hit shows a researcher only their approval's own past
        queries (no other study's). Refusals are not remembered: each is re-checked, logged."""
        key = (sql, approval.id, repr(approval.scenario), tuple(v.version_id for v in versions))
        with self._flights_lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        plan = query_guard.plan(sql, approval.scenario, datasets.build_catalog(versions))
        with self._flights_lock:
            self._plans[key] = plan
            while len(self._plans) > CHECKED_PLANS:
                self._plans.popitem(last=False)
        return plan

    def _check_on_empty(self, plan: QueryPlan, used: list[datasets.DatasetVersion], routed: Routed,
                        approval_id: int) -> None:
        """``execution.check_on_empty``, once per plan, dataset versions and approval (a few ms
        each). Keyed by the approval like ``_plan``: a shared entry would make a researcher's
        refusal or query a few ms faster when another study had asked the same plan before.
        On Spark: analysis only (no job runs), whose errors cannot depend on the data."""
        key = (approval_id, plan.fingerprint, tuple(v.version_id for v in used))
        with self._flights_lock:
            if key in self._checked:
                self._checked.move_to_end(key)
                return
        if routed.engine == "spark":
            self.engines.spark.analyse(routed.request)
        else:
            check_on_empty(self.engine, engine_request(plan, used))
        with self._flights_lock:
            self._checked[key] = None
            while len(self._checked) > CHECKED_PLANS:
                self._checked.popitem(last=False)

    def _start(self, conn: sqlite3.Connection, user: User, req: QueryRequest, approval: workflow.Approval,
               p: Prepared) -> Started | dict[str, Any]:
        """Charge first: in one unit of the writer's group commit (atomic, durable before
        ``run`` returns), before the engine reads anything,
        check the budget (approval and dataset caps), record the charge and append
        ``query.started``. Returns the cached release instead if one appeared meanwhile."""
        query_id = "q_" + secrets.token_hex(8)
        planned = p.noise.charge
        version_ids = [v.version_id for v in p.used]

        def charge(conn: sqlite3.Connection) -> Started | dict[str, Any]:
            workflow.active_approval(conn, user, approval.id, now=self.now)  # suspended meanwhile?
            cached = _released(conn, p.cache_key)
            if cached is not None:
                return self._serve_cached(conn, user, approval.id, cached, p.confidence)
            self._ensure_affordable(conn, approval.id, version_ids, planned)
            # 'failed' until the release replaces it: a crash after the charge leaves
            # an honest row (charged, nothing released).
            conn.execute(
                "INSERT INTO queries (id, approval_id, user_id, sql, fingerprint, status, error_code, "
                "epsilon, delta, created_at) VALUES (?,?,?,?,?, 'failed', ?,?,?,?)",
                (query_id, approval.id, user.id, p.sql, p.plan.fingerprint, IN_PROGRESS,
                 planned.epsilon, planned.delta, iso(self.now())),
            )
            budget = ledger.charge(conn, approval.id, query_id, planned.epsilon, planned.delta,
                                   now=self.now, rho=planned.rho, rho_delta=planned.rho_delta,
                                   dataset_versions=version_ids)
            entry = self.audit(conn, user, "query.started", f"query/{query_id}", {
                "query_id": query_id,
                "approval_id": approval.id,
                "sql": p.sql,
                "fingerprint": p.plan.fingerprint,
                "datasets": {v.name: {"version": v.version, "content_hash": v.content_hash} for v in p.used},
                "epsilon": planned.epsilon,
                "delta": planned.delta,
                "rho": planned.rho,
                "rho_delta": planned.rho_delta,
                "noise": p.noise.family,
                "budget_after": _budget_after(budget),
            })
            return Started(query_id, entry.seq, budget)

        try:
            return self.writer.run(charge)
        except SandboxError as err:  # suspended, or over budget: refused, nothing charged
            self.log_refusal(user, req, approval.id, err.code, err.message, None)
            raise

    def _finish(self, conn: sqlite3.Connection, user: User, req: QueryRequest, approval: workflow.Approval,
                p: Prepared, s: Started, engine_run) -> dict[str, Any]:
        """Run, add noise, post-process, and log the release against its start entry."""
        req = (p.routed.request if p.routed.engine == "spark"
               else engine_request(p.plan, p.used, scope=f"approval:{approval.id}"))
        exact = engine_run(req).to_pydict()
        rel = release(p.plan, exact, epsilon=p.epsilon, delta=p.delta, confidence=p.confidence,
                      pure=p.pure, noise=p.noise)
        del exact  # PRIVACY: exact values go no further
        columns, rows, intervals, notes, order = _postprocess(p.plan, rel, self.engine)
        rows = jsonable_rows(rows)

        def record(conn: sqlite3.Connection) -> dict[str, Any]:
            entry = self.audit(conn, user, "query.released", f"query/{s.query_id}", {
                "query_id": s.query_id,
                "approval_id": approval.id,
                "start_seq": s.start_seq,
                "sql": p.sql,  # the receipt's entry names its query on its own
                "mechanisms": [m.__dict__ for m in rel.mechanisms],
                "epsilon": rel.epsilon,
                "delta": rel.delta,
                "columns": columns,
                "rows": rows,
            })
            response = {
                "query_id": s.query_id,
                "columns": columns,
                "rows": rows,
                "accuracy": accuracy(rel.confidence, rel.methods, rel.ranges, columns, intervals),
                "accuracy_note": ACCURACY_NOTE,
                "epsilon_spent": rel.epsilon,
                "delta_spent": rel.delta,
                "rho_spent": rel.rho,
                "noise": rel.family,
                "budget": s.budget.as_dict(),
                "receipt": {"query_id": s.query_id, "log_index": entry.seq, "leaf_hash": entry.leaf_hash,
                            "tree_size": entry.tree_size, "start_index": s.start_seq},
                "cached": False,
                "engine": p.routed.engine,  # which engine answered (console, issue 16)
                "notes": [*p.plan.notes, *rel.notes, *notes],
            }
            # The noisy state (never shown) lets another confidence be served from the cache.
            stored = {**response, STATE: None if rel.state is None else {**rel.state, "order": order}}
            conn.execute(
                "UPDATE queries SET status = 'released', error_code = NULL, cache_key = ?, response_json = ?, "
                "audit_seq = ? WHERE id = ?",
                (p.cache_key, json.dumps(stored, ensure_ascii=False), entry.seq, s.query_id),
            )
            return response

        return self.writer.run(record)

    @contextlib.contextmanager
    def _single_flight(self, cache_key: str):
        """Identical requests in this process run one at a time, so the second finds the
        first's release in the cache instead of paying again."""
        with self._flights_lock:
            lock, users = self._flights.get(cache_key, (threading.Lock(), 0))
            self._flights[cache_key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._flights_lock:
                lock, users = self._flights[cache_key]
                if users == 1:
                    del self._flights[cache_key]
                else:
                    self._flights[cache_key] = (lock, users - 1)

    def _approval_or_log(self, conn: sqlite3.Connection, user: User, req: QueryRequest) -> workflow.Approval:
        try:
            return workflow.active_approval(conn, user, req.approval_id, now=self.now)
        except SandboxError as err:
            self.log_refusal(user, req, None, err.code, err.message, None)
            raise

    def _epsilon(self, approval: workflow.Approval, requested: Any) -> float:
        return request_limits.epsilon(requested, approval.epsilon_per_query)

    def _ensure_affordable(self, conn, approval_id: int, version_ids: list[int], planned) -> None:
        """The approval's budget and the cap of every dataset read must fit the charge."""
        ledger.ensure_affordable(ledger.budget(conn, approval_id), planned.epsilon, planned.delta,
                                 rho=planned.rho, rho_delta=planned.rho_delta)
        dataset_caps.ensure_within(conn, version_ids, planned)  # the collusion cap, all versions

    def _serve_cached(self, conn, user, approval_id, cached, confidence: float) -> dict[str, Any]:
        """The same plan on the same data version: the earlier release, free (defeats averaging).

        At another confidence: the same noisy values, with intervals recomputed from the
        stored noisy statistics and noise scales (``with_confidence``), free as well."""
        # Recorded for the averaging alert (sandbox.governance.alerts): a cached answer leaves no
        # other trace in the store, whichever interface asked.
        conn.execute("INSERT INTO query_repeats (query_id, user_id, approval_id, created_at) VALUES (?,?,?,?)",
                     (cached["id"], user.id, approval_id, iso(self.now())))
        response = with_confidence(json.loads(cached["response_json"]), confidence)
        response["cached"] = True
        response["epsilon_spent"] = 0.0
        response["delta_spent"] = 0.0
        response["budget"] = ledger.budget(conn, approval_id).as_dict()
        return response

    def log_refusal(self, user: User, req: QueryRequest, approval_id: int | None, code: str, message: str,
                    position: Any = None) -> str | None:
        """Log a refused request (nothing read, nothing charged) and run the suspension hook;
        returns the researcher's warning or suspension notice, if any (``workflow.refusal_notice``)."""
        query_id = "q_" + secrets.token_hex(8)
        sql = request_limits.printable(str(req.sql))[:20000]  # storable even if the text is not

        def record(conn: sqlite3.Connection) -> str | None:
            conn.execute(
                "INSERT INTO queries (id, approval_id, user_id, sql, status, error_code, created_at) "
                "VALUES (?,?,?,?, 'refused', ?, ?)",
                (query_id, approval_id, user.id, sql, code, iso(self.now())),
            )
            self.audit(conn, user, "query.refused", f"query/{query_id}", {
                "query_id": query_id, "approval_id": approval_id, "sql": sql,
                "code": code, "message": message, "position": position,
            })
            workflow.after_refusal(conn, user, code, now=self.now, audit=self.audit)
            return workflow.refusal_notice(conn, user, code, now=self.now)

        return self.writer.run(record)

    def _log_failure(self, conn, user, approval, s: Started, err: Exception) -> None:
        """Any failure after the charge: one generic outcome, logged against the start.

        The cause goes to the operator's log only: it may depend on the data (an engine
        error, a timeout, a memory breach), so the caller sees nothing of it.
        """
        cause = getattr(err, "code", type(err).__name__)
        code = err.code if isinstance(err, datasets.DataIntegrityError) else QueryFailed.code
        log.warning("query %s failed after its charge (%s)", s.query_id, cause,
                    exc_info=not isinstance(err, SandboxError))

        def record(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE queries SET error_code = ? WHERE id = ?", (code, s.query_id))
            self.audit(conn, user, "query.failed", f"query/{s.query_id}", {
                "query_id": s.query_id, "approval_id": approval.id, "start_seq": s.start_seq,
                "code": code,
            })

        try:
            self.writer.run(record)
        except Exception:  # the charge and the start entry are committed already
            log.exception("could not log the failure of query %s", s.query_id)

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


def _released(conn: sqlite3.Connection, cache_key: str) -> sqlite3.Row | None:
    """The earlier release of the same plan, data versions, approval and ε, if any."""
    return conn.execute(
        "SELECT id, response_json FROM queries WHERE cache_key = ? AND status = 'released'", (cache_key,)
    ).fetchone()


def _postprocess(plan: QueryPlan, rel: privacy.Release, engine: Engine
                 ) -> tuple[list[str], list[list[Any]], dict[str, list[Any]], list[str], list[int]]:
    """``postprocess.apply``, also returning which released rows it kept, in order (kept
    with the release so another confidence's intervals can be put in the same order).
    The row numbers ride through ``apply`` in place of the intervals, which it only
    reorders."""
    numbered = dataclasses.replace(rel, intervals={c: list(range(len(rel.rows))) for c in rel.columns})
    columns, rows, picked, notes = postprocess.apply(plan, numbered, engine)
    order = [int(r) for r in picked[columns[0]]] if columns else list(range(len(rows)))
    return columns, rows, {c: [rel.intervals[c][r] for r in order] for c in columns}, notes, order


def _budget_after(budget) -> dict[str, Any]:
    """The approval's spent budget as logged with each charge: enough for a regulator to
    recompute the accountant's figure from the log (``sandbox audit replay``)."""
    return {
        "epsilon_spent": budget.epsilon_spent, "delta_spent": budget.delta_spent,
        "epsilon_spent_basic": budget.totals.epsilon, "rho_spent": budget.rho_spent,
        "route": budget.accounting.route if budget.accounting else "basic",
    }


def _cache_key(plan: QueryPlan, versions, approval_id: int, epsilon: float, delta: float) -> str:
    """The release cache's key. Not the confidence: another confidence is the same noisy
    release with other intervals (``with_confidence``), free (issue 13)."""
    material = json.dumps(
        [plan.fingerprint, sorted(v.content_hash for v in versions), approval_id, repr(epsilon), repr(delta),
         CACHE_KEY_VERSION],
    )
    return hashlib.sha256(material.encode()).hexdigest()


#: Bumped when the key's material changes (2: without the confidence, issue 13).
CACHE_KEY_VERSION = 2


def finite_or_none(x: float | None) -> float | None:
    """A float for JSON, or None when it is missing or not finite."""
    return None if x is None or not math.isfinite(x) else float(x)


#: The integers canonical JSON (RFC 8785, I-JSON) holds exactly; beyond, a value is text.
JSON_SAFE_INTEGER = 2**53 - 1


def jsonable_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """Released values as the audit log and the response can hold them, never raising:
    dates and other types as text, integers beyond ±(2⁵³ − 1) as text (exact)."""
    def one(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str | float):
            return v
        if isinstance(v, int):
            return v if -JSON_SAFE_INTEGER <= v <= JSON_SAFE_INTEGER else str(v)
        return str(v)

    return [[one(v) for v in row] for row in rows]

