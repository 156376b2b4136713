"""The guard's allow-lists: node types, their arguments, functions, casts, date parts.

Kept apart from the rule (``rules/allow_nodes.py``) so reviewers can read exactly what is
allowed in one place. Anything not listed here is refused.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

#: Clause and structure nodes, with the arguments each may carry (an allow-list of
#: arguments too: Select's ``qualify``, ``sample``, ``into``… are refused).
STRUCTURE_ARGS: Mapping[type[exp.Expr], frozenset[str]] = {
    exp.Select: frozenset(
        {
            "expressions",
            "from_",
            "joins",
            "where",
            "group",
            "having",
            "order",
            "limit",
            "with_",
            "distinct",
        }
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

#: Groups of the scalars below, named once for every module that treats a group alike.
COMPARISONS: tuple[type[exp.Expr], ...] = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
#: The operators that make a true/false value of other values (AND, OR, NOT combine them).
PREDICATES: tuple[type[exp.Expr], ...] = (
    *COMPARISONS,
    exp.Is,
    exp.In,
    exp.Between,
    exp.Like,
    exp.ILike,
)
ARITHMETIC_OPERATORS: tuple[type[exp.Expr], ...] = (
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.IntDiv,
    exp.Mod,
    exp.Pow,
)

#: Scalar operators and functions that cannot raise on data once the guard has made
#: division safe and casts TRY_CASTs (see ``rules/safe_arithmetic.py``).
SCALARS: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Paren,
        exp.Neg,
        exp.Not,
        exp.And,
        exp.Or,
        *PREDICATES,
        *ARITHMETIC_OPERATORS,
        exp.Case,
        exp.If,
        exp.Coalesce,
        exp.Nullif,
        exp.Cast,
        exp.TryCast,
        exp.Floor,
        exp.Ceil,
        exp.Round,
        exp.Abs,
        exp.Sqrt,
        exp.Least,
        exp.Greatest,
        exp.Pi,
        exp.Year,
        exp.Quarter,
        exp.Month,
        exp.Day,
        exp.DayOfWeek,
        exp.DayOfYear,
        exp.Week,
        exp.WeekOfYear,
        exp.Extract,
        exp.TimestampTrunc,
        exp.DateTrunc,
        exp.Upper,
        exp.Lower,
        exp.Length,
        exp.Substring,
        exp.Trim,
        exp.DPipe,
        exp.Concat,
    }
)

#: The aggregates a researcher may write (mapped to measurement kinds later).
AGGREGATES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Count,
        exp.Sum,
        exp.Avg,
        exp.Variance,
        exp.VariancePop,
        exp.Stddev,
        exp.StddevPop,
        exp.StddevSamp,
        exp.Median,
        exp.PercentileCont,
        exp.Quantile,
    }
)

#: DuckDB spellings that sqlglot leaves as ``Anonymous``; canonicalised by
#: ``rules/canonical_functions.py``.
ANONYMOUS: frozenset[str] = frozenset({"var", "date_part", "datepart", "quantile_cont"})

#: Date parts for EXTRACT / date_part / date_trunc (dates only: no epoch, no time).
DATE_PARTS: frozenset[str] = frozenset(
    {"YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "DOW", "DAYOFWEEK", "DOY", "DAYOFYEAR"}
)

#: Date-part functions (year(d), month(d), …) and the EXTRACT part each one means; shared
#: by the bounds rule and the evaluator so both read a function the same way.
DATE_PART_OF: Mapping[type[exp.Expr], str] = {
    exp.Year: "YEAR",
    exp.Quarter: "QUARTER",
    exp.Month: "MONTH",
    exp.Day: "DAY",
    exp.DayOfWeek: "DOW",
    exp.DayOfYear: "DOY",
    exp.Week: "WEEK",
    exp.WeekOfYear: "WEEK",
}

CAST_TYPES: frozenset[exp.DType] = frozenset(
    {
        exp.DType.TINYINT,
        exp.DType.SMALLINT,
        exp.DType.INT,
        exp.DType.BIGINT,
        exp.DType.FLOAT,
        exp.DType.DOUBLE,
        exp.DType.DECIMAL,
        exp.DType.TEXT,
        exp.DType.VARCHAR,
        exp.DType.CHAR,
        exp.DType.DATE,
        exp.DType.BOOLEAN,
    }
)
