"""The analysed shape of the outer aggregate query, between the rules.

``rules/split_aggregates.py`` produces it from the researcher's SELECT; the clamping,
domain and bounding rules turn it into measurements and the engine query.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from query_guard.plan import OrderItem, OutputColumn
from query_guard.relation import Relation


@dataclass
class KeySpec:
    """One GROUP BY key, flattened to base columns."""

    column: str  # "__g0"
    expr: exp.Expr  # over base columns
    node: exp.Expr  # as written, for positions
    name: str  # released column name
    canonical: str


@dataclass
class AggCall:
    """One aggregate call (deduplicated), before clamping."""

    id: str  # "m0"
    kind: str
    node: exp.Expr
    arg: exp.Expr | None  # flattened argument; None for COUNT(*)
    quantiles: tuple[float, ...] = ()
    canonical: str = ""
    ddof: int = 1


@dataclass
class Shape:
    relation: Relation
    keys: list[KeySpec] = field(default_factory=list)
    aggs: list[AggCall] = field(default_factory=list)
    outputs: list[OutputColumn] = field(default_factory=list)
    having: exp.Expr | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None


def unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        result.append(name)
    return result


def int_literal(node: exp.Literal) -> int | None:
    try:
        return int(str(node.this))
    except ValueError:
        return None
