"""Engine-safe rewrites of row-level and post-processing expressions.

Shared: ``rules/safe_arithmetic.py`` rewrites the filters and keys with
:func:`safe_arithmetic` (and says why and how no expression can raise), the value
clamping rewrites aggregate arguments, the aggregate split rewrites post-processing
(:func:`safe_post`), and the post-processing type check reads :func:`operand_groups`.
"""

from __future__ import annotations

import math

from sqlglot import exp

from query_guard.allow_lists import ARITHMETIC_OPERATORS, COMPARISONS, DATE_PART_OF
from query_guard.errors import ImplicitCastError
from query_guard.literals import FIRST_DAY, LAST_DAY, date_literal, is_number, is_string, parse_date
from query_guard.type_info import NUMERIC
from query_guard.typer import Typer

ARITHMETIC = (*ARITHMETIC_OPERATORS, exp.Neg, exp.Abs)
DIVISIONS = (exp.Div, exp.IntDiv, exp.Mod)


def safe_arithmetic(expr: exp.Expr, typer: Typer) -> exp.Expr:
    """An engine-safe copy of a flattened, type-checked row-level expression."""
    return _rewrite(expr.copy(), typer)


def _rewrite(node: exp.Expr, typer: Typer) -> exp.Expr:
    if isinstance(node, exp.Neg) and is_number(node.this):
        return _negative_literal(node.this)
    if isinstance(node, ARITHMETIC):
        date_sub = isinstance(node, exp.Sub) and typer.infer(node.this).type == "date"
        children = [node.args.get(k) for k in ("this", "expression")]
        all_literal = all(is_number(c) for c in children if c is not None)
        for key, child in zip(("this", "expression"), children, strict=True):
            if isinstance(child, exp.Expr):
                numeric = not date_sub and typer.infer(child).type in NUMERIC
                new = _rewrite(child, typer)
                # A literal next to a DOUBLE operand makes DOUBLE arithmetic already.
                skip = _is_double(new) or (is_number(new) and not all_literal)
                if numeric and not skip:
                    new = to_double(new)
                node.set(key, new)
        if date_sub:
            # SECURITY: BIGINT days; widened so that arithmetic on it cannot overflow.
            return to_double(node)
        if isinstance(node, exp.IntDiv):
            # DuckDB's ``//`` truncates integers but is plain division on DOUBLE.
            node = exp.Trunc(this=exp.Div(this=node.this, expression=node.expression))
            return safe_divide(node, node.this.expression)
        if isinstance(node, DIVISIONS):
            return safe_divide(node, node.expression)
        return node
    _type_date_literals(node, typer)
    numeric_operand = isinstance(node, exp.Round) and typer.infer(node.this).type in NUMERIC
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expr):
            node.set(key, _rewrite(value, typer))
        elif isinstance(value, list):
            node.set(key, [_rewrite(v, typer) if isinstance(v, exp.Expr) else v for v in value])
    if numeric_operand and not _is_double(node.this):
        node.set("this", to_double(node.this))  # ROUND(BIGINT, -n) overflows in DuckDB
    _type_null_argument(node)
    if isinstance(node, (exp.Cast, exp.TryCast)) and node.to.this == exp.DType.DECIMAL:
        # A DECIMAL(w, s) value meets other values in a common DECIMAL type, where a value
        # that does not fit raises row by row (``CAST(1 AS DECIMAL(38,37)) = age`` fails only
        # where age ≥ 10: an oracle). The value is rounded to s places, then used as DOUBLE.
        return exp.TryCast(this=exp.TryCast(this=node.this, to=node.to), to=exp.DataType.build("DOUBLE"))
    if type(node) is exp.Cast:
        return exp.TryCast(this=node.this, to=node.to)
    if isinstance(node, (exp.DateTrunc, exp.TimestampTrunc)):
        return _safe_date_trunc(node)
    return node


#: Functions whose NULL argument DuckDB cannot bind (several overloads): typed NULL.
_NULL_ARGUMENT = {
    **{kind: ("this", "DATE") for kind in DATE_PART_OF},
    exp.Extract: ("expression", "DATE"),
    exp.DateTrunc: ("this", "DATE"),
    exp.TimestampTrunc: ("this", "DATE"),
    exp.Upper: ("this", "VARCHAR"),
    exp.Lower: ("this", "VARCHAR"),
    exp.Trim: ("this", "VARCHAR"),
    exp.Length: ("this", "VARCHAR"),
    exp.Substring: ("this", "VARCHAR"),
    exp.Floor: ("this", "DOUBLE"),
    exp.Ceil: ("this", "DOUBLE"),
    exp.Round: ("this", "DOUBLE"),
    exp.Sqrt: ("this", "DOUBLE"),
}


def _type_null_argument(node: exp.Expr) -> None:
    """``year(NULL)`` is a binder error in DuckDB; ``year(CAST(NULL AS DATE))`` is NULL."""
    spec = _NULL_ARGUMENT.get(type(node))
    if spec is None:
        return
    key, kind = spec
    if isinstance(_unparen_opt(node.args.get(key)), exp.Null):
        node.set(key, exp.TryCast(this=exp.Null(), to=exp.DataType.build(kind)))


