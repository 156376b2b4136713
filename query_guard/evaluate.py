"""Evaluate a plan's small expressions in Python with DuckDB's semantics.

Used (1) by the guard to enumerate the public domain of computed group keys
(``FLOOR(age / 10) * 10``, ``year(visit_date)``) and (2) by whoever applies the plan's
post-processing — derived outputs (``m0 / m1``), HAVING and ORDER BY expressions — to
*noisy* released values. Division by zero gives NULL, as in the engine query.

>>> from sqlglot import parse_one
>>> evaluate(parse_one("m0 / m1"), {"m0": 10.0, "m1": 4.0})
2.5
>>> evaluate(parse_one("m0 / m1"), {"m0": 10.0, "m1": 0.0}) is None
True
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from sqlglot import exp

from query_guard import sql_values as sv
from query_guard.allow_lists import DATE_PART_OF
from query_guard.sql_values import Unsupported

Value = Any


def evaluate(expression: exp.Expr, env: Mapping[str, Value]) -> Value:
    """Value of ``expression`` with ``Column`` names looked up in ``env``."""
    return _eval(expression, env)


def _eval(node: exp.Expr, env: Mapping[str, Value]) -> Value:  # noqa: C901
    if isinstance(node, exp.Paren):
        return _eval(node.this, env)
    if isinstance(node, exp.Column):
        name = node.name
        if name in env:
            return env[name]
        if name.lower() in env:
            return env[name.lower()]
        raise Unsupported(f"unknown column {name}")
    if isinstance(node, exp.Literal):
        text = str(node.this)
        if node.is_string:
            return text
        try:
            return int(text)
        except ValueError:
            return float(text)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Pi):
        return math.pi
    if isinstance(node, exp.Neg):
        v = _eval(node.this, env)
        return None if v is None else -v
    if isinstance(node, exp.Binary) and type(node) in _ARITH:
        a, b = _eval(node.this, env), _eval(node.expression, env)
        if a is None or b is None:
            return None
        return _ARITH[type(node)](a, b)
    if type(node) in _UNARY:
        v = _eval(node.this, env)
        return None if v is None else _UNARY[type(node)](v)
    if isinstance(node, exp.Round):
        v = _eval(node.this, env)
        decimals = node.args.get("decimals")
        n = 0 if decimals is None else int(_eval(decimals, env))
        return None if v is None else sv.round_half_away(float(v), n)
    if isinstance(node, (exp.Least, exp.Greatest)):
        values = [
            v for v in (_eval(e, env) for e in [node.this, *node.expressions]) if v is not None
        ]
        if not values:
            return None
        return min(values) if isinstance(node, exp.Least) else max(values)
    if isinstance(node, exp.Coalesce):
        for e in [node.this, *node.expressions]:
            v = _eval(e, env)
            if v is not None:
                return v
        return None
    if isinstance(node, exp.Nullif):
        a, b = _eval(node.this, env), _eval(node.expression, env)
        return None if a is not None and a == b else a
    if isinstance(node, exp.Case):
        subject = _eval(node.this, env) if node.this is not None else None
        for branch in node.args.get("ifs") or []:
            if node.this is not None:
                cond = _compare(exp.EQ, subject, _eval(branch.this, env))
            else:
                cond = _eval(branch.this, env)
            if cond is True:
                return _eval(branch.args["true"], env)
        default = node.args.get("default")
        return None if default is None else _eval(default, env)
    if isinstance(node, exp.If):
        cond = _eval(node.this, env)
        branch = node.args.get("true") if cond is True else node.args.get("false")
        return None if branch is None else _eval(branch, env)
    if type(node) in _COMPARE:
        return _compare(type(node), _eval(node.this, env), _eval(node.expression, env))
    if isinstance(node, exp.And):
        a, b = _eval(node.this, env), _eval(node.expression, env)
        if a is False or b is False:
            return False
        return None if a is None or b is None else True
    if isinstance(node, exp.Or):
        a, b = _eval(node.this, env), _eval(node.expression, env)
        if a is True or b is True:
            return True
        return None if a is None or b is None else False
    if isinstance(node, exp.Not):
        v = _eval(node.this, env)
        return None if v is None else not v
    if isinstance(node, exp.Is):
        v = _eval(node.this, env)
        target = node.expression
        if isinstance(target, exp.Null):
            return v is None
        return v is _eval(target, env)
    if isinstance(node, exp.In):
        v = _eval(node.this, env)
        if v is None:
            return None
        items = [_eval(e, env) for e in node.expressions]
        if any(_compare(exp.EQ, v, i) is True for i in items):
            return True
        return None if any(i is None for i in items) else False
    if isinstance(node, exp.Between):
        v = _eval(node.this, env)
        low = _compare(exp.GTE, v, _eval(node.args["low"], env))
        high = _compare(exp.LTE, v, _eval(node.args["high"], env))
        return _eval(exp.And(this=exp.convert(low), expression=exp.convert(high)), {})
    if isinstance(node, (exp.Like, exp.ILike)):
        v, p = _eval(node.this, env), _eval(node.expression, env)
        if v is None or p is None:
            return None
        flags = re.DOTALL | (re.IGNORECASE if isinstance(node, exp.ILike) else 0)
        regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in p)
        matched = re.fullmatch(regex, str(v), flags) is not None
        return not matched if node.args.get("negate") else matched
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return sv.cast(_eval(node.this, env), node.to)
    if isinstance(node, exp.Extract) or type(node) in DATE_PART_OF:
        part = node.this.name.upper() if isinstance(node, exp.Extract) else DATE_PART_OF[type(node)]
        v = _eval(node.expression if isinstance(node, exp.Extract) else node.this, env)
        return None if v is None else sv.date_part(part, sv.as_date(v))
    if isinstance(node, (exp.TimestampTrunc, exp.DateTrunc)):
        v = _eval(node.this, env)
        unit = node.args.get("unit")
        part = unit.name.upper() if isinstance(unit, exp.Expr) else str(unit).upper()
        return None if v is None else sv.trunc_date(part, sv.as_date(v))
    if isinstance(node, exp.TimeToStr):
        v = _eval(node.this, env)
        fmt = _eval(node.args["format"], env)
        return None if v is None else sv.as_date(v).strftime(fmt)
    if isinstance(node, (exp.Upper, exp.Lower, exp.Length, exp.Trim)):
        v = _eval(node.this, env)
        if v is None:
            return None
        if isinstance(node, exp.Upper):
            return str(v).upper()
        if isinstance(node, exp.Lower):
            return str(v).lower()
        if isinstance(node, exp.Trim):
            return str(v).strip()
        return len(str(v))
    if isinstance(node, exp.DPipe):
        a, b = _eval(node.this, env), _eval(node.expression, env)
        return None if a is None or b is None else sv.text(a) + sv.text(b)
    if isinstance(node, exp.Concat):
        return "".join(
            sv.text(v) for v in (_eval(e, env) for e in node.expressions) if v is not None
        )
    raise Unsupported(f"cannot evaluate {node.key}")


def _div(a: Value, b: Value) -> Value:
    return None if b == 0 else a / b


def _mod(a: Value, b: Value) -> Value:
    return None if b == 0 else math.fmod(a, b)


def _intdiv(a: Value, b: Value) -> Value:
    return None if b == 0 else float(math.trunc(a / b))


def _sub(a: Value, b: Value) -> Value:
    if isinstance(a, dt.date) and isinstance(b, dt.date):
        return (a - b).days
    return a - b


def _pow(a: Value, b: Value) -> Value:
    try:
        result = float(a) ** float(b)
    except OverflowError:
        return math.inf
    except ZeroDivisionError:
        return math.inf
    return math.nan if isinstance(result, complex) else result


_ARITH: dict[type[exp.Expr], Any] = {
    exp.Add: lambda a, b: a + b,
    exp.Sub: _sub,
    exp.Mul: lambda a, b: a * b,
    exp.Div: _div,
    exp.IntDiv: _intdiv,
    exp.Mod: _mod,
    exp.Pow: _pow,
}

_UNARY: dict[type[exp.Expr], Any] = {
    exp.Abs: abs,
    exp.Floor: lambda v: float(math.floor(v)),
    exp.Ceil: lambda v: float(math.ceil(v)),
    exp.Trunc: lambda v: float(math.trunc(v)),
    exp.Sqrt: lambda v: math.sqrt(v) if v >= 0 else math.nan,
}

_COMPARE: dict[type[exp.Expr], Any] = {
    exp.EQ: lambda a, b: a == b,
    exp.NEQ: lambda a, b: a != b,
    exp.GT: lambda a, b: a > b,
    exp.GTE: lambda a, b: a >= b,
    exp.LT: lambda a, b: a < b,
    exp.LTE: lambda a, b: a <= b,
}



def _compare(op: type[exp.Expr], a: Value, b: Value) -> Value:
    if a is None or b is None:
        return None
    if isinstance(a, dt.date) and isinstance(b, str):
        b = dt.date.fromisoformat(b)
    elif isinstance(b, dt.date) and isinstance(a, str):
        a = dt.date.fromisoformat(a)
    try:
        return bool(_COMPARE[op](a, b))
    except TypeError as err:
        raise Unsupported(f"cannot compare {type(a).__name__} and {type(b).__name__}") from err
