"""The guard's output: a checked, rewritten query and what must be measured.

Contract between ``query_guard`` (produces), ``sandbox.engine.embedded`` (runs
``engine_query``) and ``privacy`` (adds noise to the engine's exact per-group
statistics). See docs/decisions/0001-query-plan-contract.md.

The engine query returns one row per group present in the bounded data, with columns:

* ``__g0 … __gK``: the group keys, in :attr:`QueryPlan.group_keys` order;
* ``__rows``: the number of bounded rows in the group (used for partition selection);
* the statistic columns named in each :class:`Measurement` ``stats`` mapping.

Statistic meanings (all computed on bounded rows, after clamping):

* ``count``: ``COUNT(*)`` or ``COUNT(expr)`` (non-null rows), or for
  ``count_distinct`` the number of distinct privacy units; a BIGINT.
* ``sum``: ``SUM`` of the clamped value in fixed point, i.e. of
  ``CAST(ROUND(clamp(x) * fixed_point) AS BIGINT)``; exact integer arithmetic, so
  floating-point rounding cannot change the sensitivity. Divide by ``fixed_point``
  after noise. ``lower``/``upper`` lie on the 1/fixed_point grid, so each row's term is
  at most ``max(|lower|, |upper|) * fixed_point`` in absolute value.
* ``sumsq``: ``SUM`` of ``CAST(FLOOR(clamp(x) * clamp(x) * fixed_point) AS BIGINT)``
  (FLOOR, so each row's term is at most ``max(lower², upper²) * fixed_point``).
* ``hist``: for quantiles, ``histogram(bin)`` (a MAP bin→count) where
  ``bin = CAST(FLOOR((clamp(x) - lower) / (upper - lower) * bins) AS INT)`` clipped to
  ``[0, bins-1]`` for ``bin_layout == "linear"``; for ``"linear_asinh"`` (what the
  planner emits) the bin of :func:`query_guard.histogram.bin_index` (equal + asinh grids).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from sqlglot import exp

MeasureKind = Literal["count", "count_distinct", "sum", "mean", "variance", "stddev", "quantile"]

#: statistics each kind needs from the engine (keys of :attr:`Measurement.stats`).
STATS_FOR_KIND: Mapping[str, tuple[str, ...]] = {
    "count": ("count",),
    "count_distinct": ("count",),
    "sum": ("sum",),
    "mean": ("sum", "count"),
    "variance": ("sum", "sumsq", "count"),
    "stddev": ("sum", "sumsq", "count"),
    "quantile": ("hist",),
}


@dataclass(frozen=True)
class GroupKey:
    """One GROUP BY key.

    ``public_domain`` is the owner-declared list of every possible key value (all are
    released, empty groups included); ``None`` means the keys come from private data
    and only DP partition selection may release them.
    """

    name: str  # output column name in the released table
    column: str  # column in the engine result: "__g0", "__g1", …
    public_domain: tuple[str | int | float | bool | None, ...] | None
    expression_sql: str = ""  # the (rewritten) key expression, for audit and display


@dataclass(frozen=True)
class Measurement:
    """One private aggregate to release, with everything its sensitivity depends on.

    ``lower``/``upper`` bound the clamped value (None for plain counts).
    ``max_partitions`` (L0) and ``max_rows_per_partition`` (L∞) bound one person's
    contribution after the engine query's bounding pass.
    """

    id: str  # "m0", "m1", …
    kind: MeasureKind
    stats: Mapping[str, str]  # stat name ("count", "sum", …) → engine result column
    max_partitions: int
    max_rows_per_partition: int
    lower: float | None = None
    upper: float | None = None
    fixed_point: int = 1  # sum/sumsq stats are value * fixed_point, rounded
    value_type: Literal["int", "float"] = "int"
    quantiles: tuple[float, ...] = ()  # for kind == "quantile"
    bins: int = 0  # for kind == "quantile": histogram resolution
    # "linear": equal bins of [lower, upper]; "linear_asinh": query_guard.histogram's grid
    bin_layout: Literal["linear", "linear_asinh"] = "linear"
    expression_sql: str = ""  # the clamped value expression, for audit and display
    dataset: str = ""  # the dataset whose privacy unit is bounded
    # variance/stddev: 1 for the sample (VARIANCE, VAR_SAMP, STDDEV, STDDEV_SAMP),
    # 0 for the population (VAR_POP, STDDEV_POP) estimator.
    ddof: int = 1


@dataclass(frozen=True)
class OutputColumn:
    """One column of the released table, in SELECT order.

    ``source``: ``group`` (``ref`` = a GroupKey.column), ``measure`` (``ref`` = a
    Measurement.id; for quantile kinds with several fractions ``index`` picks one), or
    ``derived``: ``expression`` is arithmetic over ``Column`` nodes named by
    measurement ids (e.g. ``m0 / m1`` for SUM(x)/COUNT(*)), evaluated on noisy values.
    """

    name: str
    source: Literal["group", "measure", "derived"]
    ref: str = ""
    index: int = 0
    expression: exp.Expression | None = None
    # Measured only for HAVING / ORDER BY; not part of the released table.
    hidden: bool = False


@dataclass(frozen=True)
class OrderItem:
    """One sort key of the released rows.

    ``column`` is an output column name. When the researcher sorted by an expression
    (``ORDER BY CAST(gender AS INT) * -1``), ``expression`` holds it over output column
    names (like :attr:`QueryPlan.having`) and ``column`` is its SQL text for display;
    sort by evaluating ``expression`` then.
    """

    column: str  # an output column name
    descending: bool = False
    expression: exp.Expression | None = None


@dataclass(frozen=True)
class Materialisation:
    """Contribution bounding computed once per dataset version and grouping.

    ``keep_query`` returns the ``__rowid`` of the rows of ``dataset`` the bounding pass
    keeps. It reads only the unfiltered rows of the plan's datasets (bound, then filter; see
    docs/decisions/0004), so its result depends on the dataset versions, the group keys,
    the bounds and the secret seed, never on the researcher's filters. ``column`` (a
    digest of the keep query) names the boolean column, true for kept rows, that
    ``materialised_query`` reads from ``dataset`` in place of the keep query. Running
    ``QueryPlan.engine_query`` or the materialised query gives the same result.
    """

    dataset: str
    column: str
    keep_query: exp.Expression
    materialised_query: exp.Expression
    keep_sql_duckdb: str = ""  # made once by the guard (the column name is its digest)

    def keep_sql(self, dialect: str = "duckdb") -> str:
        if dialect == "duckdb" and self.keep_sql_duckdb:
            return self.keep_sql_duckdb
        return self.keep_query.sql(dialect=dialect)

    def materialised_sql(self, dialect: str = "duckdb") -> str:
        return self.materialised_query.sql(dialect=dialect)


@dataclass(frozen=True)
class QueryPlan:
    """A checked, rewritten query. Post-processing applies to noisy values only."""

    sql: str
    engine_query: exp.Expression
    datasets: tuple[str, ...]
    group_keys: tuple[GroupKey, ...]
    measurements: tuple[Measurement, ...]
    outputs: tuple[OutputColumn, ...]
    # HAVING as an expression over output column names (Column nodes), on noisy values.
    having: exp.Expression | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    fingerprint: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    # One person's contribution to ``__rows`` after the bounding pass (L0, L∞): what DP
    # partition selection needs, also when the plan has no measurement (GROUP BY only).
    max_partitions: int = 1
    max_rows_per_partition: int = 1
    # Set when contributions are bounded: lets the engine reuse the kept rows.
    materialisation: Materialisation | None = None

    def engine_sql(self, dialect: str = "duckdb") -> str:
        """The rewritten query as text for one engine (sqlglot transpiles)."""
        return self.engine_query.sql(dialect=dialect)

    @property
    def needs_partition_selection(self) -> bool:
        return any(k.public_domain is None for k in self.group_keys)
