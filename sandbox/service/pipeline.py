"""The query walk as named stages, each a public function with a typed input and output.

    check          approval (suspended / expired / not yours), the request's ranges
    plan           the guard, the calibration, the release size, the engine's route, the
                   empty-table run, the cache key                         → ``Planned``
    ── every refusal so far is logged (``refusals_logged``), costs nothing, reads no data
    cached         the earlier release of the same plan and versions, free
    reserve_engine engine_busy: a logged refusal, no charge
    charge         one group-commit unit, durable before it returns: re-check suspension,
                   cache and budget (approval and dataset caps), the queries row, the
                   ledger row, ``query.started``                          → ``Started``
    ── charge first (docs/decisions/0008): nothing below runs before the charge is durable
    execute        the engine reads the data: the exact result
    release        OpenDP noise and intervals; the exact values go no further
    post_process   HAVING, ORDER BY, LIMIT on noisy values; total          → ``Processed``
    respond        ``query.released`` and the queries row in one unit     → the response

``query_service.Sandbox.run_query`` composes them and, from the charge on, turns any failure
into one generic outcome (``log_failure``, ``QueryFailed``). Previews run ``check`` and
``plan``; dummy runs add ``release`` and ``post_process`` on stand-ins: every interface
passes the same checks and logs the same refusals, so none probes the scope for free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import privacy
import query_guard
from audit_log.group_commit import GroupCommitter
from privacy import PrivacyError
from query_guard import GuardError, QueryPlan
from sandbox.engine.embedded import Engine
from sandbox.engine.execution import check_on_empty, engine_request
from sandbox.engine.pool import EngineBusy
from sandbox.engine.routing import Engines, Routed
from sandbox.errors import BadRequest, EngineFailure, SandboxError
from sandbox.governance import datasets, ledger, workflow
from sandbox.service import postprocess, query_records
from sandbox.service.accuracy import ACCURACY_NOTE, accuracy
from sandbox.service.jsonable import jsonable_rows
from sandbox.service.memo import Memo
from sandbox.store import request_limits
from sandbox.store.users import User

log = logging.getLogger(__name__)

DEFAULT_CONFIDENCE = 0.95


@dataclass
class QueryRequest:
    """A query as sent (numbers as raw JSON values: ``check`` checks their ranges)."""

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


class Walk(query_records.Recorder, Protocol):
    """What the stages use of the query service (``query_service.Sandbox``): the store, the
    clock and the audit log, the group-commit writer, the engines and the memos."""

    writer: GroupCommitter
    engine: Engine
    engines: Engines
    plans: Memo[QueryPlan]
    empty_checked: Memo[bool]

    def conn(self) -> sqlite3.Connection: ...


@dataclass(frozen=True)
class Checked:
    """A researcher's request under an active approval, its text and numbers in range."""

    user: User
    request: QueryRequest
    approval: workflow.Approval
    sql: str
    epsilon: float
    confidence: float


@dataclass(frozen=True)
class Planned:
    """A checked request planned, with its charge calibrated: all before any data is read."""

    checked: Checked
    plan: QueryPlan
    delta: float
    pure: bool
    used: list[datasets.DatasetVersion]
    noise: privacy.NoisePlan
    routed: Routed  # the engine that answers and its request (sandbox.engine.routing)
    cache_key: str

    @property
    def user(self) -> User:
        return self.checked.user

    @property
    def request(self) -> QueryRequest:
        return self.checked.request

    @property
    def approval(self) -> workflow.Approval:
        return self.checked.approval

    @property
    def sql(self) -> str:
        return self.checked.sql

    @property
    def epsilon(self) -> float:
        return self.checked.epsilon

    @property
    def confidence(self) -> float:
        return self.checked.confidence


@dataclass(frozen=True)
class Started:
    """A query charged and logged as started."""

    query_id: str
    start_seq: int
    budget: ledger.Budget


