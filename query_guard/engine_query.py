"""Assemble the rewritten engine query (the only SQL the engine runs).

Shape (see ``plan.py`` for the result contract)::

    -- only when contributions must be bounded: which rows are kept, chosen over the
    -- unfiltered rows (bound, then filter; docs/decisions/0004), see ``_bounding_ctes``
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
from query_guard.rules.bound_contributions import Bounding
from query_guard.rules.clamp_values import ValueSpec, number
from query_guard.shape import AggCall

HIST_BINS = histogram.HIST_BINS


@dataclass(frozen=True)
class EngineKey:
    column: str
    expr: exp.Expr
    domain: tuple | None


@dataclass(frozen=True)
class Join:
    side: str  # "" (inner) or "LEFT"
    on: exp.Expr  # the privacy-unit equality
    right_filters: tuple[exp.Expr, ...] = ()  # LEFT JOIN: the right side's filters


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

    def aggregate(kept: exp.Expr | None, extra_ctes: Sequence[tuple[str, exp.Expr]] = ()) -> exp.Select:
        src = _source(bases, join, [c.copy() for c in src_items], filters, kept, bounding)
        query = exp.select(*[i.copy() for i in outer_items], copy=False).from_("__src", copy=False)
        if keys:
            query = query.group_by(*[exp.column(k.column) for k in keys], copy=False)
        for name, body in [*extra_ctes, ("__src", src)]:
            query = query.with_(name, as_=body, copy=False)
        return _clean(query)

    if not bounding.needed:
        # No bounding pass: rows with keys outside a public domain cost no one an L0 slot,
        # and privacy.release looks up only the domain's keys, so no filter is needed (an
        # IN-list over every row roughly doubled GROUP BY time at 1M persons).
        return EngineQueries(aggregate(None), stats)

    keep_ctes = _keep_ctes(bases, join, keys, bounding)
    keep_query = exp.select("__rowid", copy=False).from_("__kept", copy=False)
    keep_query = keep_query.where(exp.Not(this=exp.Is(this=exp.column("__rowid"), expression=exp.Null())), copy=False)
    keep_ids = keep_query.copy()
    for name, body in keep_ctes:
        keep_query = keep_query.with_(name, as_=body.copy(), copy=False)
    keep_query = _clean(keep_query)
    keep_sql = keep_query.sql("duckdb")
    keep_column = "__keep_" + hashlib.sha256(keep_sql.encode()).hexdigest()[:16]

    in_kept = exp.In(
        this=bounding.rowid.copy(),
        query=exp.select("__rowid").from_("__keep_ids").subquery(copy=False),
    )
    query = aggregate(in_kept, [*keep_ctes, ("__keep_ids", keep_ids)])
    flag = exp.column(keep_column, table=bounding.rowid.table)
    materialised = aggregate(flag)
    return EngineQueries(query, stats, keep_query, keep_sql, keep_column, materialised)


def _source(
    bases: Sequence[tuple[str, str]],
    join: Join | None,
    items: list[exp.Expr],
    filters: Sequence[exp.Expr],
    kept: exp.Expr | None,
    bounding: Bounding,
    *,
    with_right_filters: bool = True,
) -> exp.Select:
    """``SELECT items FROM datasets [JOIN] WHERE filters``, keeping only ``kept`` rows of
    the bounded dataset. When that dataset is the right side of a LEFT JOIN the condition
    goes into ON (people without kept rows keep their NULL-extended row)."""
    name0, alias0 = bases[0]
    src = exp.select(*items, copy=False).from_(
        exp.alias_(exp.to_table(name0), alias0, table=True, copy=False), copy=False
    )
    where: list[exp.Expr] = [total(f.copy()) for f in filters]
    if join is not None:
        name1, alias1 = bases[1]
        on = [join.on.copy()]
        if with_right_filters:
            on += [total(f.copy()) for f in join.right_filters]
        if kept is not None and join.side == "LEFT" and bounding.rowid is not None and bounding.rowid.table == alias1:
            on.append(kept)
        elif kept is not None:
            where.append(kept)
        src = src.join(
            exp.alias_(exp.to_table(name1), alias1, table=True, copy=False),
            on=exp.and_(*on, copy=False),
            join_type=join.side.lower() or None,
            copy=False,
        )
    elif kept is not None:
        where.append(kept)
    if where:
        src = src.where(exp.and_(*where, copy=False), copy=False)
    return src


def _keep_ctes(
    bases: Sequence[tuple[str, str]], join: Join | None, keys: Sequence[EngineKey], bounding: Bounding
) -> list[tuple[str, exp.Expr]]:
    """``__ksrc`` (unfiltered rows: unit, row id, keys, content hash) and the bounding CTEs."""
    seed = exp.Literal.string(bounding.seed)
    assert bounding.rowid is not None
    items: list[exp.Expr] = [
        exp.alias_(bounding.unit.copy(), "__unit", copy=False),
        exp.alias_(bounding.rowid.copy(), "__rowid", copy=False),
    ]
    items += [exp.alias_(total(k.expr.copy()), k.column, copy=False) for k in keys]
    content = [c.copy() for c in bounding.content] or [bounding.rowid.copy()]
    items.append(exp.alias_(_hash([*content, seed.copy()]), "__rh", copy=False))
    src = _source(bases, join, items, (), None, bounding, with_right_filters=False)
    columns = ["__unit", "__rowid", *[k.column for k in keys], "__rh"]
    return [("__ksrc", src), *_bounding_ctes(columns, keys, bounding, _domain_filter(keys))]


def total(expr: exp.Expr) -> exp.Expr:
    """``TRY(expr)``: NULL on a row where ``expr`` raises (a filter then drops the row).

    PRIVACY: defence in depth. The guard's rules already make every accepted expression
    total (docs/guard.md, "Total expressions"); should one be missed, a run-time error on
    some rows would still become NULL, not a failure whose occurrence depends on the data.
    A bare column cannot raise and stays as it is.
    """
    if isinstance(expr, exp.Column):
        return expr
    return exp.func("TRY", expr.unnest() if isinstance(expr, exp.Paren) else expr)


def _clean(query: exp.Select) -> exp.Select:
    for node in query.walk():
        node.comments = None
    return query


def _bounding_ctes(
    columns: list[str],
    keys: Sequence[EngineKey],
    bounding: Bounding,
    domain_filter: exp.Expr | None,
) -> list[tuple[str, exp.Expr]]:
    """Contribution bounding as CTEs ``__keyed``, ``__groups``, ``__kept``.

    Equivalent to keeping rows with ``ROW_NUMBER() OVER (PARTITION BY unit, keys ORDER BY
    HASH(__rowid, seed), __rowid) <= L∞`` and ``DENSE_RANK() OVER (PARTITION BY unit ORDER
    BY HASH(unit, keys, seed), keys) <= L0``, but several times faster on DuckDB: the L0 choice
    is made on one row per (person, group), and rows are ranked only in the (rare) groups
    where a person has more than L∞ rows. Partitions use the 64-bit key hash; the exact
    keys are always compared too, so a hash collision can only make bounding stricter.
    """
    seed = exp.Literal.string(bounding.seed)
    key_names = [k.column for k in keys]
    l0, linf = bounding.max_partitions, bounding.max_rows_per_partition
    # PRIVACY and accuracy: the L0 choice is a seeded pseudo-random order of groups *per
    # person* (the unit is hashed with the key). With the key alone every person above L0
    # dropped the same groups: 外科 came out at 72 % of its bounded-away truth, 眼科 at 100 %.
    # It still depends only on that person's own rows (decision 0004's neighbour argument).
    gh = (
        _hash([exp.column("__unit"), *[exp.column(c) for c in key_names], seed.copy()])
        if keys else exp.Literal.number(0)
    )
    keyed = exp.select(exp.Star(), exp.alias_(gh, "__gh", copy=False), copy=False).from_(
        "__ksrc", copy=False
    )
    if domain_filter is not None:
        keyed = keyed.where(domain_filter, copy=False)

    group_by = ["__unit", "__gh", *key_names]
    groups = exp.select(
        *[exp.column(c) for c in group_by],
        exp.alias_(exp.Count(this=exp.Star()), "__n", copy=False),
        copy=False,
    )
    groups = groups.from_("__keyed", copy=False).group_by(
        *[exp.column(c) for c in group_by], copy=False
    )
    if keys:
        rank = exp.Window(
            this=exp.RowNumber(),
            partition_by=[exp.column("__unit")],
            order=exp.Order(
                expressions=[exp.Ordered(this=exp.column(c)) for c in ["__gh", *key_names]]
            ),
        )
        groups = groups.qualify(exp.LTE(this=rank, expression=exp.Literal.number(l0)), copy=False)

    def joined(extra: exp.Expr) -> exp.Select:
        on = exp.and_(*[_same(c) for c in group_by], copy=False)
        return (
            exp.select(*[exp.column(c, table="k") for c in columns + ["__gh"]], copy=False)
            .from_(exp.alias_(exp.to_table("__keyed"), "k", table=True, copy=False), copy=False)
            .join(
                exp.alias_(exp.to_table("__groups"), "g", table=True, copy=False), on=on, copy=False
            )
            .where(extra, copy=False)
        )

    n = exp.column("__n", table="g")
    small = joined(exp.LTE(this=n, expression=exp.Literal.number(linf)))
    row_number = exp.Window(
        this=exp.RowNumber(),
        partition_by=[exp.column("__unit", table="k"), exp.column("__gh", table="k")],
        order=exp.Order(
            expressions=[
                exp.Ordered(this=exp.column("__rh", table="k")),
                exp.Ordered(this=exp.column("__rowid", table="k")),
            ]
        ),
    )
    big = joined(exp.GT(this=n.copy(), expression=exp.Literal.number(linf)))
    big = big.select(exp.alias_(row_number, "__rn", copy=False), copy=False)
    big_kept = (
        exp.select(*[exp.column(c) for c in columns + ["__gh"]], copy=False)
        .from_(big.subquery("b", copy=False), copy=False)
        .where(exp.LTE(this=exp.column("__rn"), expression=exp.Literal.number(linf)), copy=False)
    )
    kept = exp.union(small, big_kept, distinct=False, copy=False)
    return [("__keyed", keyed), ("__groups", groups), ("__kept", kept)]


def _same(column: str) -> exp.Expr:
    """``k.c IS NOT DISTINCT FROM g.c``: NULL units and NULL keys match like values."""
    left, right = exp.column(column, table="k"), exp.column(column, table="g")
    if column == "__gh":
        return exp.EQ(this=left, expression=right)
    return exp.NullSafeEQ(this=left, expression=right)


def _hash(args: list[exp.Expr]) -> exp.Expr:
    return exp.Anonymous(this="HASH", expressions=args)


def _domain_filter(keys: Sequence[EngineKey]) -> exp.Expr | None:
    """Keep only rows whose public-domain keys are in the domain (the rest is never
    released, so they should not use up a person's L0 groups)."""
    conditions: list[exp.Expr] = []
    for key in keys:
        if key.domain is None:
            continue
        present = [v for v in key.domain if v is not None]
        column = exp.column(key.column)
        condition: exp.Expr = (
            exp.In(this=column, expressions=[_literal(v) for v in present])
            if present
            else exp.false()
        )
        if len(present) != len(key.domain):
            condition = exp.or_(
                condition, exp.Is(this=column.copy(), expression=exp.Null()), copy=False
            )
        conditions.append(exp.paren(condition, copy=False))
    return exp.and_(*conditions, copy=False) if conditions else None


def _literal(value: object) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return number(float(value)) if isinstance(value, float) else exp.Literal.number(value)
    return exp.Literal.string(str(value))


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