def _unparen_opt(node: object) -> object:
    return _unparen(node) if isinstance(node, exp.Expr) else node


def _is_double(node: exp.Expr) -> bool:
    """Already DOUBLE arithmetic (the rewritten operators), or widened to DOUBLE."""
    if isinstance(node, exp.TryCast):
        return node.to.this == exp.DType.DOUBLE
    if isinstance(node, exp.Case) and isinstance(node.args.get("default"), ARITHMETIC):
        return True  # a guarded division
    return isinstance(node, ARITHMETIC)


def _negative_literal(literal: exp.Expr) -> exp.Expr:
    text = str(literal.this) if isinstance(literal, exp.Literal) else literal.sql()
    if isinstance(literal, exp.Neg):  # - -5
        return _negative_literal(literal.this).this  # type: ignore[return-value]
    return exp.Literal.number(text[1:] if text.startswith("-") else f"-{text}")


def operand_groups(node: exp.Expr) -> list[list[exp.Expr]]:
    """The operands the engine brings to one type (as ``type_bounds`` checks them)."""
    if isinstance(node, (*COMPARISONS, exp.Nullif)):
        return [[node.this, node.expression]]
    if isinstance(node, (exp.In, exp.Least, exp.Greatest, exp.Coalesce)):
        return [[node.this, *node.expressions]]
    if isinstance(node, exp.Between):
        return [[node.this, node.args["low"], node.args["high"]]]
    if isinstance(node, exp.If) and not isinstance(node.parent, exp.Case):
        return [[b for b in (node.args.get("true"), node.args.get("false")) if b is not None]]
    if isinstance(node, exp.Case):
        ifs = node.args.get("ifs") or []
        results = [b.args["true"] for b in ifs]
        if node.args.get("default") is not None:
            results.append(node.args["default"])
        groups = [results]
        if node.this is not None:
            groups.append([node.this, *(b.this for b in ifs)])
        return groups
    return []


def _type_date_literals(node: exp.Expr, typer: Typer) -> None:
    """Text literals among date operands → typed DATE literals, read at plan time."""
    for group in operand_groups(node):
        bare = [_unparen(n) for n in group if n is not None]
        if not any(not is_string(n) and typer.infer(n).type == "date" for n in bare):
            continue
        for literal in bare:
            if not is_string(literal):
                continue
            day = parse_date(str(literal.this))
            if day is None:
                typer.ctx.refuse(
                    ImplicitCastError,
                    f"text '{str(literal.this)[:30]}' used as a date: not a valid YYYY-MM-DD date",
                    literal,
                )
            replacement = date_literal(day)
            if literal is node:  # pragma: no cover - a group never holds its own node
                continue
            literal.replace(replacement)


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _safe_date_trunc(node: exp.Expr) -> exp.Expr:
    """``CASE WHEN d BETWEEN DATE '0001-01-01' AND DATE '9999-12-31' THEN
    TRY_CAST(DATE_TRUNC(part, d) AS DATE) END``: DuckDB truncates a DATE through
    TIMESTAMP, which raises for dates past 294247 (a DATE goes to 5881580)."""
    value = node.this.copy()
    inside = exp.Between(this=value, low=date_literal(FIRST_DAY), high=date_literal(LAST_DAY))
    truncated = exp.TryCast(this=node, to=exp.DataType.build("DATE"))
    return exp.Case(ifs=[exp.If(this=inside, true=truncated)])


def to_double(node: exp.Expr) -> exp.Expr:
    return exp.TryCast(this=node, to=exp.DataType.build("DOUBLE"))


def safe_divide(node: exp.Expr, divisor: exp.Expr) -> exp.Expr:
    """``n op d`` → ``CASE WHEN d = 0 THEN NULL ELSE n op d END``."""
    return exp.Case(
        ifs=[
            exp.If(
                this=exp.EQ(this=divisor.copy(), expression=exp.Literal.number(0)), true=exp.Null()
            )
        ],
        default=node,
    )


def safe_post(expr: exp.Expr) -> exp.Expr:
    """Post-processing expressions (over released values): TRY_CAST, PI() as a number,
    ``//`` and ``%`` guarded (``/`` on released values gives ±inf/NULL, never an error)."""
    for node in list(expr.walk()):
        replacement: exp.Expr | None = None
        if type(node) is exp.Cast:
            replacement = exp.TryCast(this=node.this, to=node.to)
        elif isinstance(node, exp.Pi):
            replacement = exp.Literal.number(repr(math.pi))
        elif isinstance(node, (exp.IntDiv, exp.Mod)):
            replacement = safe_divide(node.copy(), node.expression.copy())
        if replacement is not None:
            if node is expr:
                expr = replacement
            else:
                node.replace(replacement)
    return expr
