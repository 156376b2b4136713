"""Rule: no row-level expression can raise an error on any data.

Why: an error that happens only for some rows tells the researcher those rows exist
(``WHERE person_id = 42 AND 1 / (age - 37) > 0``). By construction here:

* ``CAST`` becomes ``TRY_CAST`` (NULL instead of a conversion error);
* ``x / y``, ``x // y`` and ``x % y`` become ``CASE WHEN y = 0 THEN NULL ELSE … END``
  (DuckDB raises on integer and ``//`` division by zero); ``x // y`` becomes
  ``TRUNC(x / y)`` in DOUBLE, DuckDB's integer-division semantics;
* numeric operands of arithmetic are computed in DOUBLE (``TRY_CAST(x AS DOUBLE)``):
  DuckDB raises on INTEGER/BIGINT/DECIMAL overflow, DOUBLE saturates to ±inf;
* run-time type conversions are excluded by ``rules/type_bounds.py``.
"""

from __future__ import annotations

import math

from sqlglot import exp

from query_guard.rules.type_bounds import NUMERIC, Typer

ARITHMETIC = (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Pow, exp.Neg, exp.Abs)
DIVISIONS = (exp.Div, exp.IntDiv, exp.Mod)


def safe_arithmetic(expr: exp.Expr, typer: Typer) -> exp.Expr:
    """An engine-safe copy of a flattened, type-checked row-level expression."""
    return _rewrite(expr.copy(), typer)


def _rewrite(node: exp.Expr, typer: Typer) -> exp.Expr:
    if isinstance(node, ARITHMETIC):
        date_sub = isinstance(node, exp.Sub) and typer.infer(node.this).type == "date"
        children = [node.args.get(k) for k in ("this", "expression")]
        all_literal = all(isinstance(c, exp.Literal) for c in children if c is not None)
        for key, child in zip(("this", "expression"), children, strict=True):
            if isinstance(child, exp.Expr):
                numeric = not date_sub and typer.infer(child).type in NUMERIC
                new = _rewrite(child, typer)
                # A literal next to a DOUBLE operand makes DOUBLE arithmetic already.
                skip = isinstance(new, ARITHMETIC) or (
                    isinstance(new, exp.Literal) and not all_literal
                )
                if numeric and not skip:
                    new = to_double(new)
                node.set(key, new)
        if isinstance(node, exp.IntDiv):
            # DuckDB's ``//`` truncates integers but is plain division on DOUBLE.
            node = exp.Trunc(this=exp.Div(this=node.this, expression=node.expression))
            return safe_divide(node, node.this.expression)
        if isinstance(node, DIVISIONS):
            return safe_divide(node, node.expression)
        return node
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expr):
            node.set(key, _rewrite(value, typer))
        elif isinstance(value, list):
            node.set(key, [_rewrite(v, typer) if isinstance(v, exp.Expr) else v for v in value])
    if type(node) is exp.Cast:
        return exp.TryCast(this=node.this, to=node.to)
    return node


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
