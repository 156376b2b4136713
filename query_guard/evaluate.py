"""The one evaluator of small expressions: a handler per node type, DuckDB's semantics.

Used (1) by the guard to enumerate the public domain of computed group keys
(``FLOOR(age / 10) * 10``, ``year(visit_date)``) and (2) by whoever applies the plan's
post-processing — derived outputs (``m0 / m1``), HAVING and ORDER BY expressions — to
*noisy* released values (``sandbox.service.postprocess``). DuckDB 2's semantics are
matched where Python's differ: ``/`` by zero is ±inf or NaN, NaN equals NaN and sorts above
every number, BIGINT results out of range raise, integer ``%`` and ``//`` by zero raise,
DOUBLE casts to integers round half to even but text and DECIMAL (``2.5``) half away.

As sqlglot's optimizer does, it dispatches on the node's class: :class:`Evaluator` looks
each node's handler up in a table (most specific class first). :data:`SQL` is the table
with DuckDB's semantics; :mod:`privacy.release` evaluates derived outputs with its own
table (values with their intervals) on the same evaluator.

>>> from sqlglot import parse_one
>>> evaluate(parse_one("m0 / m1"), {"m0": 10.0, "m1": 4.0})
2.5
>>> evaluate(parse_one("m0 / m1"), {"m0": 10.0, "m1": 0.0})
inf
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from sqlglot import exp

from query_guard import sql_values as sv
from query_guard.allow_lists import DATE_PART_OF
from query_guard.sql_values import Unsupported

Value = Any
#: A node type's handler: the evaluator (to evaluate children, read ``env``) and the node.
Handler = Callable[["Evaluator", Any], Value]


class Evaluator:
    """Evaluates nodes over ``env`` with the handler of the node's most specific class.

    A table without a handler for a node (nor for any of its base classes) leaves it
    :class:`Unsupported`; a table may register ``exp.Expr`` as its fallback.
    """

    def __init__(self, handlers: Mapping[type, Handler], env: Any) -> None:
        self.handlers = handlers
        self.env = env

    def __call__(self, node: exp.Expr) -> Value:
        for cls in type(node).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler(self, node)
        raise Unsupported(f"cannot evaluate {node.key}")


def evaluate(
    expression: exp.Expr, env: Mapping[str, Value], handlers: Mapping[type, Handler] | None = None
) -> Value:
    """Value of ``expression`` with ``Column`` names looked up in ``env``."""
    return Evaluator(SQL if handlers is None else handlers, env)(expression)


def order_key(v: Value) -> tuple[int, Value]:
    """A non-NULL value as DuckDB orders it: NaN equals NaN and is above every number."""
    if isinstance(v, float) and math.isnan(v):
        return (1, 0.0)
    return (0, v)


# -- values and names ---------------------------------------------------------------
def _column(ev: Evaluator, node: exp.Column) -> Value:
    name = node.name
    if name in ev.env:
        return ev.env[name]
    if name.lower() in ev.env:
        return ev.env[name.lower()]
    raise Unsupported(f"unknown column {name}")


def _literal(ev: Evaluator, node: exp.Literal) -> Value:
    """Text, an integer, a DECIMAL (``2.5``: up to 18 digits, as DuckDB types it) or a DOUBLE."""
    text = str(node.this)
    if node.is_string:
        return text
    try:
        return int(text)
    except ValueError:
        pass
    digits = text.lstrip("+-")
    whole, _, fraction = digits.partition(".")
    if "." in digits and (whole + fraction).isdigit() and len((whole + fraction).lstrip("0")) <= 18:
        return sv.Dec(float(text), max(len(whole.lstrip("0")) + len(fraction), 1), len(fraction))
    return float(text)


def _paren(ev: Evaluator, node: exp.Paren) -> Value:
    return ev(node.this)


def _neg(ev: Evaluator, node: exp.Neg) -> Value:
    v = ev(node.this)
    if isinstance(v, sv.Dec):
        return sv.Dec(-float(v), v.width, v.scale)
    return None if v is None else sv.bigint(-v)


# -- arithmetic and functions of numbers ----------------------------------------------
def _arithmetic(op: Callable[[Value, Value], Value]) -> Handler:
    """A binary operator: NULL if either side is."""

    def handler(ev: Evaluator, node: exp.Expr) -> Value:
        a, b = ev(node.this), ev(node.expression)
        return None if a is None or b is None else op(a, b)

    return handler


def _unary(op: Callable[[Value], Value]) -> Handler:
    """A function of one argument: NULL if it is."""

    def handler(ev: Evaluator, node: exp.Expr) -> Value:
        v = ev(node.this)
        return None if v is None else op(v)

    return handler


def _round(ev: Evaluator, node: exp.Round) -> Value:
    v = ev(node.this)
    decimals = node.args.get("decimals")
    n = 0 if decimals is None else int(ev(decimals))
    if v is None:
        return None
    return sv.round_int(v, n) if sv.is_int(v) else sv.round_double(float(v), n)


def _least_greatest(ev: Evaluator, node: exp.Expr) -> Value:
    values = [v for v in (ev(e) for e in [node.this, *node.expressions]) if v is not None]
    if not values:
        return None
    pick = min if isinstance(node, exp.Least) else max
    return pick(values, key=order_key)


# -- conditionals ---------------------------------------------------------------------
def _coalesce(ev: Evaluator, node: exp.Coalesce) -> Value:
    for e in [node.this, *node.expressions]:
        v = ev(e)
        if v is not None:
            return v
    return None


def _nullif(ev: Evaluator, node: exp.Nullif) -> Value:
    a, b = ev(node.this), ev(node.expression)
    return None if _compare(exp.EQ, a, b) is True else a


def _case(ev: Evaluator, node: exp.Case) -> Value:
    subject = ev(node.this) if node.this is not None else None
    for branch in node.args.get("ifs") or []:
        if node.this is not None:
            cond = _compare(exp.EQ, subject, ev(branch.this))
        else:
            cond = ev(branch.this)
        if cond is True:
            return ev(branch.args["true"])
    default = node.args.get("default")
    return None if default is None else ev(default)


def _if(ev: Evaluator, node: exp.If) -> Value:
    cond = ev(node.this)
    branch = node.args.get("true") if cond is True else node.args.get("false")
    return None if branch is None else ev(branch)


# -- predicates (three-valued) ----------------------------------------------------------
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
    if isinstance(a, sv.Dec) or isinstance(b, sv.Dec):
        sv.check_widening(a, b)
    try:
        return bool(_COMPARE[op](order_key(a), order_key(b)))
    except TypeError as err:
        raise Unsupported(f"cannot compare {type(a).__name__} and {type(b).__name__}") from err


def _comparison(ev: Evaluator, node: exp.Expr) -> Value:
    return _compare(type(node), ev(node.this), ev(node.expression))


def _and3(a: Value, b: Value) -> Value:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _and(ev: Evaluator, node: exp.And) -> Value:
    return _and3(ev(node.this), ev(node.expression))


def _or(ev: Evaluator, node: exp.Or) -> Value:
    a, b = ev(node.this), ev(node.expression)
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _is(ev: Evaluator, node: exp.Is) -> Value:
    v = ev(node.this)
    target = node.expression
    if isinstance(target, exp.Null):
        return v is None
    return v is ev(target)


def _in(ev: Evaluator, node: exp.In) -> Value:
    v = ev(node.this)
    if v is None:
        return None
    items = [ev(e) for e in node.expressions]
    if any(_compare(exp.EQ, v, i) is True for i in items):
        return True
    return None if any(i is None for i in items) else False


def _between(ev: Evaluator, node: exp.Between) -> Value:
    v = ev(node.this)
    low = _compare(exp.GTE, v, ev(node.args["low"]))
    high = _compare(exp.LTE, v, ev(node.args["high"]))
    return _and3(low, high)


def _like(ev: Evaluator, node: exp.Expr) -> Value:
    v, p = ev(node.this), ev(node.expression)
    if v is None or p is None:
        return None
    flags = re.DOTALL | (re.IGNORECASE if isinstance(node, exp.ILike) else 0)
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in p)
    matched = re.fullmatch(regex, str(v), flags) is not None
    return not matched if node.args.get("negate") else matched


# -- casts, dates and text --------------------------------------------------------------
def _cast(ev: Evaluator, node: exp.Cast) -> Value:
    return sv.cast(ev(node.this), node.to)


def _try_cast(ev: Evaluator, node: exp.TryCast) -> Value:
    """``TRY_CAST``: NULL where the cast fails (the guard writes every cast as one)."""
    v = ev(node.this)
    try:
        return sv.cast(v, node.to)
    except (ValueError, ArithmeticError):
        return None


def _date_part(ev: Evaluator, node: exp.Expr) -> Value:
    if isinstance(node, exp.Extract):
        part, v = node.this.name.upper(), ev(node.expression)
    else:
        part, v = DATE_PART_OF[type(node)], ev(node.this)
    return None if v is None else sv.date_part(part, sv.as_date(v))


def _date_trunc(ev: Evaluator, node: exp.Expr) -> Value:
    v = ev(node.this)
    unit = node.args.get("unit")
    part = unit.name.upper() if isinstance(unit, exp.Expr) else str(unit).upper()
    return None if v is None else sv.trunc_date(part, sv.as_date(v))


def _time_to_str(ev: Evaluator, node: exp.TimeToStr) -> Value:
    v = ev(node.this)
    fmt = ev(node.args["format"])
    return None if v is None else sv.as_date(v).strftime(fmt)


def _substring(ev: Evaluator, node: exp.Substring) -> Value:
    start = ev(node.args["start"]) if node.args.get("start") else 1
    length_node = node.args.get("length")
    length = ev(length_node) if length_node is not None else None
    s = ev(node.this)
    if s is None or start is None or (length_node is not None and length is None):
        return None
    return sv.substring(str(s), start, length)


def _dpipe(ev: Evaluator, node: exp.DPipe) -> Value:
    a, b = ev(node.this), ev(node.expression)
    return None if a is None or b is None else sv.text(a) + sv.text(b)


def _concat(ev: Evaluator, node: exp.Concat) -> Value:
    return "".join(sv.text(v) for v in (ev(e) for e in node.expressions) if v is not None)


#: DuckDB's semantics, per node type (``sql_values`` holds the scalar details).
SQL: dict[type, Handler] = {
    exp.Paren: _paren,
    exp.Column: _column,
    exp.Literal: _literal,
    exp.Boolean: lambda ev, node: bool(node.this),
    exp.Null: lambda ev, node: None,
    exp.Pi: lambda ev, node: math.pi,
    exp.Neg: _neg,
    exp.Add: _arithmetic(sv.add),
    exp.Sub: _arithmetic(sv.subtract),
    exp.Mul: _arithmetic(sv.multiply),
    exp.Div: _arithmetic(sv.divide),
    exp.IntDiv: _arithmetic(sv.int_divide),
    exp.Mod: _arithmetic(sv.modulo),
    exp.Pow: _arithmetic(sv.power),
    exp.Abs: _unary(sv.absolute),
    exp.Floor: _unary(sv.integral(math.floor)),
    exp.Ceil: _unary(sv.integral(math.ceil)),
    exp.Trunc: _unary(sv.integral(math.trunc)),
    exp.Sqrt: _unary(sv.square_root),
    exp.Round: _round,
    exp.Least: _least_greatest,
    exp.Greatest: _least_greatest,
    exp.Coalesce: _coalesce,
    exp.Nullif: _nullif,
    exp.Case: _case,
    exp.If: _if,
    **dict.fromkeys(_COMPARE, _comparison),
    exp.And: _and,
    exp.Or: _or,
    exp.Not: _unary(lambda v: not v),
    exp.Is: _is,
    exp.In: _in,
    exp.Between: _between,
    exp.Like: _like,
    exp.ILike: _like,
    exp.Cast: _cast,
    exp.TryCast: _try_cast,
    exp.Extract: _date_part,
    **dict.fromkeys(DATE_PART_OF, _date_part),
    exp.TimestampTrunc: _date_trunc,
    exp.DateTrunc: _date_trunc,
    exp.TimeToStr: _time_to_str,
    exp.Upper: _unary(lambda v: str(v).upper()),
    exp.Lower: _unary(lambda v: str(v).lower()),
    exp.Trim: _unary(lambda v: str(v).strip()),
    exp.Length: _unary(lambda v: len(str(v))),
    exp.Substring: _substring,
    exp.DPipe: _dpipe,
    exp.Concat: _concat,
}
