"""Assemble the rewritten engine query (the only SQL the engine runs).

Shape (see ``plan.py`` for the result contract)::

    -- only when contributions must be bounded: which rows are kept, chosen over the
    -- unfiltered rows (bound, then filter; docs/decisions/0004), see ``bounding_ctes.py``
    WITH __ksrc AS (SELECT t0.unit AS __unit, t0.__rowid AS __rowid, <key> AS __g0,
                    HASH(<row content>, '<seed>') AS __rh FROM ds AS t0 [JOIN ds2 AS t1 ON …]),
    __keyed AS (SELECT *, HASH(__unit, __g0, '<seed>') AS __gh FROM __ksrc
                WHERE __g0 IN (<public domain>)),
    __groups AS (SELECT __unit, __gh, __g0, COUNT(*) AS __n FROM __keyed GROUP BY …
                 QUALIFY ROW_NUMBER() OVER (PARTITION BY __unit ORDER BY __gh, __g0) <= L0),
    __kept AS (<rows of kept groups with __n <= L∞>
               UNION ALL <rows of kept groups with __n > L∞ whose ROW_NUMBER() OVER
               (PARTITION BY __unit, __gh ORDER BY __rh, __rowid) <= L∞>),
    __keep_ids AS (SELECT __rowid FROM __kept WHERE __rowid IS NOT NULL),
    __src AS (              -- datasets, join, filters; keys and clamped values
      SELECT <key> AS __g0, <value> AS __v0 FROM ds AS t0 [LEFT JOIN ds2 AS t1 ON …]
      WHERE <filters> [AND t0.__rowid IN (SELECT __rowid FROM __keep_ids)])
    SELECT __g0, COUNT(*) AS __rows, <stats> FROM __src GROUP BY __g0

The materialised twin has only ``__src``, with ``t0.__keep_<digest>`` (a boolean column
the sandbox computes once per dataset version from the keep query) in place of the IN.

Everything is built as a sqlglot tree from guard-made nodes and flattened, rewritten
researcher expressions with comments stripped, so any dialect can be generated from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from query_guard import histogram
from query_guard.bounding_ctes import keep_ctes
from query_guard.engine_source import EngineKey, Join, clean, source, total
from query_guard.rules.bound_contributions import Bounding
from query_guard.rules.clamp_values import ValueSpec, number
from query_guard.shape import AggCall

HIST_BINS = histogram.HIST_BINS


@dataclass(frozen=True)
class EngineQueries:
    """What :func:`build_engine_query` makes (see ``plan.Materialisation``)."""

    query: exp.Select
    stats: dict[str, dict[str, str]]
    keep_query: exp.Select | None = None
    keep_sql: str = ""  # keep_query as DuckDB SQL (made once: it names the keep column)
    keep_column: str = ""
    materialised_query: exp.Select | None = None


def build_engine_query(
    bases: Sequence[tuple[str, str]],  # (dataset name, alias)
    join: Join | None,
    filters: Sequence[exp.Expr],
    keys: Sequence[EngineKey],
    calls: Sequence[AggCall],
    values: dict[str, ValueSpec],
    bounding: Bounding,
) -> EngineQueries:
    """The engine query, its materialised twin and, per measurement id, stat → column.

    With contribution bounding the kept rows are chosen over the *unfiltered* rows
    (bound, then filter; docs/decisions/0004): ``keep_query`` lists their ``__rowid``
    and depends only on the datasets, the keys, the bounds and the seed, so the sandbox
    computes it once per dataset version and grouping. ``query`` is self-contained (it
    semi-joins the kept row ids); ``materialised_query`` reads the boolean column
    ``keep_column`` the sandbox attaches instead.
    """
    src_items, value_column = _source_items(keys, calls, values)
    outer_items, stats = _outer_items(keys, calls, values, value_column)

    def aggregate(kept: exp.Expr | None, extra_ctes: Sequence[tuple[str, exp.Expr]] = ()) -> exp.Select:
        src = source(bases, join, [c.copy() for c in src_items], filters, kept, bounding)
        query = exp.select(*[i.copy() for i in outer_items], copy=False).from_("__src", copy=False)
        if keys:
            query = query.group_by(*[exp.column(k.column) for k in keys], copy=False)
        for name, body in [*extra_ctes, ("__src", src)]:
            query = query.with_(name, as_=body, copy=False)
        return clean(query)

    if not bounding.needed:
        # No bounding pass: rows with keys outside a public domain cost no one an L0 slot,
        # and privacy.release looks up only the domain's keys, so no filter is needed (an
        # IN-list over every row roughly doubled GROUP BY time at 1M persons).
        return EngineQueries(aggregate(None), stats)

    ctes = keep_ctes(bases, join, keys, bounding)
    keep_query = exp.select("__rowid", copy=False).from_("__kept", copy=False)
    keep_query = keep_query.where(exp.Not(this=exp.Is(this=exp.column("__rowid"), expression=exp.Null())), copy=False)
    keep_ids = keep_query.copy()
    for name, body in ctes:
        keep_query = keep_query.with_(name, as_=body.copy(), copy=False)
    keep_query = clean(keep_query)
    keep_sql = keep_query.sql("duckdb")
    keep_column = "__keep_" + hashlib.sha256(keep_sql.encode()).hexdigest()[:16]

    in_kept = exp.In(
        this=bounding.rowid.copy(),
        query=exp.select("__rowid").from_("__keep_ids").subquery(copy=False),
    )
    query = aggregate(in_kept, [*ctes, ("__keep_ids", keep_ids)])
    flag = exp.column(keep_column, table=bounding.rowid.table)
    materialised = aggregate(flag)
    return EngineQueries(query, stats, keep_query, keep_sql, keep_column, materialised)


def _source_items(
    keys: Sequence[EngineKey], calls: Sequence[AggCall], values: dict[str, ValueSpec]
) -> tuple[list[exp.Expr], dict[str, str]]:
    """``__src``'s columns: the keys, then one clamped value column per distinct value
    expression (AVG(x) and MEDIAN(x) share one); and each measurement's value column."""
    src_items: list[exp.Expr] = []
    for key in keys:
        src_items.append(exp.alias_(total(key.expr.copy()), key.column, copy=False))
    value_column: dict[str, str] = {}
    by_sql: dict[str, str] = {}  # AVG(x) and MEDIAN(x) share one clamped column
    for call in calls:
        spec = values[call.id]
        if spec.expr is not None:
            text = spec.expr.sql("duckdb")
            if text not in by_sql:
                by_sql[text] = f"__v{len(by_sql)}"
                src_items.append(exp.alias_(total(spec.expr), by_sql[text], copy=False))
            value_column[call.id] = by_sql[text]
    if not src_items:
        src_items.append(exp.alias_(exp.Literal.number(1), "__one", copy=False))
    return src_items, value_column


