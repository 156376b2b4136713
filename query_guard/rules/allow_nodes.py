"""Rule: every node of the query is on an allow-list of node types and functions.

Why an allow-list: DuckDB has hundreds of functions, and new versions add more (file
readers, HTTP, environment access, sleeping, erroring, exploding strings). Naming what
is *allowed* means an unknown construct is refused by default, never run by oversight.
Each refusal names the construct; the most common escapes get their own code
(window functions, table functions, files, recursive CTEs) so clients can explain them.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.allow_lists import (
    AGGREGATES,
    ANONYMOUS,
    CAST_TYPES,
    DATE_PARTS,
    SCALARS,
    STRUCTURE_ARGS,
)
from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.errors import NotAllowedError
from query_guard.positions import written_name
from query_guard.rules.single_select import SET_OPERATIONS, refuse_set_operation

_CLAUSE = {
    "sample": "SAMPLE",
    "columns": "column list in alias",
    "windows": "WINDOW",
    "laterals": "LATERAL",
    "pivots": "PIVOT",
    "settings": "SETTINGS",
}

_TABLE_FUNCTION_HINT = "a table function or file reader cannot be used as a table"


def allow_nodes(draft: Draft) -> None:
    tree, ctx = draft.need("select"), draft.ctx
    for node in tree.walk():
        _check(node, ctx)


def _check(node: exp.Expr, ctx: Context) -> None:
    """Refuse ``node`` unless its type is allowed; about 60 lines as one ordered list of
    refusals, the most specific codes (window, table function, file) first."""
    kind = type(node)
    if isinstance(node, exp.Window):
        inner = node.this
        ctx.refuse(
            NotAllowedError,
            f"window function {_callee(inner, ctx)}(…) OVER (…): window functions are not"
            " allowed in researcher SQL",
            inner,
            code="window_function",
        )
    if isinstance(node, SET_OPERATIONS):
        refuse_set_operation(node, ctx)
    if isinstance(node, (exp.IgnoreNulls, exp.RespectNulls)) and isinstance(node.this, exp.Func):
        node = node.this  # ANY_VALUE(x) IGNORE NULLS: judge the function inside
        kind = type(node)
        if kind in SCALARS or kind in AGGREGATES:
            ctx.refuse(NotAllowedError, "IGNORE/RESPECT NULLS: not allowed", node)
    if kind in STRUCTURE_ARGS:
        _check_args(node, STRUCTURE_ARGS[kind], ctx)
        _check_structure(node, ctx)
        return
    if kind in SCALARS or kind in AGGREGATES:
        if isinstance(node, (exp.Cast, exp.TryCast)):
            _check_cast(node, ctx)
        return
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name in ANONYMOUS:
            return
        ctx.refuse(
            NotAllowedError,
            f"function {name}(): not on the allow-list of functions",
            node,
            code="function_not_allowed",
        )
    if isinstance(node, exp.Func):
        ctx.refuse(
            NotAllowedError,
            f"function {_callee(node, ctx)}(): not on the allow-list of functions",
            node,
            code="function_not_allowed",
        )
    ctx.refuse(
        NotAllowedError,
        f"{_construct(node)} {node.sql('duckdb')[:40]}: this construct is not on the allow-list",
        node,
    )


def _check_args(node: exp.Expr, allowed: frozenset[str], ctx: Context) -> None:
    for name, value in node.args.items():
        if name in allowed or value in (None, False, [], ""):
            continue
        if isinstance(node, exp.With) and name == "recursive":
            continue
        clause = (
            str(value).upper()
            if name in ("method", "kind")
            else _CLAUSE.get(name, name.rstrip("_").upper())
        )
        ctx.refuse(
            NotAllowedError,
            f"{clause} in {node.key.upper()}: this clause is not allowed",
            node,
            keyword=clause.split()[0],
        )


def _check_structure(node: exp.Expr, ctx: Context) -> None:
    """Refuse a structural node (WITH, FROM item, JOIN, clause) in a place it may not be;
    over 60 lines as one ordered list of refusals, each with its own message and code."""
    parent = node.parent
    if isinstance(node, exp.With) and node.args.get("recursive"):
        ctx.refuse(
            NotAllowedError,
            "WITH RECURSIVE: recursive CTEs are not allowed",
            node,
            code="recursive_cte",
        )
    elif isinstance(node, exp.Table):
        target = node.this
        if not isinstance(target, exp.Identifier):
            ctx.refuse(
                NotAllowedError,
                f"table function {_callee(target, ctx)}(): {_TABLE_FUNCTION_HINT}",
                node,
                code="table_function",
            )
        if any(isinstance(p, exp.Identifier) and p.quoted for p in node.parts):
            ctx.refuse(
                NotAllowedError,
                f"quoted table name {node.name!r}: DuckDB reads a quoted name as a file path;"
                " write the dataset name unquoted",
                node,
                code="file_access",
            )
    elif isinstance(node, exp.Star):
        if not isinstance(parent, exp.Count):
            ctx.refuse(
                NotAllowedError,
                "* outside COUNT(*): name the columns you need (a star would include"
                " identifier and unit columns)",
                node,
            )
    elif isinstance(node, exp.Select):
        if parent is not None and not isinstance(parent, (exp.Subquery, exp.CTE)):
            ctx.refuse(
                NotAllowedError,
                f"subquery ({node.sql('duckdb')[:50]}) used as a value: subqueries are allowed"
                " only in FROM and WITH",
                node,
            )
    elif isinstance(node, exp.Subquery):
        if not isinstance(parent, (exp.From, exp.Join)):
            ctx.refuse(
                NotAllowedError,
                f"subquery {node.sql('duckdb')[:50]} used as a value: subqueries are allowed"
                " only in FROM and WITH",
                node,
            )
    elif isinstance(node, exp.Var):
        if not isinstance(parent, (exp.Extract, exp.TimestampTrunc, exp.DateTrunc)):
            ctx.refuse(
                NotAllowedError, f"keyword {node.name}: not allowed here", node, keyword=node.name
            )
        if node.name.upper() not in DATE_PARTS:
            ctx.refuse(
                NotAllowedError,
                f"date part {node.name}: only {', '.join(sorted(DATE_PARTS))} are allowed",
                parent,
                keyword=node.name,
            )
    elif isinstance(node, exp.Array):
        if not isinstance(parent, (exp.PercentileCont, exp.Quantile, exp.Anonymous)):
            ctx.refuse(
                NotAllowedError, "list literal: lists are allowed only as quantile fractions", node
            )
    elif isinstance(node, exp.WithinGroup):
        if not isinstance(node.this, exp.PercentileCont):
            ctx.refuse(NotAllowedError, "WITHIN GROUP: allowed only with PERCENTILE_CONT", node)
    elif isinstance(node, exp.Distinct):
        if not isinstance(parent, (exp.Count, exp.Select, exp.Sum, exp.Avg)):
            ctx.refuse(NotAllowedError, "DISTINCT: allowed only as COUNT(DISTINCT unit)", node)
    elif isinstance(node, exp.Literal) and not node.is_string:
        text = str(node.this)
        if len(text) > 40:
            ctx.refuse(NotAllowedError, "numeric literal of more than 40 digits", node)


def _check_cast(node: exp.Cast, ctx: Context) -> None:
    to = node.args.get("to")
    if not isinstance(to, exp.DataType) or to.this not in CAST_TYPES:
        name = to.sql("duckdb") if isinstance(to, exp.Expr) else "?"
        ctx.refuse(
            NotAllowedError,
            f"CAST to {name}: only numeric, text, date and boolean types are allowed",
            node,
        )


def _callee(node: exp.Expr, ctx: Context) -> str:
    """What a refusal calls a function as written (else its canonical name), or the
    construct standing where a function was expected."""
    if isinstance(node, exp.Func):
        return written_name(ctx.sql, node) or _func_name(node)
    return _construct(node)


def _func_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return node.key


def _construct(node: exp.Expr) -> str:
    return node.key.upper().replace("_", " ")
