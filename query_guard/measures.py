"""Aggregate calls → measurement calls (:func:`make_call`), checked as they are met.

Applied by the aggregate split to each aggregate in the select list, HAVING and ORDER
BY; the reasons are ``rules/measure_kinds.py``'s, whose step re-checks the calls.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import NotAllowedError, ScopeError
from query_guard.name_checks import refuse_unit_exposure
from query_guard.positions import show
from query_guard.relation import Relation, is_unit
from query_guard.resolver import Resolver, has_aggregate
from query_guard.shape import AggCall

KIND_OF: dict[type[exp.Expr], str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "mean",
    exp.Variance: "variance",
    exp.VariancePop: "variance",
    exp.Stddev: "stddev",
    exp.StddevSamp: "stddev",
    exp.StddevPop: "stddev",
    exp.Median: "quantile",
    exp.PercentileCont: "quantile",
}

MAX_QUANTILES = 20


def make_call(
    node: exp.Expr, resolver: Resolver, rel: Relation, ctx: Context, index: int
) -> AggCall:
    """Aggregate ``node`` as measurement ``m<index>``, or a refusal. Over 60 lines: one
    walk through the aggregate's parts (kind, nesting, argument, DISTINCT, fractions,
    scenario), each refused in the order a reader meets them."""
    kind = KIND_OF.get(type(node))
    if kind is None:
        ctx.refuse(
            NotAllowedError,
            f"aggregate {node.key.upper()}: not allowed",
            node,
            code="function_not_allowed",
        )
    for child in node.iter_expressions():
        inner = has_aggregate(child)
        if inner is not None:
            ctx.refuse(
                NotAllowedError,
                f"aggregate {show(inner, 40)} inside {node.key.upper()}(): nested"
                " aggregates are not allowed",
                inner,
                code="nested_aggregate",
            )
    name = node.key.upper()
    arg: exp.Expr | None = None
    quantiles: tuple[float, ...] = ()
    target = node.this
    if isinstance(node, exp.Count):
        if node.expressions:
            ctx.refuse(NotAllowedError, "COUNT with several arguments", node)
        if target is None or isinstance(target, exp.Star):
            arg = None
        elif isinstance(target, exp.Distinct):
            values = target.expressions
            flat = resolver.flatten(values[0], rel) if len(values) == 1 else None
            if flat is None or not is_unit(flat, rel.bases):
                ctx.refuse(
                    NotAllowedError,
                    f"{show(node, 60)}: COUNT(DISTINCT …) is allowed only of the privacy unit",
                    target,
                )
            kind = "count_distinct"
            arg = flat
        else:
            arg = resolver.flatten(target, rel)
            refuse_unit_exposure(arg, rel.bases, ctx, "COUNT(…) (use COUNT(*) or COUNT(DISTINCT unit))")
    else:
        if isinstance(target, exp.Distinct):
            ctx.refuse(
                NotAllowedError,
                f"{name}({show(target, 50)}): DISTINCT is allowed only as COUNT(DISTINCT unit)",
                target,
            )
        if target is None:
            ctx.refuse(NotAllowedError, f"{name}(): needs a value", node)
        arg = resolver.flatten(target, rel)
        refuse_unit_exposure(arg, rel.bases, ctx, f"{name}(…)")
        if isinstance(node, exp.Median):
            quantiles = (0.5,)
        elif isinstance(node, exp.PercentileCont):
            quantiles = _fractions(node.expression, node, ctx)
    if not ctx.scenario.allows_aggregate(kind):
        ctx.refuse(
            ScopeError,
            f"aggregate {name} ({kind}): not among the aggregates approved for this scenario"
            " (第十五条)",
            node,
        )
    ddof = 0 if isinstance(node, (exp.VariancePop, exp.StddevPop)) else 1
    canonical = f"{kind}|{arg.sql('duckdb') if arg is not None else '*'}|{quantiles}|{ddof}"
    return AggCall(f"m{index}", kind, node, arg, quantiles, canonical, ddof)


def _fractions(node: exp.Expr | None, parent: exp.Expr, ctx: Context) -> tuple[float, ...]:
    values = node.expressions if isinstance(node, exp.Array) else [node]
    if not values or len(values) > MAX_QUANTILES:
        ctx.refuse(
            NotAllowedError, f"quantile fractions: give 1 to {MAX_QUANTILES} constants", parent
        )
    fractions = []
    for value in values:
        if not (isinstance(value, exp.Literal) and not value.is_string):
            text = value.sql("duckdb")[:40] if value is not None else "?"
            ctx.refuse(
                NotAllowedError,
                f"quantile fraction {text}: must be a constant between 0 and 1",
                value if value is not None else parent,
            )
        q = float(str(value.this))
        if not 0.0 <= q <= 1.0:
            ctx.refuse(NotAllowedError, f"quantile fraction {q:g}: must be between 0 and 1", value)
        fractions.append(q)
    return tuple(fractions)