@dataclass(frozen=True)
class Processed:
    """A release as shown: the visible columns, the kept rows in order (as JSON holds them),
    their intervals, the notes, and which released rows were kept, in order."""

    columns: list[str]
    rows: list[list[Any]]
    intervals: dict[str, list[Any]]
    notes: list[str]
    order: list[int]


# -- before the charge: decided from the request, the approval and the catalog only -------------
def check(walk: Walk, user: User, req: QueryRequest) -> Checked:
    """The approval (active, the researcher's own), then the SQL text, ε and confidence."""
    with refusals_logged(walk, user, req, None, notice=False):
        approval = workflow.active_approval(walk.conn(), user, req.approval_id, now=walk.now)
    with refusals_logged(walk, user, req, approval.id):
        return Checked(user, req, approval, request_limits.sql_text(req.sql),
                       request_limits.epsilon(req.epsilon, approval.epsilon_per_query),
                       request_limits.confidence(req.confidence))


def plan(walk: Walk, checked: Checked) -> Planned:
    """The guard's plan, the calibrated charge, the size of the release over public domains,
    the engine's route and the empty-table run (``engine_rejected``)."""
    approval = checked.approval
    with refusals_logged(walk, checked.user, checked.request, approval.id):
        versions = [v for v in datasets.latest_versions(walk.conn()) if v.name in approval.scenario.datasets]
        query = guard_plan(walk, checked.sql, approval, versions)
        pure = approval.pure_dp
        delta = privacy.per_query_delta(approval.delta_total, pure=pure)
        used = [v for v in versions if v.name in query.datasets]
        try:
            noise = privacy.calibrate(query, checked.epsilon, delta, pure=pure)  # data-independent
            privacy.check_plan(query)
        except PrivacyError as err:
            raise BadRequest(err.message, code=err.code) from None
        routed = walk.engines.route(query, used)  # engine_mixed / engine_unsupported: refused here
        try:
            empty_table_check(walk, query, used, routed, approval.id)
        except EngineFailure:
            raise BadRequest(
                "the engine cannot run this query on any data (it fails on empty tables of the "
                "datasets' declared types: check function arguments and types); nothing was "
                "charged", code="engine_rejected") from None
        return Planned(checked, query, delta, pure, used, noise, routed,
                       query_records.cache_key(query, used, approval.id, checked.epsilon, delta))


def guard_plan(walk: Walk, sql: str, approval: workflow.Approval,
               versions: list[datasets.DatasetVersion]) -> QueryPlan:
    """The guard's plan, remembered per (SQL, approval and its scope, dataset versions):
    a plan depends on nothing else (no data), and the same SQL at another ε is common.
    Keyed by the approval, so a hit shows a researcher only their approval's own past
    queries (no other study's). Refusals are not remembered: each is re-checked, logged."""
    key = (sql, approval.id, repr(approval.scenario), tuple(v.version_id for v in versions))
    found = walk.plans.get(key)
    if found is not None:
        return found
    query = query_guard.plan(sql, approval.scenario, datasets.build_catalog(versions))
    walk.plans.put(key, query)
    return query


def empty_table_check(walk: Walk, query: QueryPlan, used: list[datasets.DatasetVersion], routed: Routed,
                      approval_id: int) -> None:
    """``execution.check_on_empty``, once per plan, dataset versions and approval (a few ms
    each). Keyed by the approval like ``guard_plan``: a shared entry would make a researcher's
    refusal or query a few ms faster when another study had asked the same plan before.
    On Spark: analysis only (no job runs), whose errors cannot depend on the data."""
    key = (approval_id, query.fingerprint, tuple(v.version_id for v in used))
    if walk.empty_checked.get(key):
        return
    if routed.engine == "spark":
        walk.engines.spark.analyse(routed.request)
    else:
        check_on_empty(walk.engine, engine_request(query, used))
    walk.empty_checked.put(key, True)


