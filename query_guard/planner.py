"""``plan(sql, scenario, catalog)``: the guard's one entry point.

Rules run in the declared order of :data:`RULES` (as sqlglot's optimizer does): first
the cheap, syntactic allow-list checks on the researcher's tree, then scope resolution
and inlining, then the shape of the aggregate query, then typing, bounds, domains and
bounding, and finally the engine query is assembled. Every refusal is a
:class:`~query_guard.errors.GuardError` carrying a code and a position.
"""

from __future__ import annotations

import math
from typing import cast

from sqlglot import exp

from query_guard.catalog import Catalog
from query_guard.context import Context
from query_guard.engine_query import HIST_BINS, EngineKey, Join, build_engine_query
from query_guard.errors import GuardError, LimitError, SqlSyntaxError
from query_guard.fingerprint import fingerprint
from query_guard.parse import parse_select
from query_guard.plan import GroupKey, Materialisation, Measurement, QueryPlan
from query_guard.post_types import check_post
from query_guard.rules.allow_nodes import allow_nodes
from query_guard.rules.bound_contributions import bound_contributions
from query_guard.rules.canonical_functions import canonical_functions
from query_guard.rules.clamp_values import clamp_values
from query_guard.rules.flatten_subqueries import Resolver
from query_guard.rules.public_domains import MAX_DOMAIN, public_domain
from query_guard.rules.reserved_names import reserved_names
from query_guard.rules.safe_arithmetic import safe_arithmetic
from query_guard.rules.split_aggregates import split_aggregates
from query_guard.rules.type_bounds import Typer
from query_guard.scenario import Scenario

#: The rules in the order they run (each module under ``query_guard/rules/``).
RULES = (
    "limit_size",
    "single_select",
    "allow_nodes",
    "reserved_names",
    "canonical_functions",
    "dataset_scope",
    "column_scope",
    "flatten_subqueries",
    "join_on_unit",
    "privacy_unit",
    "split_aggregates",
    "measure_kinds",
    "type_bounds",
    "safe_arithmetic",
    "public_domains",
    "clamp_values",
    "bound_contributions",
)


def plan(sql: str, scenario: Scenario, catalog: Catalog) -> QueryPlan:
    """Check ``sql`` against ``scenario`` and rewrite it, or raise a GuardError.

    Pure: no I/O, no randomness, no clock. Unexpected internal failures are refused as
    ``internal_error`` (fail closed) rather than escaping as arbitrary exceptions.
    """
    if not isinstance(sql, str):
        raise SqlSyntaxError("the query must be text", line=1, column=1)
    ctx = Context(sql, scenario, catalog)
    try:
        return _plan(ctx)
    except GuardError:
        raise
    except RecursionError:
        raise LimitError("query nested too deeply: past the nesting limit") from None
    except Exception as err:  # pragma: no cover - a bug; fail closed, keep the cause
        raise GuardError(
            f"internal error while checking the query ({type(err).__name__}); it was refused",
            code="internal_error",
        ) from err


