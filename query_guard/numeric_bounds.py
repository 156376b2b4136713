"""How bounds propagate through casts, arithmetic, rounding and date parts.

The interval rules of :class:`query_guard.typer.Typer`, one function per kind of node
(it dispatches to them from its table): apart because they are the part a reviewer checks
against DuckDB's semantics operator by operator, and bounds feed the clamps that the
privacy guarantee rests on.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

from sqlglot import exp

from query_guard import intervals as iv
from query_guard.allow_lists import DATE_PART_OF
from query_guard.errors import TypeMismatchError
from query_guard.literals import is_number
from query_guard.type_info import (
    DATE_PART_RANGE,
    EPOCH,
    FLOAT_TYPES,
    INT_TYPES,
    MAX_DECIMAL_WIDTH,
    NUMERIC,
    TEXT_TYPES,
    Info,
    to_date,
)

if TYPE_CHECKING:  # the typer imports this module for its dispatch table
    from query_guard.typer import Typer


def cast(t: Typer, node: exp.Cast) -> Info:
    src = t.infer(node.this)
    type_params(t, node)
    to = node.to.this
    if to in INT_TYPES:
        if src.type in NUMERIC or src.type == "bool":
            lo = None if src.lo is None else float(round(src.lo))
            hi = None if src.hi is None else float(round(src.hi))
            return Info("int", lo, hi)
        return Info("int")
    if to in FLOAT_TYPES:
        if src.type in NUMERIC or src.type == "bool":
            return Info("float", src.lo, src.hi)
        return Info("float")
    if to in TEXT_TYPES:
        return Info("text")
    if to == exp.DType.DATE:
        if src.type == "date":
            return Info("date", src.lo, src.hi)
        literal = node.this
        if isinstance(literal, exp.Literal) and literal.is_string:
            try:
                day = float((dt.date.fromisoformat(str(literal.this)) - EPOCH).days)
            except ValueError:
                return Info("date", literal=True)
            return Info("date", day, day, literal=True)
        return Info("date")
    if to == exp.DType.BOOLEAN:
        return Info("bool", 0, 1)
    t.ctx.refuse(TypeMismatchError, f"CAST to {node.to.sql()}: not allowed", node)


def type_params(t: Typer, node: exp.Cast) -> None:
    """DECIMAL(w, s) with 1 ≤ w ≤ 38 and 0 ≤ s ≤ w; VARCHAR/CHAR(n); nothing else:
    an invalid parameter is a binder error in the engine (a 500, not a refusal)."""
    params = node.to.expressions or []
    if not params:
        return
    kind = node.to.this
    values: list[int] = []
    for param in params:
        value = param.this if isinstance(param, exp.DataTypeParam) else param
        if not (is_number(value) and str(value.sql()).lstrip("-").isdigit()):
            values = []
            break
        values.append(int(value.sql()))
    ok = False
    if kind == exp.DType.DECIMAL and values and len(values) == len(params) <= 2:
        width = values[0]
        scale = values[1] if len(values) > 1 else 0
        ok = 1 <= width <= MAX_DECIMAL_WIDTH and 0 <= scale <= width
    elif kind in TEXT_TYPES and len(values) == len(params) == 1:
        ok = 1 <= values[0] <= 65535
    if not ok:
        t.ctx.refuse(
            TypeMismatchError,
            f"CAST to {node.to.sql('duckdb')}: type parameters allowed only as"
            f" DECIMAL(width 1..{MAX_DECIMAL_WIDTH}, scale 0..width) or VARCHAR(1..65535)",
            node,
        )


def arith(t: Typer, node: exp.Expr) -> Info:
    left, right = node.this, node.expression
    if isinstance(node, exp.Sub):
        a_info, b_info = t.infer(left), t.infer(right)
        if a_info.type == "date" and b_info.type == "date":
            return Info("int", iv.sub(a_info.lo, b_info.hi), iv.sub(a_info.hi, b_info.lo))
    a = t.numeric(left, node)
    b = t.numeric(right, node)
    kind = "int" if a.type == b.type == "int" else "float"
    if isinstance(node, exp.Add):
        return Info(kind, iv.add(a.lo, b.lo), iv.add(a.hi, b.hi))
    if isinstance(node, exp.Sub):
        return Info(kind, iv.sub(a.lo, b.hi), iv.sub(a.hi, b.lo))
    if isinstance(node, exp.Mul):
        return Info(kind, *iv.mul(a, b))
    if isinstance(node, (exp.Div, exp.IntDiv)):
        lo, hi = iv.div(a, b)
        if isinstance(node, exp.IntDiv):
            return Info("int", iv.trunc(lo), iv.trunc(hi))
        return Info("float", lo, hi)
    if isinstance(node, exp.Mod):
        if not b.bounded:
            return Info(kind)
        m = max(abs(b.lo), abs(b.hi))  # type: ignore[arg-type]
        lo = 0.0 if a.lo is not None and a.lo >= 0 else -m
        hi = 0.0 if a.hi is not None and a.hi <= 0 else m
        return Info(kind, lo, hi)
    # POWER: bounded for a constant non-negative integer exponent only.
    if b.literal and b.lo is not None and b.lo == int(b.lo) and 0 <= b.lo <= 8 and a.bounded:
        n = int(b.lo)
        values = [a.lo**n, a.hi**n]  # type: ignore[operator]
        if a.lo < 0 < a.hi:  # type: ignore[operator]
            values.append(0.0)
        return Info("float", min(values), max(values))
    return Info("float")


def unary_math(t: Typer, node: exp.Expr) -> Info:
    a = t.numeric(node.this, node)
    if isinstance(node, exp.Abs):
        if not a.bounded:
            return Info(a.type, 0, None)
        lo, hi = a.lo, a.hi
        low = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))  # type: ignore[operator,arg-type]
        return Info(a.type, low, max(abs(lo), abs(hi)))  # type: ignore[arg-type]
    if isinstance(node, exp.Floor):
        return Info("int", iv.floor(a.lo), iv.floor(a.hi))
    if isinstance(node, exp.Ceil):
        return Info("int", iv.ceil(a.lo), iv.ceil(a.hi))
    if isinstance(node, exp.Trunc):
        return Info("int", iv.trunc(a.lo), iv.trunc(a.hi))
    if isinstance(node, exp.Round):
        decimals = node.args.get("decimals")
        if decimals is not None and not iv.small_int_literal(decimals):
            t.ctx.refuse(TypeMismatchError, "ROUND decimals: must be an integer literal", decimals)
        if decimals is None or int(str(decimals.this)) <= 0:
            return Info("int" if decimals is None else a.type, iv.floor(a.lo), iv.ceil(a.hi))
        return Info("float", a.lo, a.hi)
    # SQRT of a negative value is NaN in DuckDB (no error); clamp lower bound at 0.
    lo = None if a.lo is None else math.sqrt(max(a.lo, 0.0))
    hi = None if a.hi is None else math.sqrt(max(a.hi, 0.0))
    return Info("float", lo, hi)


def date_part(t: Typer, node: exp.Expr) -> Info:
    if isinstance(node, exp.Extract):
        part = node.this.name.upper()
        value = node.expression
    else:
        part = DATE_PART_OF[type(node)]
        value = node.this
    d = t.date(value, node)
    if part == "YEAR":
        lo = None if d.lo is None else float(to_date(d.lo).year)
        hi = None if d.hi is None else float(to_date(d.hi).year)
        return Info("int", lo, hi)
    low, high = DATE_PART_RANGE[part]
    return Info("int", float(low), float(high))
