"""Interval arithmetic on closed bounds (None = unbounded), for ``typer.py``.

Division excludes 0 from the divisor: the guard's safe division turns ``x / 0`` into NULL,
so only non-zero divisors produce values (an integer divisor in [lo, hi] ∋ 0 is treated
as [lo, -1] ∪ [1, hi]; a float one can come arbitrarily close to 0, so it is unbounded).
"""

from __future__ import annotations

import math
from typing import Protocol

from sqlglot import exp


class Bounded(Protocol):
    @property
    def type(self) -> str: ...

    @property
    def lo(self) -> float | None: ...

    @property
    def hi(self) -> float | None: ...

    @property
    def bounded(self) -> bool: ...


def small_int_literal(node: exp.Expr) -> bool:
    if isinstance(node, exp.Neg):
        node = node.this
    if not isinstance(node, exp.Literal) or node.is_string:
        return False
    try:
        return abs(int(str(node.this))) <= 1_000_000
    except ValueError:
        return False


def neg(v: float | None) -> float | None:
    return None if v is None else -v


def add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def floor(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(math.floor(v))


def trunc(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(math.trunc(v))


def ceil(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(math.ceil(v))


def mul(a: Bounded, b: Bounded) -> tuple[float | None, float | None]:
    if not (a.bounded and b.bounded):
        return None, None
    products = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]  # type: ignore[operator]
    return min(products), max(products)


def div(a: Bounded, b: Bounded) -> tuple[float | None, float | None]:
    """Interval division; the guard's safe division makes x / 0 NULL, so 0 is excluded.

    For an integer divisor the interval minus 0 is [lo, -1] ∪ [1, hi]; a float divisor
    whose interval contains 0 can come arbitrarily close to it, so the result is
    unbounded.
    """
    if not (a.bounded and b.bounded):
        return None, None
    lo, hi = b.lo, b.hi
    assert lo is not None and hi is not None
    pieces: list[tuple[float, float]] = []
    if lo <= 0 <= hi:
        if b.type != "int":
            if lo == hi == 0:
                return 0.0, 0.0
            return None, None
        if lo <= -1:
            pieces.append((lo, -1.0))
        if hi >= 1:
            pieces.append((1.0, hi))
        if not pieces:
            return 0.0, 0.0  # always NULL; any bounds do
    else:
        pieces.append((lo, hi))
    quotients = []
    for d_lo, d_hi in pieces:
        for x in (a.lo, a.hi):
            for d in (d_lo, d_hi):
                quotients.append(x / d)  # type: ignore[operator]
    return min(quotients), max(quotients)
