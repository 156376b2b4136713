"""Rule: every node of the query is on an allow-list of node types and functions.

Why an allow-list: DuckDB has hundreds of functions, and new versions add more (file
readers, HTTP, environment access, sleeping, erroring, exploding strings). Naming what
is *allowed* means an unknown construct is refused by default, never run by oversight.
Each refusal names the construct; the most common escapes get their own code
(window functions, table functions, files, recursive CTEs) so clients can explain them.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import NotAllowedError
from query_guard.positions import written_name

#: Clause and structure nodes, with the arguments each may carry (an allow-list of
#: arguments too: Select's ``qualify``, ``sample``, ``into``… are refused).
STRUCTURE_ARGS: Mapping[type[exp.Expression], frozenset[str]] = {
    exp.Select: frozenset(
        {"expressions", "from_", "joins", "where", "group", "having", "order", "limit", "with_",
         "distinct"}
    ),
    exp.From: frozenset({"this"}),
    exp.Where: frozenset({"this"}),
    exp.Group: frozenset({"expressions"}),
    exp.Having: frozenset({"this"}),
    exp.Order: frozenset({"expressions"}),
    exp.Ordered: frozenset({"this", "desc", "nulls_first"}),
    exp.Limit: frozenset({"expression"}),
    exp.With: frozenset({"expressions", "recursive"}),
    exp.CTE: frozenset({"this", "alias"}),
    exp.TableAlias: frozenset({"this"}),
    exp.Subquery: frozenset({"this", "alias"}),
    exp.Table: frozenset({"this", "alias", "db", "catalog"}),
    exp.Join: frozenset({"this", "on", "using", "side", "kind"}),
    exp.Column: frozenset({"this", "table"}),
    exp.Identifier: frozenset({"this", "quoted"}),
    exp.Star: frozenset(),
    exp.Alias: frozenset({"this", "alias"}),
    exp.Distinct: frozenset({"expressions"}),
    exp.DataType: frozenset({"this", "expressions", "nested"}),
    exp.DataTypeParam: frozenset({"this"}),
    exp.Var: frozenset({"this"}),
    exp.Array: frozenset({"expressions", "value_constructor"}),
    exp.WithinGroup: frozenset({"this", "expression"}),
    exp.Literal: frozenset({"this", "is_string"}),
    exp.Boolean: frozenset({"this"}),
    exp.Null: frozenset(),
}

#: Scalar operators and functions that cannot raise on data once the guard has made
#: division safe and casts TRY_CASTs (see ``rules/safe_arithmetic.py``).
SCALARS: frozenset[type[exp.Expression]] = frozenset(
    {
        exp.Paren, exp.Neg, exp.Not, exp.And, exp.Or,
        exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between,
        exp.Like, exp.ILike,
        exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Pow,
        exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Cast, exp.TryCast,
        exp.Floor, exp.Ceil, exp.Round, exp.Abs, exp.Sqrt, exp.Least, exp.Greatest, exp.Pi,
        exp.Year, exp.Quarter, exp.Month, exp.Day, exp.DayOfWeek, exp.DayOfYear, exp.Week,
        exp.WeekOfYear, exp.Extract, exp.TimestampTrunc, exp.DateTrunc,
        exp.Upper, exp.Lower, exp.Length, exp.Substring, exp.Trim, exp.DPipe, exp.Concat,
    }
)

#: The aggregates a researcher may write (mapped to measurement kinds later).
AGGREGATES: frozenset[type[exp.Expression]] = frozenset(
    {
        exp.Count, exp.Sum, exp.Avg, exp.Variance, exp.VariancePop, exp.Stddev,
        exp.StddevPop, exp.StddevSamp, exp.Median, exp.PercentileCont, exp.Quantile,
    }
)

#: DuckDB spellings that sqlglot leaves as ``Anonymous``; canonicalised by
#: ``rules/canonical_functions.py``.
ANONYMOUS: frozenset[str] = frozenset({"var", "date_part", "datepart", "quantile_cont"})

#: Date parts for EXTRACT / date_part / date_trunc (dates only: no epoch, no time).
DATE_PARTS: frozenset[str] = frozenset(
    {"YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "DOW", "DAYOFWEEK", "DOY", "DAYOFYEAR"}
)

CAST_TYPES: frozenset[exp.DType] = frozenset(
    {
        exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT,
        exp.DType.FLOAT, exp.DType.DOUBLE, exp.DType.DECIMAL, exp.DType.TEXT,
        exp.DType.VARCHAR, exp.DType.CHAR, exp.DType.DATE, exp.DType.BOOLEAN,
    }
)

_CLAUSE = {"sample": "SAMPLE", "columns": "column list in alias", "windows": "WINDOW",
           "laterals": "LATERAL", "pivots": "PIVOT", "settings": "SETTINGS"}

_TABLE_FUNCTION_HINT = "a table function or file reader cannot be used as a table"


def allow_nodes(tree: exp.Expression, ctx: Context) -> None:
    for node in tree.walk():
        _check(node, ctx)


def _check(node: exp.Expression, ctx: Context) -> None:
    kind = type(node)
    if isinstance(node, exp.Window):
        inner = node.this
        name = (written_name(ctx.sql, inner) or _func_name(inner)) if isinstance(
            inner, exp.Func) else _construct(inner)
        ctx.refuse(
            NotAllowedError,
            f"window function {name}(…) OVER (…): window functions are not allowed in"
            " researcher SQL",
            inner,
            code="window_function",
        )
    if isinstance(node, (exp.Union, exp.Intersect, exp.Except)):
        ctx.refuse(
            NotAllowedError,
            f"set operation {node.key.upper()}: only a single SELECT is allowed",
            node,
            code="set_operation",
            keyword=node.key.upper(),
        )
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
        name = written_name(ctx.sql, node) or _func_name(node)
        ctx.refuse(
            NotAllowedError,
            f"function {name}(): not on the allow-list of functions",
            node,
            code="function_not_allowed",
        )
    ctx.refuse(
        NotAllowedError,
        f"{_construct(node)} {node.sql('duckdb')[:40]}: this construct is not on the"
        " allow-list",
        node,
    )


def _check_args(node: exp.Expression, allowed: frozenset[str], ctx: Context) -> None:
    for name, value in node.args.items():
        if name in allowed or value in (None, False, [], ""):
            continue
        if isinstance(node, exp.With) and name == "recursive":
            continue
        clause = str(value).upper() if name in ("method", "kind") else _CLAUSE.get(
            name, name.rstrip("_").upper())
        ctx.refuse(
            NotAllowedError,
            f"{clause} in {node.key.upper()}: this clause is not allowed",
            node,
            keyword=clause.split()[0],
        )


def _check_structure(node: exp.Expression, ctx: Context) -> None:
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
            name = (written_name(ctx.sql, target) or _func_name(target)) if isinstance(
                target, exp.Func) else _construct(target)
            ctx.refuse(
                NotAllowedError,
                f"table function {name}(): {_TABLE_FUNCTION_HINT}",
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
            ctx.refuse(NotAllowedError, f"keyword {node.name}: not allowed here", node,
                       keyword=node.name)
        if node.name.upper() not in DATE_PARTS:
            ctx.refuse(
                NotAllowedError,
                f"date part {node.name}: only {', '.join(sorted(DATE_PARTS))} are allowed",
                parent,
                keyword=node.name,
            )
    elif isinstance(node, exp.Array):
        if not isinstance(parent, (exp.PercentileCont, exp.Quantile, exp.Anonymous)):
            ctx.refuse(NotAllowedError, "list literal: lists are allowed only as quantile"
                       " fractions", node)
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
        name = to.sql("duckdb") if isinstance(to, exp.Expression) else "?"
        ctx.refuse(
            NotAllowedError,
            f"CAST to {name}: only numeric, text, date and boolean types are allowed",
            node,
        )


def _func_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return node.key


def _construct(node: exp.Expression) -> str:
    return node.key.upper().replace("_", " ")