def _plan(ctx: Context) -> QueryPlan:
    select = parse_select(ctx)
    allow_nodes(select, ctx)
    reserved_names(select, ctx)
    canonical = canonical_functions(select, ctx)
    assert isinstance(canonical, exp.Select)
    select = canonical
    resolver = Resolver(ctx)
    shape = split_aggregates(select, resolver, ctx)
    rel = shape.relation
    typer = Typer(rel.bases, ctx)

    filters = []
    for condition in rel.filters:
        typer.predicate(condition, "WHERE")
        filters.append(safe_arithmetic(condition, typer))
    join = None
    if rel.join is not None:
        on: exp.Expr = exp.EQ(
            this=exp.column(rel.bases[0].unit, table=rel.bases[0].alias),
            expression=exp.column(rel.bases[1].unit, table=rel.bases[1].alias),
        )
        right_filters = []
        for condition in rel.join.right_filters:
            typer.predicate(condition, "WHERE")
            right_filters.append(safe_arithmetic(condition, typer))
        join = Join(rel.join.side, on, tuple(right_filters))

    engine_keys: list[EngineKey] = []
    group_keys: list[GroupKey] = []
    key_kinds: dict[str, str] = {}
    for key in shape.keys:
        info = typer.infer(key.expr)
        key_kinds[key.column] = _released_kind(info.type)
        expr = safe_arithmetic(key.expr, typer)
        if info.type == "date":
            expr = exp.TimeToStr(this=expr, format=exp.Literal.string("%Y-%m-%d"))
        elif info.type in ("int", "float") and not isinstance(key.expr, exp.Column):
            # Computed numeric keys come out of DOUBLE arithmetic; give them one type so
            # engine values and public-domain values compare equal.
            target = "BIGINT" if info.type == "int" else "DOUBLE"
            expr = exp.TryCast(this=expr, to=exp.DataType.build(target))
        domain = public_domain(key.expr, expr, typer, rel.bases)
        if domain is not None and len(domain) > MAX_DOMAIN:
            domain = None
        if domain is None and info.type == "bool":
            domain = (False, True, None)  # a condition's values are public by its type
        if domain is not None and not isinstance(key.expr, exp.Column):
            domain = _typed_domain(domain, info.type)
        engine_keys.append(EngineKey(key.column, expr, domain))
        group_keys.append(GroupKey(key.name, key.column, domain, expr.sql("duckdb")))

    released = {
        out.name: key_kinds[out.ref]
        for out in shape.outputs
        if out.source == "group" and out.ref in key_kinds
    }
    for out in shape.outputs:
        if out.expression is not None:
            check_post(out.expression, released, ctx)
    for item in shape.order_by:
        if item.expression is not None:
            check_post(item.expression, released, ctx)
    if shape.having is not None:
        check_post(shape.having, released, ctx)

    values = {call.id: clamp_values(call, typer, ctx) for call in shape.aggs}
    bounding = bound_contributions(rel, [k.expr for k in shape.keys], ctx.scenario)
    bases = [(b.info.name, b.alias) for b in rel.bases]
    built = build_engine_query(bases, join, filters, engine_keys, shape.aggs, values, bounding)
    engine, stats = built.query, built.stats
    materialisation = None
    if built.keep_query is not None and built.materialised_query is not None:
        materialisation = Materialisation(
            dataset=bounding.dataset,
            column=built.keep_column,
            keep_query=built.keep_query,
            materialised_query=built.materialised_query,
            keep_sql_duckdb=built.keep_sql,
        )

    l0 = bounding.max_partitions
    if group_keys and all(k.public_domain is not None for k in group_keys):
        l0 = min(l0, math.prod(len(k.public_domain or ()) for k in group_keys))
    measurements = []
    for call in shape.aggs:
        spec = values[call.id]
        measurements.append(
            Measurement(
                id=call.id,
                kind=call.kind,  # type: ignore[arg-type]
                stats=stats[call.id],
                max_partitions=max(1, l0),
                # PRIVACY: also for count_distinct (which adds ≤ 1 per group) this is the
                # bounding pass's L∞, so consumers using it for ``__rows`` stay sound.
                max_rows_per_partition=bounding.max_rows_per_partition,
                lower=spec.lower,
                upper=spec.upper,
                fixed_point=spec.fixed_point,
                value_type="float" if spec.value_type == "float" else "int",
                quantiles=call.quantiles,
                bins=HIST_BINS if call.kind == "quantile" else 0,
                bin_layout="linear_asinh" if call.kind == "quantile" else "linear",
                expression_sql=spec.expr.sql("duckdb") if spec.expr is not None else "*",
                dataset=bounding.dataset,
                ddof=call.ddof,
            )
        )
    notes = []
    if bounding.needed:
        notes.append(
            f"contributions bounded on {bounding.dataset}: at most {bounding.max_partitions}"
            f" groups and {bounding.max_rows_per_partition} rows per group per person"
        )
    for group_key in group_keys:
        if group_key.public_domain is None:
            notes.append(f"group key {group_key.name}: no public domain, DP partition selection")
    datasets = tuple(b.info.name for b in rel.bases)
    seeds = [b.info.bounding_seed for b in rel.bases]
    return QueryPlan(
        sql=ctx.sql,
        engine_query=engine,
        datasets=datasets,
        group_keys=tuple(group_keys),
        measurements=tuple(measurements),
        outputs=tuple(shape.outputs),
        having=cast(exp.Expression | None, shape.having),
        order_by=tuple(shape.order_by),
        limit=shape.limit,
        fingerprint=fingerprint(
            engine,
            seeds,
            datasets,
            group_keys,
            measurements,
            shape.outputs,
            shape.having,
            shape.order_by,
            shape.limit,
        ),
        notes=tuple(notes),
        max_partitions=max(1, l0),
        max_rows_per_partition=bounding.max_rows_per_partition,
        materialisation=materialisation,
    )


def _released_kind(kind: str) -> str:
    """A group key's values as post-processing sees them (dates are released as text)."""
    if kind in ("int", "float"):
        return "numeric"
    return "text" if kind in ("text", "date") else kind


def _typed_domain(domain: tuple, kind: str) -> tuple:
    """Domain values in the engine's result type (1 vs 1.0 must not differ)."""
    if kind not in ("int", "float"):
        return domain
    cast = int if kind == "int" else float
    out: dict[object, None] = {}
    for value in domain:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = cast(value)
        out.setdefault(value, None)
    return tuple(out)


__all__ = ["plan", "Catalog", "Scenario"]