def cached(walk: Walk, planned: Planned) -> dict[str, Any] | None:
    """The earlier release of the same plan, data versions, approval and ε, served free (at
    the confidence asked for), or None."""
    conn = walk.conn()
    row = query_records.released(conn, planned.cache_key)
    if row is None:
        return None
    return query_records.serve_cached(walk, conn, planned.user, planned.approval.id, row, planned.confidence)


def reserve_engine(walk: Walk, planned: Planned, stack: contextlib.ExitStack) -> Callable[..., Any]:
    """An engine reserved before the charge (0008, point 2), held until ``stack`` closes;
    returns the function that runs an engine request. ``engine_busy`` is a logged refusal
    that costs nothing: no engine was reserved, nothing was read."""
    try:
        return stack.enter_context(walk.engines.slot(planned.routed.engine))
    except EngineBusy as err:
        log_refusal(walk, planned.user, planned.request, planned.approval.id, err.code, err.message)
        raise


# -- the charge ----------------------------------------------------------------------------------
def charge(walk: Walk, planned: Planned) -> Started | dict[str, Any]:
    """Charge first: in one unit of the writer's group commit (atomic, durable before
    ``run`` returns), before the engine reads anything, re-check the suspension, the cache
    and the budget (approval and dataset caps), record the charge and append
    ``query.started``. Returns the cached release instead if one appeared meanwhile. A
    refusal here (suspended, over budget) is logged and charges nothing."""
    user, approval = planned.user, planned.approval
    query_id = query_records.new_query_id()
    version_ids = [v.version_id for v in planned.used]

    def unit(conn: sqlite3.Connection) -> Started | dict[str, Any]:
        workflow.active_approval(conn, user, approval.id, now=walk.now)  # suspended meanwhile?
        row = query_records.released(conn, planned.cache_key)
        if row is not None:
            return query_records.serve_cached(walk, conn, user, approval.id, row, planned.confidence)
        query_records.ensure_affordable(conn, approval.id, version_ids, planned.noise.charge)
        entry, budget = query_records.insert_started(walk, conn, user, query_id, approval.id, planned.sql,
                                                     planned.plan.fingerprint, planned.used, planned.noise)
        return Started(query_id, entry.seq, budget)

    with refusals_logged(walk, user, planned.request, approval.id, notice=False):
        return walk.writer.run(unit)


# -- after the charge: the only outcomes are the release or one generic failure -------------------
def execute(planned: Planned, engine_run: Callable[..., Any]) -> dict[str, list[Any]]:
    """The engine reads the data (only ever after ``charge``): the exact result, by column.
    Bounding is materialised per data version (decision 0004)."""
    request = (planned.routed.request if planned.routed.engine == "spark"
               else engine_request(planned.plan, planned.used, scope=f"approval:{planned.approval.id}"))
    return engine_run(request).to_pydict()


def release(planned: Planned, exact: dict[str, list[Any]]) -> privacy.Release:
    """OpenDP noise and intervals at the calibrated charge: nothing exact goes further."""
    return privacy.release(planned.plan, exact, epsilon=planned.epsilon, delta=planned.delta,
                           confidence=planned.confidence, pure=planned.pure, noise=planned.noise)


def post_process(query: QueryPlan, rel: privacy.Release) -> Processed:
    """``postprocess.apply`` (total: never raises on a noisy value), with the rows as JSON
    holds them and which released rows it kept, in order (kept with the release so that
    another confidence's intervals can be put in the same order). The row numbers ride
    through ``apply`` in place of the intervals, which it only reorders."""
    numbered = dataclasses.replace(rel, intervals={c: list(range(len(rel.rows))) for c in rel.columns})
    columns, rows, picked, notes = postprocess.apply(query, numbered)
    order = [int(r) for r in picked[columns[0]]] if columns else list(range(len(rows)))
    return Processed(columns, jsonable_rows(rows), {c: [rel.intervals[c][r] for r in order] for c in columns},
                     notes, order)


