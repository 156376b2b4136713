"""Rule: every aggregated numeric value is clamped to bounds that fix its sensitivity.

Why: one person can move a sum by at most (rows they contribute) × max(|lo|, |hi|). The
value is clamped twice: each bounded numeric column it is computed from (so the result
means "with values clamped to the policy bounds"), and the final value to the bounds
derived by interval arithmetic (so the guarantee holds even if the derivation and the
engine's floating point disagree in the last bit). Sums are taken in fixed point —
``SUM(TRY_CAST(ROUND(v * fixed_point) AS BIGINT))`` — so no floating-point rounding can
change the sensitivity (Mironov 2012; Casacuberta et al. 2022); ``fixed_point`` is the
largest power of two with max(|lo|, |hi|) × fixed_point ≤ 2**20 (1 for integers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlglot import exp

from query_guard.allow_lists import PREDICATES
from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.errors import BoundsError, TypeMismatchError
from query_guard.positions import show
from query_guard.relation import base_column
from query_guard.shape import AggCall
from query_guard.total_expressions import safe_arithmetic
from query_guard.type_info import Info
from query_guard.typer import Typer

FIXED_POINT_TARGET = 2**20
MAX_FIXED_POINT = 2**40
#: |value| limits so fixed-point sums and sums of squares fit exactly in BIGINT/DOUBLE.
MAX_SUM_MAGNITUDE = 2.0**52
MAX_SQUARE_MAGNITUDE = 2.0**31


@dataclass(frozen=True)
class ValueSpec:
    """The engine-side value of one measurement (``None`` for COUNT(*))."""

    expr: exp.Expr | None
    lower: float | None = None
    upper: float | None = None
    fixed_point: int = 1
    value_type: str = "int"


def clamp_values(draft: Draft) -> None:
    """``draft.values``: each measurement's engine value, typed, bounded and clamped."""
    typer = draft.need("typer")
    draft.values = {call.id: value_spec(call, typer, draft.ctx) for call in draft.need("shape").aggs}


def value_spec(call: AggCall, typer: Typer, ctx: Context) -> ValueSpec:
    """The clamped engine value of ``call``, or a refusal (a text, date or unbounded value)."""
    if call.arg is None:
        return ValueSpec(None)
    if call.kind in ("count", "count_distinct"):
        typer.infer(call.arg)
        return ValueSpec(safe_arithmetic(call.arg, typer))
    info = typer.infer(call.arg)
    name = call.node.key.upper()
    if info.type in ("text", "date", "null"):
        hint = " (use year(…) or a date difference)" if info.type == "date" else ""
        ctx.refuse(
            TypeMismatchError, f"{name} of a {info.type} value: needs a number{hint}", call.node
        )
    expr = call.arg
    if info.type == "bool":
        expr = exp.TryCast(this=expr.copy(), to=exp.DataType.build("INT"))
        info = Info("int", 0, 1)
    if not info.bounded:
        ctx.refuse(
            BoundsError,
            f"{name}({show(call.arg, 50)}): cannot bound the aggregated value; use"
            " columns with declared bounds and avoid dividing by values that may be 0",
            call.node,
        )
    lo, hi = float(info.lo), float(info.hi)  # type: ignore[arg-type]
    magnitude = max(abs(lo), abs(hi))
    limit = MAX_SQUARE_MAGNITUDE if call.kind in ("variance", "stddev") else MAX_SUM_MAGNITUDE
    if magnitude > limit:
        ctx.refuse(
            BoundsError,
            f"{name}: value bounds [{lo:g}, {hi:g}] are too wide (|value| must stay ≤"
            f" {limit:g}); tighten them in the scenario",
            call.node,
        )
    value_type = "int" if info.type == "int" else "float"
    fp = fixed_point(magnitude, value_type)
    # PRIVACY: bounds on the 1/fixed_point grid, so each row's ROUND(v × fp) is at most
    # max(|lo|, |hi|) × fp exactly — the per-row bound the privacy layer multiplies.
    lo, hi = math.floor(lo * fp) / fp, math.ceil(hi * fp) / fp
    inner = _clamp_columns(expr.copy(), typer)
    engine = clamp(safe_arithmetic(inner, typer), lo, hi, value_type)
    return ValueSpec(engine, lo, hi, fp, value_type)


def clamp(expr: exp.Expr, lo: float, hi: float, value_type: str) -> exp.Expr:
    """``LEAST(GREATEST(expr, lo), hi)``, NULL staying NULL.

    SQL engines' LEAST/GREATEST skip NULL arguments (GREATEST(NULL, 0) = 0), which would
    turn a missing value into ``lo``; the explicit NULL branch keeps COUNT(x) and AVG(x)
    counting only the rows that have a value.
    """
    clamped = exp.Least(
        this=exp.Greatest(
            this=expr.copy(), expressions=[number(lo, value_type)], ignore_nulls=True
        ),
        expressions=[number(hi, value_type)],
        ignore_nulls=True,
    )
    if isinstance(expr, exp.Literal):
        return clamped
    return exp.Case(
        ifs=[exp.If(this=exp.Is(this=expr, expression=exp.Null()), true=exp.Null())],
        default=clamped,
    )


def fixed_point(magnitude: float, value_type: str) -> int:
    """Largest power of two p with magnitude × p ≤ 2**20 (≥ 1; 1 for integers).

    >>> fixed_point(500000.0, "float"), fixed_point(1.0, "float"), fixed_point(100, "int")
    (2, 1048576, 1)
    """
    if value_type == "int" or not magnitude > 0:
        return 1
    ratio = FIXED_POINT_TARGET / magnitude
    if not math.isfinite(ratio):  # a subnormal magnitude (1e-320): the largest scale
        return MAX_FIXED_POINT
    exponent = math.floor(math.log2(ratio))
    return int(min(max(2**exponent, 1), MAX_FIXED_POINT)) if exponent > 0 else 1


def number(value: float, value_type: str = "float") -> exp.Expr:
    """A numeric literal; integral values print without a fraction."""
    if value_type == "int" or (float(value).is_integer() and abs(value) < 2**53):
        return exp.Literal.number(int(value))
    return exp.Literal.number(repr(float(value)))


def _clamp_columns(expr: exp.Expr, typer: Typer) -> exp.Expr:
    """Clamp bounded numeric base columns that feed the value (not those in predicates)."""
    if isinstance(expr, exp.Column):
        return expr
    for col in list(expr.find_all(exp.Column)):
        if _in_predicate(col, expr):
            continue
        found = base_column(col, typer.bases)
        if found is None or found[1].type not in ("int", "float"):
            continue
        info = typer.infer(col)
        if info.bounded:
            col.replace(clamp(col.copy(), info.lo, info.hi, info.type))  # type: ignore[arg-type]
    return expr


def _in_predicate(node: exp.Expr, root: exp.Expr) -> bool:
    parent = node.parent
    while parent is not None and parent is not root.parent:
        if isinstance(parent, PREDICATES):
            return True
        if parent is root:
            break
        parent = parent.parent
    return False
