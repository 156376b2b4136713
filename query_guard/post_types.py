"""Types of post-processing expressions (HAVING, derived outputs, ORDER BY expressions).

These run over released values (noisy aggregates are numbers, group keys are their
released values: dates as ISO text). DuckDB would convert ``COUNT(*) > 'x'`` or
``SUM(income) + district`` per row, so whether it raises depends on how many groups
were released: decided here instead, at plan time (issue 12, finding 2; the sandbox's
post-processing is also total, this only refuses what could never work).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from query_guard.allow_lists import ARITHMETIC_OPERATORS, PREDICATES
from query_guard.context import Context
from query_guard.errors import ImplicitCastError
from query_guard.positions import show
from query_guard.total_expressions import operand_groups
from query_guard.type_info import TEXT_TYPES

_BOOL = (*PREDICATES, exp.And, exp.Or, exp.Not)
_TEXT = (exp.Upper, exp.Lower, exp.Trim, exp.Substring, exp.DPipe, exp.Concat)
_NUMERIC_OPERANDS = (
    *ARITHMETIC_OPERATORS,
    exp.Neg,
    exp.Abs,
    exp.Round,
    exp.Floor,
    exp.Ceil,
    exp.Sqrt,
)


def check_post(expr: exp.Expr, columns: Mapping[str, str], ctx: Context) -> None:
    """Refuse an operand the engine would convert between type families.

    ``columns``: released column name → ``numeric`` | ``text`` | ``bool`` (group keys;
    every other name is a noisy aggregate, a number).
    """
    for node in expr.walk():
        for group in operand_groups(node):
            kinds = [(n, _kind(n, columns)) for n in group if n is not None]
            present = {k for _, k in kinds if k != "null"}
            if len(present) > 1:
                culprit = next((n for n, k in kinds if isinstance(_bare(n), exp.Literal)), node)
                ctx.refuse(
                    ImplicitCastError,
                    f"{show(culprit, 40)} in {show(node, 50)}: mixes"
                    f" {' and '.join(sorted(present))} values over released columns",
                    culprit,
                )
        if isinstance(node, _NUMERIC_OPERANDS):
            operand = node.this
            for child in (operand, node.args.get("expression")):
                if isinstance(child, exp.Expr) and _kind(child, columns) not in (
                    "numeric",
                    "null",
                ):
                    ctx.refuse(
                        ImplicitCastError,
                        f"{show(child, 40)}: {node.key.upper()} needs a number",
                        child,
                    )


def _bare(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _kind(node: exp.Expr, columns: Mapping[str, str]) -> str:
    node = _bare(node)
    if isinstance(node, exp.Literal):
        return "text" if node.is_string else "numeric"
    if isinstance(node, exp.Boolean) or isinstance(node, _BOOL):
        return "bool"
    if isinstance(node, exp.Null):
        return "null"
    if isinstance(node, exp.Column):
        return columns.get(node.name, "numeric")
    if isinstance(node, _TEXT):
        return "text"
    if isinstance(node, (exp.Cast, exp.TryCast)):
        to = node.to.this
        if to in TEXT_TYPES:
            return "text"
        if to == exp.DType.BOOLEAN:
            return "bool"
        if to == exp.DType.DATE:
            return "date"
        return "numeric"
    groups = operand_groups(node)
    if groups and isinstance(node, (exp.Coalesce, exp.Least, exp.Greatest, exp.Nullif)):
        kinds = {_kind(n, columns) for n in groups[0]} - {"null"}
        return kinds.pop() if len(kinds) == 1 else "numeric"
    if groups and isinstance(node, (exp.Case, exp.If)):
        kinds = {_kind(n, columns) for n in groups[0]} - {"null"}
        return kinds.pop() if len(kinds) == 1 else "numeric"
    return "numeric"
