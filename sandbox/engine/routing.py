"""Which engine answers a query, chosen per dataset (issue 16; docs/decisions/0015).

A dataset's policy says ``[dataset] engine = "duckdb" | "spark"``; without it the
workspace default from ``<workspace>/engines.toml`` (the ``--data-dir`` folder) applies::

    [engines]
    default = "duckdb"          # or "spark"

    [spark]
    master = "local[2]"         # spark://host:port (standalone) or sc://host:port (Connect)
    timeout_seconds = 120
    [spark.conf]                # any Spark setting except the locked ones
    "spark.executor.memory" = "4g"

``SANDBOX_SPARK_MASTER`` overrides ``master``. A plan runs on one engine: a query over a
DuckDB and a Spark dataset together is refused (``engine_mixed``) before any data is read.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
from sqlglot import exp

from query_guard import QueryPlan
from sandbox.engine.execution import EngineRequest, engine_request
from sandbox.engine.spark import SparkEngine, SparkSettings
from sandbox.engine.spark_sql import SparkUnsupported, spark_sql
from sandbox.errors import BadRequest, EngineFailure
from sandbox.governance.datasets import DatasetVersion

EngineName = Literal["duckdb", "spark"]
ENGINES: tuple[EngineName, ...] = ("duckdb", "spark")
SPARK_PREFIX = "spark:"  # DatasetVersion.file_name of a Spark dataset: "spark:<source>"


@dataclass(frozen=True)
class EngineConfig:
    default: EngineName = "duckdb"
    spark: SparkSettings = field(default_factory=SparkSettings)


def load_config(data_dir: Path) -> EngineConfig:
    """The workspace's engine configuration (module docstring); defaults if absent."""
    path = Path(data_dir) / "engines.toml"
    doc = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    default = doc.get("engines", {}).get("default", "duckdb")
    if default not in ENGINES:
        raise ValueError(f"{path}: engines.default must be one of {', '.join(ENGINES)}")
    spark = doc.get("spark", {})
    master = os.environ.get("SANDBOX_SPARK_MASTER") or spark.get("master", "local[2]")
    settings = SparkSettings(master=master, conf={str(k): str(v) for k, v in spark.get("conf", {}).items()},
                             timeout_seconds=float(spark.get("timeout_seconds", 120)))
    return EngineConfig(default, settings)


def engine_of(version: DatasetVersion, default: EngineName = "duckdb") -> EngineName:
    """A version's engine is where its data is: a Spark source, or a workspace file.

    The policy's ``engine`` (or, when it has none, the workspace default) is checked when a
    version is registered (``sandbox engines add-spark``) and when it is queried
    (:func:`route`), so a later change of the default never moves an existing version.
    """
    return "spark" if version.file_name.startswith(SPARK_PREFIX) else "duckdb"


def declared_engine(policy, default: EngineName) -> EngineName:
    return getattr(policy, "engine", "") or default  # type: ignore[return-value]


def view_name(version: DatasetVersion) -> str:
    """The temporary view of one dataset version (concurrent versions never collide)."""
    return f"__v{version.version_id}_{version.name}"


@dataclass(frozen=True)
class Routed:
    """An engine request and the engine that must run it."""

    engine: EngineName
    request: EngineRequest


def route(plan: QueryPlan, versions: Sequence[DatasetVersion], default: EngineName = "duckdb") -> Routed:
    """The plan's request for its datasets' engine; refusals are data-independent.

    Raises :class:`BadRequest` ``engine_mixed`` or ``engine_unsupported`` (before any data).
    """
    used = [v for v in versions if v.name in plan.datasets]
    for v in used:
        if v.policy.engine and v.policy.engine != engine_of(v):
            raise BadRequest(f"dataset {v.name} is declared for {v.policy.engine} but version {v.version} is "
                             f"held on {engine_of(v)}; the owner must register it again; nothing was charged",
                             code="engine_unsupported")
    names = {engine_of(v, default) for v in used} or {default}
    if len(names) > 1:
        raise BadRequest("this query reads datasets held on different engines (DuckDB and Spark); "
                         "query them separately; nothing was charged", code="engine_mixed")
    engine = names.pop()
    if engine == "duckdb":
        return Routed("duckdb", engine_request(plan, used))
    tree = plan.engine_query.copy()

    views = {v.name: view_name(v) for v in used}
    for table in tree.find_all(exp.Table):
        if table.name in views and not table.db:
            table.set("this", exp.to_identifier(views[table.name]))
    dates = frozenset(c.name for v in used for c in v.policy.columns.values() if c.type == "date")
    try:
        sql = spark_sql(tree, dates)
    except SparkUnsupported as err:
        raise BadRequest(err.message + "; nothing was charged", code=err.code) from None
    return Routed("spark", EngineRequest(tuple(used), sql))


class SparkExecutor:
    """Runs Spark requests: registers each version's view, then the query (no local copy)."""

    def __init__(self, engine: SparkEngine):
        self.engine = engine

    def prepare(self, req: EngineRequest) -> None:
        for v in req.versions:
            if not v.file_name.startswith(SPARK_PREFIX):
                raise EngineFailure("a Spark dataset version has no Spark source")
            self.engine.register(view_name(v), v.file_name[len(SPARK_PREFIX):])

    def analyse(self, req: EngineRequest) -> None:
        self.prepare(req)
        self.engine.analyse(req.sql)

    def run(self, req: EngineRequest) -> pa.Table:
        self.prepare(req)
        return self.engine.execute(req.sql)


class Engines:
    """The DuckDB executor (in-process or pool) and, once needed, the Spark executor."""

    def __init__(self, duckdb_executor, config: EngineConfig):
        self.duckdb = duckdb_executor
        self.config = config
        self._spark: SparkExecutor | None = None

    @property
    def spark(self) -> SparkExecutor:
        if self._spark is None:
            self._spark = SparkExecutor(SparkEngine(self.config.spark))
        return self._spark

    def route(self, plan: QueryPlan, versions: Sequence[DatasetVersion]) -> Routed:
        return route(plan, versions, self.config.default)

    @contextlib.contextmanager
    def slot(self, engine: EngineName) -> Iterator[Callable[[EngineRequest], pa.Table]]:
        """Reserve the engine before the charge (``EnginePool.slot``'s contract)."""
        if engine == "spark":
            yield self.spark.run
            return
        with self.duckdb.slot() as run:
            yield run

    def close(self) -> None:
        if self._spark is not None:
            self._spark.engine.stop()
