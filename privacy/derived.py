"""Derived outputs (``SUM(x) / COUNT(*)``): arithmetic on released figures, with intervals.

PRIVACY: post-processing only; it sees the noisy figures and their intervals, nothing
exact. The expression runs on the guard's one evaluator (:class:`query_guard.evaluate.
Evaluator`, a handler per node type) with :data:`FIGURES`, a table whose values are
(value, interval) pairs: each handler gives the figure and the image of its interval.
The semantics are the release's own, not DuckDB's (:data:`query_guard.evaluate.SQL`):
every figure is a float, a function of a non-finite figure stays non-finite (NULL later),
SQRT of a negative figure is NULL, integer casts round half away from zero, and a
DECIMAL cast rounds to its scale. :func:`check` refuses, from the plan, what
:data:`FIGURES` cannot compute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from privacy.errors import PrivacyError
from query_guard.evaluate import Evaluator, Handler
from query_guard.sql_values import round_half_away

Interval = tuple[float, float]
Figure = tuple[float | None, Interval | None]

#: Casts of a released figure the release computes (to a number; text and dates are not figures).
DERIVED_CAST_TYPES = frozenset({exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT,
                                exp.DType.INT128, exp.DType.FLOAT, exp.DType.DOUBLE, exp.DType.DECIMAL})
_INTEGER_CASTS = frozenset({exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT,
                            exp.DType.INT128})


@dataclass(frozen=True)
class Row:
    """Row ``r`` of the released figures: ``values`` and ``intervals`` per measurement."""

    values: Mapping[str, list[Any]]
    intervals: Mapping[str, list[Any]]
    r: int


def evaluate_derived(expression: exp.Expr, row: Row) -> Figure:
    """The derived output's value on ``row`` and its interval (None, None: NULL)."""
    result: Figure = Evaluator(FIGURES, row)(expression)
    return result


def check(name: str, expression: exp.Expr) -> None:
    """Refuse (``unsupported_expression``) a derived output :data:`FIGURES` cannot compute."""
    for node in expression.walk():
        cast_ok = not isinstance(node, exp.Cast | exp.TryCast) or node.to.this in DERIVED_CAST_TYPES
        round_ok = not isinstance(node, exp.Round) or round_digits(node) is not None
        if (not isinstance(node, DERIVED_NODES) or (isinstance(node, exp.Literal) and node.is_string)
                or not cast_ok or not round_ok):
            raise PrivacyError(
                f"output {name!r}: {node.sql()} cannot be computed on released aggregates; "
                "use +, -, *, /, ROUND, FLOOR, CEIL, ABS, SQRT and casts to numbers, or compute "
                "it from the released figures yourself",
                code="unsupported_expression")


def round_digits(node: exp.Round) -> int | None:
    """ROUND's decimals: 0 when absent, else an integer literal (None: not computable)."""
    d = node.args.get("decimals")
    if d is None:
        return 0
    text = d.sql()
    return int(text) if text.lstrip("-").isdigit() and abs(int(text)) <= 20 else None


# -- handlers -------------------------------------------------------------------------
def _column(ev: Evaluator, node: exp.Column) -> Figure:
    row: Row = ev.env
    if node.name not in row.values:
        raise PrivacyError(f"derived expression refers to unknown {node.name}", code="internal_error")
    v, iv = row.values[node.name][row.r], row.intervals[node.name][row.r]
    if isinstance(v, list):  # a quantile measurement with one fraction
        v, iv = v[0], iv[0]
    return (None if v is None else float(v)), iv


def _literal(ev: Evaluator, node: exp.Literal) -> Figure:
    if node.is_string:
        return _unsupported(ev, node)
    x = float(node.this)
    return x, (x, x)


def _neg(ev: Evaluator, node: exp.Neg) -> Figure:
    v, iv = ev(node.this)
    if v is None or iv is None:
        return None, None
    return -v, (-iv[1], -iv[0])