def respond(walk: Walk, planned: Planned, started: Started, rel: privacy.Release,
            shown: Processed) -> dict[str, Any]:
    """Log the release against its start entry and make the query's row the release, in one
    unit of the writer: returns the response, with its receipt, once that is durable."""
    details = {
        "query_id": started.query_id,
        "approval_id": planned.approval.id,
        "start_seq": started.start_seq,
        "sql": planned.sql,  # the receipt's entry names its query on its own
        "mechanisms": [m.__dict__ for m in rel.mechanisms],
        "epsilon": rel.epsilon,
        "delta": rel.delta,
        "columns": shown.columns,
        "rows": shown.rows,
    }
    response = {
        "query_id": started.query_id,
        "columns": shown.columns,
        "rows": shown.rows,
        "accuracy": accuracy(rel.confidence, rel.methods, rel.ranges, shown.columns, shown.intervals),
        "accuracy_note": ACCURACY_NOTE,
        "epsilon_spent": rel.epsilon,
        "delta_spent": rel.delta,
        "rho_spent": rel.rho,
        "noise": rel.family,
        "budget": started.budget.as_dict(),
        "receipt": None,  # filled in the unit, from the entry
        "cached": False,
        "engine": planned.routed.engine,  # which engine answered (console, issue 16)
        "notes": [*planned.plan.notes, *rel.notes, *shown.notes],
    }
    state = None if rel.state is None else {**rel.state, "order": shown.order}

    def unit(conn: sqlite3.Connection) -> dict[str, Any]:
        query_records.insert_released(walk, conn, planned.user, details, response, state, planned.cache_key)
        return response

    return walk.writer.run(unit)


def log_failure(walk: Walk, planned: Planned, started: Started, err: Exception) -> None:
    """Any failure after the charge: one generic outcome, logged against the start.

    The cause goes to the operator's log only: it may depend on the data (an engine
    error, a timeout, a memory breach), so the caller sees nothing of it.
    """
    cause = getattr(err, "code", type(err).__name__)
    code = err.code if isinstance(err, datasets.DataIntegrityError) else QueryFailed.code
    log.warning("query %s failed after its charge (%s)", started.query_id, cause,
                exc_info=not isinstance(err, SandboxError))
    try:
        walk.writer.run(query_records.failure(walk, planned.user, planned.approval.id, started.query_id,
                                              started.start_seq, code))
    except Exception:  # the charge and the start entry are committed already
        log.exception("could not log the failure of query %s", started.query_id)


# -- refusals ------------------------------------------------------------------------------------
def log_refusal(walk: Walk, user: User, req: QueryRequest, approval_id: int | None, code: str, message: str,
                position: Any = None) -> str | None:
    """Log a refused request (nothing read, nothing charged) and run the suspension hook;
    returns the researcher's warning or suspension notice, if any."""
    return walk.writer.run(query_records.refusal(walk, user, approval_id, req.sql, code, message, position))


@contextlib.contextmanager
def refusals_logged(walk: Walk, user: User, req: QueryRequest, approval_id: int | None, *,
                    notice: bool = True) -> Iterator[None]:
    """Log every refusal raised inside (it counts toward the automatic suspension) and
    re-raise it, a guard's as ``QueryRefused``. With ``notice``, the researcher's warning or
    suspension notice is added to its message (issue 14: warn before suspension, 第二十六条).
    Previews and dummy runs put their own checks inside one too (issue 12, finding 4)."""
    try:
        yield
    except (SandboxError, GuardError) as err:
        said = log_refusal(walk, user, req, approval_id, err.code, err.message, getattr(err, "position", None))
        if isinstance(err, GuardError):
            refused = QueryRefused(err)
            if notice and said:
                refused.message = f"{refused.message} {said}"
            raise refused from None
        if notice and said:
            err.message = f"{err.message} {said}"
        raise
