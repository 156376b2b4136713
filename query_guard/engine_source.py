"""The row source shared by the engine query and the keep query: datasets, the join, the
filters, with every researcher expression made total (``TRY``).

Apart from :mod:`query_guard.engine_query` because the contribution-bounding CTEs
(:mod:`query_guard.bounding_ctes`) read the same rows through it, unfiltered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from query_guard.rules.bound_contributions import Bounding


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


def source(
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


def clean(query: exp.Select) -> exp.Select:
    """Strip comments: researchers' text must not reach the SQL the engine runs."""
    for node in query.walk():
        node.comments = None
    return query


def row_hash(args: list[exp.Expr]) -> exp.Expr:
    """DuckDB's 64-bit ``HASH(args…)`` (seeded by a literal among ``args``)."""
    return exp.Anonymous(this="HASH", expressions=args)