def _outer_items(
    keys: Sequence[EngineKey],
    calls: Sequence[AggCall],
    values: dict[str, ValueSpec],
    value_column: dict[str, str],
) -> tuple[list[exp.Expr], dict[str, dict[str, str]]]:
    """The outer SELECT: keys, ``__rows`` and one column per distinct statistic (SUM(x)
    and STDDEV(x) share one sum column); and, per measurement id, stat → column."""
    stats: dict[str, dict[str, str]] = {}
    outer_items: list[exp.Expr] = [exp.column(k.column) for k in keys]
    outer_items.append(exp.alias_(exp.Count(this=exp.Star()), "__rows", copy=False))
    by_stat_sql: dict[str, str] = {}  # SUM(x) and STDDEV(x) share one sum column
    for call in calls:
        stats[call.id] = {}
        for stat, expression in _stats(call, value_column.get(call.id), values[call.id]):
            text = expression.sql("duckdb")
            if text not in by_stat_sql:
                by_stat_sql[text] = f"__{call.id}_{stat}"
                outer_items.append(exp.alias_(expression, by_stat_sql[text], copy=False))
            stats[call.id][stat] = by_stat_sql[text]
    return outer_items, stats


def _stats(call: AggCall, column: str | None, spec: ValueSpec) -> list[tuple[str, exp.Expr]]:
    if call.kind == "count":
        arg: exp.Expr = exp.Star() if column is None else exp.column(column)
        return [("count", exp.Count(this=arg))]
    assert column is not None
    value = exp.column(column)
    if call.kind == "count_distinct":
        return [("count", exp.Count(this=exp.Distinct(expressions=[value])))]
    as_double = exp.TryCast(this=value.copy(), to=exp.DataType.build("DOUBLE"))
    fp = exp.Literal.number(spec.fixed_point)
    out: list[tuple[str, exp.Expr]] = []
    if call.kind == "quantile":
        return [("hist", _histogram(as_double, spec))]
    out.append(("sum", exp.Sum(this=_fixed(exp.Mul(this=as_double, expression=fp)))))
    if call.kind in ("variance", "stddev"):
        square = exp.Mul(
            this=exp.Mul(this=as_double.copy(), expression=as_double.copy()), expression=fp.copy()
        )
        # PRIVACY: FLOOR (not ROUND) so a row's term never exceeds max(lo², hi²) × fp.
        out.append(("sumsq", exp.Sum(this=_fixed(square, floor=True))))
    if call.kind in ("mean", "variance", "stddev"):
        out.append(("count", exp.Count(this=value.copy())))
    return out


def _fixed(expr: exp.Expr, *, floor: bool = False) -> exp.Expr:
    rounded = exp.Floor(this=expr) if floor else exp.Round(this=expr)
    return exp.TryCast(this=rounded, to=exp.DataType.build("BIGINT"))


def _histogram(value: exp.Expr, spec: ValueSpec) -> exp.Expr:
    lo, hi = float(spec.lower or 0.0), float(spec.upper or 0.0)
    if hi <= lo:
        bin_expr: exp.Expr = exp.Literal.number(0)
    else:  # equal + asinh grids (query_guard.histogram): finer where skewed mass sits
        bin_expr = histogram.bin_sql(value, lo, hi, number)
    # A NULL value has no bin: keep the bin NULL so histogram() skips it.
    guarded = exp.Case(
        ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null())],
        default=bin_expr,
    )
    return exp.Anonymous(this="HISTOGRAM", expressions=[guarded])
