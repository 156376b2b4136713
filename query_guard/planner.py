"""``plan(sql, scenario, catalog)``: the guard's one entry point.

As sqlglot's optimizer applies its ``RULES`` in order to one expression, the guard
applies :data:`RULES` in order to one :class:`~query_guard.draft.Draft`: first the
cheap, syntactic checks on the researcher's tree, then name resolution and inlining
(each table, column, join and derived column checked as it is met), the split into
keys and aggregates (each aggregate checked as it is met), re-checks of what those
checks guaranteed, then typing, engine-safe rewriting, public domains, clamping and
bounding. Rules never call one another: what several need is a helper module outside
``rules/`` (:mod:`query_guard.resolver`, :mod:`query_guard.name_checks`,
:mod:`query_guard.typer`, …). Finally the engine query and the plan are assembled.
Every refusal is a :class:`~query_guard.errors.GuardError` carrying a code and a position.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

from sqlglot import exp

from query_guard.catalog import Catalog
from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.engine_query import HIST_BINS, EngineQueries, build_engine_query
from query_guard.engine_source import EngineKey, Join
from query_guard.errors import GuardError, LimitError, SqlSyntaxError
from query_guard.fingerprint import fingerprint
from query_guard.parse import parse
from query_guard.plan import GroupKey, Materialisation, Measurement, QueryPlan
from query_guard.rules.allow_nodes import allow_nodes
from query_guard.rules.bound_contributions import bound_contributions
from query_guard.rules.canonical_functions import canonical_functions
from query_guard.rules.clamp_values import clamp_values
from query_guard.rules.column_scope import column_scope
from query_guard.rules.dataset_scope import dataset_scope
from query_guard.rules.flatten_subqueries import flatten_subqueries
from query_guard.rules.join_on_unit import join_on_unit
from query_guard.rules.limit_size import limit_size
from query_guard.rules.measure_kinds import measure_kinds
from query_guard.rules.privacy_unit import privacy_unit
from query_guard.rules.public_domains import public_domains
from query_guard.rules.reserved_names import reserved_names
from query_guard.rules.safe_arithmetic import safe_arithmetic
from query_guard.rules.single_select import single_select
from query_guard.rules.split_aggregates import split_aggregates
from query_guard.rules.type_bounds import type_bounds
from query_guard.scenario import Scenario

Rule = Callable[[Draft], None]

#: The rules in the order they run, by name (each the module of the same name under
#: ``query_guard/rules/``, with its fixtures ``tests/fixtures/guard/<name>.sql``).
RULES: dict[str, Rule] = {
    "single_select": single_select,
    "limit_size": limit_size,
    "allow_nodes": allow_nodes,
    "reserved_names": reserved_names,
    "canonical_functions": canonical_functions,
    "flatten_subqueries": flatten_subqueries,
    "split_aggregates": split_aggregates,
    "dataset_scope": dataset_scope,
    "column_scope": column_scope,
    "join_on_unit": join_on_unit,
    "measure_kinds": measure_kinds,
    "privacy_unit": privacy_unit,
    "type_bounds": type_bounds,
    "safe_arithmetic": safe_arithmetic,
    "public_domains": public_domains,
    "clamp_values": clamp_values,
    "bound_contributions": bound_contributions,
}


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
    draft = parse(ctx)
    for rule in RULES.values():
        rule(draft)
    return _assemble(draft)


def _assemble(draft: Draft) -> QueryPlan:
    """The engine query and the plan from a draft every rule has run on."""
    rel, shape, bounding = draft.need("relation"), draft.need("shape"), draft.need("bounding")
    engine_keys, group_keys = _keys(draft)
    join = None
    if rel.join is not None:
        on: exp.Expr = exp.EQ(
            this=exp.column(rel.bases[0].unit, table=rel.bases[0].alias),
            expression=exp.column(rel.bases[1].unit, table=rel.bases[1].alias),
        )
        join = Join(rel.join.side, on, tuple(draft.right_filters))
    bases = [(b.info.name, b.alias) for b in rel.bases]
    built = build_engine_query(
        bases, join, draft.filters, engine_keys, shape.aggs, draft.values, bounding
    )
    l0 = bounding.max_partitions
    if group_keys and all(k.public_domain is not None for k in group_keys):
        l0 = min(l0, math.prod(len(k.public_domain or ()) for k in group_keys))
    measurements = _measurements(draft, built, l0)
    datasets = tuple(b.info.name for b in rel.bases)
    seeds = [b.info.bounding_seed for b in rel.bases]
    return QueryPlan(
        sql=draft.ctx.sql,
        engine_query=built.query,
        datasets=datasets,
        group_keys=tuple(group_keys),
        measurements=tuple(measurements),
        outputs=tuple(shape.outputs),
        having=cast(exp.Expression | None, shape.having),
        order_by=tuple(shape.order_by),
        limit=shape.limit,
        fingerprint=fingerprint(
            built.query,
            seeds,
            datasets,
            group_keys,
            measurements,
            shape.outputs,
            shape.having,
            shape.order_by,
            shape.limit,
        ),
        notes=_notes(draft, group_keys),
        max_partitions=max(1, l0),
        max_rows_per_partition=bounding.max_rows_per_partition,
        materialisation=_materialisation(draft, built),
    )


def _keys(draft: Draft) -> tuple[list[EngineKey], list[GroupKey]]:
    """Each group key as the engine computes it and as the plan releases it."""
    engine_keys, group_keys = [], []
    for key, expr, domain in zip(
        draft.need("shape").keys, draft.key_exprs, draft.domains, strict=True
    ):
        engine_keys.append(EngineKey(key.column, expr, domain))
        group_keys.append(GroupKey(key.name, key.column, domain, expr.sql("duckdb")))
    return engine_keys, group_keys


def _measurements(draft: Draft, built: EngineQueries, l0: int) -> list[Measurement]:
    bounding = draft.need("bounding")
    measurements = []
    for call in draft.need("shape").aggs:
        spec = draft.values[call.id]
        measurements.append(
            Measurement(
                id=call.id,
                kind=call.kind,  # type: ignore[arg-type]
                stats=built.stats[call.id],
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
    return measurements


def _materialisation(draft: Draft, built: EngineQueries) -> Materialisation | None:
    if built.keep_query is None or built.materialised_query is None:
        return None
    return Materialisation(
        dataset=draft.need("bounding").dataset,
        column=built.keep_column,
        keep_query=built.keep_query,
        materialised_query=built.materialised_query,
        keep_sql_duckdb=built.keep_sql,
    )


def _notes(draft: Draft, group_keys: list[GroupKey]) -> tuple[str, ...]:
    bounding = draft.need("bounding")
    notes = []
    if bounding.needed:
        notes.append(
            f"contributions bounded on {bounding.dataset}: at most {bounding.max_partitions}"
            f" groups and {bounding.max_rows_per_partition} rows per group per person"
        )
    for group_key in group_keys:
        if group_key.public_domain is None:
            notes.append(f"group key {group_key.name}: no public domain, DP partition selection")
    return tuple(notes)


__all__ = ["plan", "Catalog", "Scenario"]
