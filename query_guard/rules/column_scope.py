"""Rule: every column is in the scenario, and no identifier column is used anywhere.

Why: the approval lists the "information items" (第十四条) a researcher may use for the
approved purpose (第十五条); any other column is out of scope. Identifier columns (name,
ID number, phone) are refused wherever they appear — select list, WHERE, GROUP BY, join,
inside functions such as ``length(name)`` or ``name LIKE 'A%'`` — because even an
aggregate over them can single a person out.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.catalog import ColumnInfo
from query_guard.context import Context
from query_guard.errors import IdentifierColumnError, ScopeError
from query_guard.relation import BaseTable, column_info


def column_scope(base: BaseTable, name: str, node: exp.Expr, ctx: Context) -> ColumnInfo:
    dataset = base.info.name.lower()
    info = column_info(base, name)
    if info is None:
        ctx.refuse(
            ScopeError,
            f"column {name}: not a column of dataset {dataset} in the approved scenario (第十五条)",
            node,
        )
    if info.is_identifier:
        ctx.refuse(
            IdentifierColumnError,
            f"identifier column {dataset}.{info.name}: identifier columns cannot be used"
            " anywhere in a query",
            node,
        )
    if name.lower() != base.unit and not ctx.scenario.allows_column(dataset, info.name):
        ctx.refuse(
            ScopeError,
            f"column {dataset}.{info.name}: not among the columns approved for this scenario"
            " (第十五条)",
            node,
        )
    return info
