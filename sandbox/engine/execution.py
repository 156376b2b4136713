"""Running a checked plan on the engine, with contribution bounding materialised.

Why materialise (docs/decisions/0004): on a dataset with several rows per person the
guard's bounding pass ranks every row per person — a window over the whole table that
cost 30–130× the aggregate itself at 10M rows. Which rows are kept depends only on the
dataset versions, the grouping, the bounds and the secret seed (the plan's keep query),
never on the researcher's filters, so it is computed once per (keep query, dataset
versions), kept in memory as a boolean column, and later queries merely filter on it.

:class:`EngineRequest` is plain data (picklable), so the same request can be run in this
process (:class:`InProcessExecutor`) or handed to an engine worker process that keeps its
own table and keep-column caches.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from query_guard import QueryPlan
from sandbox.engine.embedded import ROWID, Engine, with_rowid
from sandbox.engine.tables import TableCache
from sandbox.governance.datasets import ARROW_TYPES, DatasetVersion


@dataclass(frozen=True)
class KeepSpec:
    """The plan's materialisation, as text (see ``query_guard.plan.Materialisation``)."""

    dataset: str
    column: str
    keep_sql: str
    materialised_sql: str
    #: whose flags these are (an approval): part of every cache and file key, so the first
    #: query of a grouping is slow for each approval and a fast one never shows that another
    #: study asked it first (decision 0004's side channel; red team round 5)
    scope: str = ""


@dataclass(frozen=True)
class EngineRequest:
    """One plan to run: the dataset versions it reads and its engine SQL."""

    versions: tuple[DatasetVersion, ...]
    sql: str  # the engine query; "" when ``keep`` is set (its materialised query runs)
    keep: KeepSpec | None = None  # set when contributions are bounded


def engine_request(plan: QueryPlan, versions: Sequence[DatasetVersion], dialect: str = "duckdb", *,
                   scope: str = "") -> EngineRequest:
    """``scope``: the approval the request runs under (keys its bounding materialisation)."""
    used = tuple(v for v in versions if v.name in plan.datasets)
    m = plan.materialisation
    if m is None:
        return EngineRequest(used, plan.engine_sql(dialect))
    keep = KeepSpec(m.dataset, m.column, m.keep_sql(dialect), m.materialised_sql(dialect), scope)
    return EngineRequest(used, "", keep)


class KeepColumns:
    """Kept-row flags per (keep column, dataset versions), least recently used evicted.

    One flag per row of the bounded dataset, bit-packed: 1.25 MB per 10M rows, so the
    default of 64 columns costs at most ~80 MB at 10M rows.
    """

    def __init__(self, max_columns: int = 64):
        self.max_columns = max_columns
        self._columns: OrderedDict[tuple, pa.BooleanArray] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}

    def get(self, engine: Engine, spec: KeepSpec, key: tuple, tables: Mapping[str, pa.Table],
            store: Any = None) -> pa.BooleanArray:
        """The flags for ``key``: from memory, else from ``store`` (the encrypted file a
        publish-time preparation or another worker wrote, issue 18), else computed (and
        saved to ``store``)."""
        with self._lock:
            found = self._columns.get(key)
            if found is not None:
                self._columns.move_to_end(key)
                return found
            building = self._building.setdefault(key, threading.Lock())
        with building:  # one computation per key; concurrent requests wait for it
            with self._lock:
                found = self._columns.get(key)
            if found is None and store is not None:
                found = store.load(engine)
            if found is None:
                found = _compute(engine, spec, tables)
                if store is not None:
                    store.save(found)
            if found is not None:
                with self._lock:
                    self._columns[key] = found
                    self._building.pop(key, None)
                    while len(self._columns) > self.max_columns:
                        self._columns.popitem(last=False)
            return found

    def __len__(self) -> int:
        return len(self._columns)


#: The one-time keep computation ranks every row; it may take this many query timeouts.
KEEP_TIMEOUT_FACTOR = 4


def _compute(engine: Engine, spec: KeepSpec, tables: Mapping[str, pa.Table]) -> pa.BooleanArray:
    timeout = engine.limits.timeout_seconds * KEEP_TIMEOUT_FACTOR
    kept = engine.execute(spec.keep_sql, tables, timeout_seconds=timeout).column(ROWID).to_numpy(zero_copy_only=False)
    flags = np.zeros(tables[spec.dataset].num_rows, dtype=bool)
    flags[kept.astype(np.int64, copy=False)] = True
    return pa.array(flags, type=pa.bool_())


class InProcessExecutor:
    """Runs requests on this process's engine, table cache and keep columns."""

    def __init__(self, engine: Engine, tables: TableCache, keep: KeepColumns | None = None):
        self.engine = engine
        self.tables = tables
        self.keep = keep or KeepColumns()

    def run(self, req: EngineRequest) -> pa.Table:
        return execute(self.engine, self.tables, self.keep, req)

    @contextlib.contextmanager
    def slot(self) -> Iterator[Callable[[EngineRequest], pa.Table]]:
        """Same shape as ``EnginePool.slot``; this process's engine is always available."""
        yield self.run


def check_on_empty(engine: Engine, req: EngineRequest) -> None:
    """Run ``req`` on zero-row tables with the datasets' declared schemas.

    Why: an error here (a binder error, a constant that cannot be cast) cannot depend on
    the data, so the service refuses it before the charge, free and logged, instead of
    charging for a query that could never run. Raises ``EngineFailure`` like the engine.
    """
    empty = {v.name: with_rowid(pa.table({c.name: pa.array([], type=ARROW_TYPES[c.type])
                                         for c in v.policy.columns.values()}))
             for v in req.versions}
    execute(engine, _Fixed(empty), KeepColumns(max_columns=1), req)


class _Fixed:
    """A table source that serves the given tables (``TableCache.get``'s shape)."""

    def __init__(self, tables: Mapping[str, pa.Table]):
        self.tables = tables

    def get(self, version: DatasetVersion) -> pa.Table:
        return self.tables[version.name]


def materialise(engine: Engine, cache: TableCache | _Fixed, keep: KeepColumns, req: EngineRequest) -> dict:
    """The request's tables, with the keep flags attached when contributions are bounded."""
    source = getattr(cache, "source", cache.get)  # TableCache: engine files, not tables in memory
    tables = {v.name: source(v) for v in req.versions}
    if req.keep is not None:
        key = (req.keep.column, tuple(sorted((v.name, v.version_id) for v in req.versions)), req.keep.scope)
        bounded = next(v for v in req.versions if v.name == req.keep.dataset)
        store = cache.keep_store(bounded, key) if hasattr(cache, "keep_store") else None
        flags = keep.get(engine, req.keep, key, tables, store)
        tables[req.keep.dataset] = tables[req.keep.dataset].append_column(req.keep.column, flags)
    return tables


def execute(engine: Engine, cache: TableCache | _Fixed, keep: KeepColumns, req: EngineRequest) -> pa.Table:
    """The engine's exact result for ``req`` (raises ``EngineFailure`` like the engine)."""
    tables = materialise(engine, cache, keep, req)
    return engine.execute(req.sql if req.keep is None else req.keep.materialised_sql, tables)