def _arithmetic(ev: Evaluator, node: exp.Expr) -> Figure:
    a, ia = ev(node.this)
    b, ib = ev(node.expression)
    if a is None or b is None or ia is None or ib is None:
        return None, None
    if isinstance(node, exp.Add):
        return a + b, (ia[0] + ib[0], ia[1] + ib[1])
    if isinstance(node, exp.Sub):
        return a - b, (ia[0] - ib[1], ia[1] - ib[0])
    if isinstance(node, exp.Mul):
        prods = [x * y for x in ia for y in ib]
        return a * b, (min(prods), max(prods))
    if b == 0:
        return None, None
    if ib[0] <= 0 <= ib[1]:
        return a / b, (-math.inf, math.inf)
    quots = [x / y for x in ia for y in ib]
    return a / b, (min(quots), max(quots))


def _function(ev: Evaluator, node: exp.Expr) -> Figure:
    v, iv = ev(node.this)
    if v is None or iv is None:
        return None, None
    return _apply(node, v), _image(node, iv)


def _unsupported(ev: Evaluator, node: exp.Expr) -> Figure:
    raise PrivacyError(f"unsupported derived expression: {node.sql()}", code="unsupported_expression")


def _apply(node: exp.Expr, x: float) -> float | None:
    """A function of one released figure, total: non-finite stays non-finite (NULL later)."""
    if not math.isfinite(x):
        return x
    if isinstance(node, exp.Round):
        return round_half_away(x, round_digits(node) or 0)
    if isinstance(node, exp.Floor):
        return float(math.floor(x))
    if isinstance(node, exp.Ceil):
        return float(math.ceil(x))
    if isinstance(node, exp.Abs):
        return abs(x)
    if isinstance(node, exp.Sqrt):
        return math.sqrt(x) if x >= 0 else None
    assert isinstance(node, exp.Cast)  # FIGURES sends only these functions and casts here
    kind = node.to.this
    if kind in _INTEGER_CASTS:
        return round_half_away(x, 0)
    if kind == exp.DType.DECIMAL:
        params = node.to.expressions
        scale = int(params[1].sql()) if len(params) > 1 else 0
        return round_half_away(x, scale)
    return x


def _image(node: exp.Expr, iv: Interval) -> Interval | None:
    """The interval's image: every function here is monotone, except ABS (folded at 0)."""
    lo, hi = iv
    if isinstance(node, exp.Abs):
        return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))
    if isinstance(node, exp.Sqrt):
        return math.sqrt(max(lo, 0.0)) if math.isfinite(lo) else 0.0, \
            (math.sqrt(max(hi, 0.0)) if math.isfinite(hi) else math.inf)
    f_lo, f_hi = _apply(node, lo), _apply(node, hi)
    return (lo if f_lo is None else f_lo), (hi if f_hi is None else f_hi)


_FUNCTIONS = (exp.Round, exp.Floor, exp.Ceil, exp.Abs, exp.Sqrt, exp.Cast)

#: Released-figure semantics per node type; ``exp.Expr`` (every other node) is refused.
FIGURES: dict[type, Handler] = {
    exp.Paren: lambda ev, node: ev(node.this),
    exp.Column: _column,
    exp.Literal: _literal,
    exp.Neg: _neg,
    **dict.fromkeys((exp.Add, exp.Sub, exp.Mul, exp.Div), _arithmetic),
    **dict.fromkeys(_FUNCTIONS, _function),
    exp.Expr: _unsupported,
}

#: The nodes a derived output may hold: :data:`FIGURES`' own, TRY_CAST (a Cast), and
#: the parts of a cast's type.
DERIVED_NODES = (exp.Paren, exp.Column, exp.Identifier, exp.Literal, exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div,
                 exp.Round, exp.Floor, exp.Ceil, exp.Abs, exp.Sqrt, exp.Cast, exp.TryCast, exp.DataType,
                 exp.DataTypeParam)
