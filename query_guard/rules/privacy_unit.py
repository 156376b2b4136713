"""Rule: the privacy unit appears only in COUNT(DISTINCT unit) and the join condition.

Why: the unit (e.g. ``person_id``) identifies a person. Filtering on it
(``WHERE person_id = 42``), grouping by it, or computing on it would let a query
isolate one person's rows; the bounding pass, not the researcher, decides how units
are used. Passing it through a CTE unchanged is allowed so that the outer query can
count distinct persons or join.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import PrivacyUnitError
from query_guard.relation import BaseTable, is_unit


def forbid_unit(expr: exp.Expr, bases: list[BaseTable], ctx: Context, where: str) -> None:
    for node in expr.find_all(exp.Column):
        if is_unit(node, bases):
            ctx.refuse(
                PrivacyUnitError,
                f"privacy unit {node.name} in {where}: the unit may only be used as"
                " COUNT(DISTINCT unit) or as the join key",
                node,
            )
