"""Scalar value semantics of DuckDB (2.x) that ``query_guard.evaluate`` reproduces in
Python: arithmetic (BIGINT overflow, DECIMAL typing, division by zero), rounding, casts,
text rendering, SUBSTRING, date parts and truncation. Where DuckDB raises, these raise
(``ArithmeticError`` / ``ValueError``); ``TRY`` and ``TRY_CAST`` make that NULL."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any

from sqlglot import exp

Value = Any


class Unsupported(Exception):
    """The expression uses a construct this evaluator does not implement."""


class Dec(float):
    """A DECIMAL(width, scale) value (a literal like ``2.5``, a cast): a float that
    remembers its type, since DuckDB rounds a DECIMAL half away from zero when casting it
    to an integer but a DOUBLE half to even, and widens integers compared with it."""

    width: int
    scale: int

    def __new__(cls, v: float, width: int, scale: int) -> Dec:
        self = super().__new__(cls, v)
        self.width, self.scale = width, scale
        return self


INT64 = (-(2**63), 2**63 - 1)
_INT_BITS = {exp.DType.TINYINT: 8, exp.DType.SMALLINT: 16, exp.DType.INT: 32,
             exp.DType.BIGINT: 64, exp.DType.INT128: 128}


def bigint(v: Value) -> Value:
    """``v``, raising as DuckDB does when an integer result leaves BIGINT's range."""
    if isinstance(v, int) and not isinstance(v, bool) and not INT64[0] <= v <= INT64[1]:
        raise OverflowError("BIGINT out of range")
    return v


def decimal_arith(op: str, a: Value, b: Value) -> Dec | None:
    """``a op b`` (``+``, ``-``, ``*``) when DuckDB types it a DECIMAL (integers and at
    least one DECIMAL), computed exactly; None when it is not a DECIMAL operation."""
    pair = (a, b)
    if not any(isinstance(v, Dec) for v in pair) or not all(
        isinstance(v, Dec) or (isinstance(v, int) and not isinstance(v, bool)) for v in pair
    ):
        return None
    exact = [decimal.Decimal(repr(float(v))) if isinstance(v, Dec) else decimal.Decimal(v) for v in pair]
    scales = [v.scale if isinstance(v, Dec) else 0 for v in pair]
    widths = [v.width if isinstance(v, Dec) else 19 for v in pair]
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        if op == "*":
            result, scale, width = exact[0] * exact[1], sum(scales), sum(widths)
        else:
            result = exact[0] + exact[1] if op == "+" else exact[0] - exact[1]
            scale = max(scales)
            width = max(w - s for w, s in zip(widths, scales, strict=True)) + scale + 1
    return Dec(float(result), min(width, 38), scale)


def is_int(v: Value) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def divide(a: Value, b: Value) -> Value:
    """``/`` is a DOUBLE division; by zero it is ±inf or NaN (IEEE), as in DuckDB 2."""
    if b != 0:
        return a / b
    if a == 0 or (isinstance(a, float) and math.isnan(a)):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def modulo(a: Value, b: Value) -> Value:
    """Sign of the dividend; integers by zero raise, DOUBLEs give NaN (DuckDB)."""
    if is_int(a) and is_int(b):
        if b == 0:
            raise ZeroDivisionError("integer modulo by zero")
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    try:
        return math.fmod(a, b)
    except ValueError:
        return math.nan


def int_divide(a: Value, b: Value) -> Value:
    """Integers: truncating division; DOUBLEs: DuckDB divides plainly. By zero raises."""
    if b == 0:
        raise ZeroDivisionError("integer division by zero")
    if is_int(a) and is_int(b):
        q = abs(a) // abs(b)
        return bigint(q if (a < 0) == (b < 0) else -q)
    return a / b


def add(a: Value, b: Value) -> Value:
    d = decimal_arith("+", a, b)
    return d if d is not None else bigint(a + b)


def multiply(a: Value, b: Value) -> Value:
    d = decimal_arith("*", a, b)
    return d if d is not None else bigint(a * b)


def subtract(a: Value, b: Value) -> Value:
    if isinstance(a, dt.date) and isinstance(b, dt.date):
        return (a - b).days
    d = decimal_arith("-", a, b)
    return d if d is not None else bigint(a - b)


def power(a: Value, b: Value) -> Value:
    try:
        result = float(a) ** float(b)
    except OverflowError:
        return math.inf
    except ZeroDivisionError:
        return math.inf
    return math.nan if isinstance(result, complex) else result



def integral(op: Callable[[float], int]) -> Callable[[Value], Value]:
    """FLOOR, CEIL, TRUNC: a DOUBLE; infinities and NaN stay what they are."""
    return lambda v: float(op(v)) if math.isfinite(v) else float(v)


def square_root(v: Value) -> Value:
    return math.nan if v < 0 else math.sqrt(v)


def absolute(v: Value) -> Value:
    return bigint(abs(v))



def check_widening(a: Value, b: Value) -> None:
    """An integer compared with a DECIMAL(w, s) is cast to DECIMAL(max(w - s, 19) + s, s),
    at most 38 digits: DuckDB raises when the integer does not fit."""
    dec, other = (a, b) if isinstance(a, Dec) else (b, a)
    if is_int(other) and max(dec.width - dec.scale, 19) + dec.scale > 38:
        if abs(other) >= 10 ** (38 - dec.scale):
            raise OverflowError("integer out of range for the DECIMAL comparison")


def round_int(v: int, n: int) -> int:
    """ROUND of an integer stays one: to tens, hundreds, … half away from zero."""
    if n >= 0:
        return v
    unit = 10 ** min(-n, 40)
    q, r = divmod(abs(v), unit)
    return bigint(int(math.copysign((q + (2 * r >= unit)) * unit, v)))


def substring(s: str, start: int, length: int | None) -> str:
    """DuckDB's SUBSTRING(s, start, length): 1-based; a negative start counts from the
    end, a negative length takes the characters before start; clipped to the string."""
    n = len(s)
    pos = start - 1 if start > 0 else n + start if start < 0 else -1
    if length is None:
        lo, hi = pos, n
    else:
        lo, hi = (pos, pos + length) if length >= 0 else (pos + length, pos)
    lo, hi = max(lo, 0), min(hi, n)
    return s[lo:hi] if lo < hi else ""


def round_half_away(v: float, n: int) -> float:
    if not math.isfinite(v):
        return v
    scale = 10.0**n
    return math.copysign(math.floor(abs(v) * scale + 0.5) / scale, v)


def round_double(v: float, n: int) -> float:
    """DuckDB's ``ROUND(DOUBLE, n)``: ``std::round(v * 10^n) / 10^n``, half away from zero;
    ``v`` itself where that overflows (0 for negative ``n``)."""
    try:
        modifier = 10.0 ** abs(n)
    except OverflowError:
        modifier = math.inf
    scaled = v / modifier if n < 0 else v * modifier
    whole = math.floor(abs(scaled)) if math.isfinite(scaled) else scaled
    if math.isfinite(scaled) and abs(scaled) - whole >= 0.5:
        whole += 1
    result = math.copysign(whole, scaled) * modifier if n < 0 else math.copysign(whole, scaled) / modifier
    if math.isfinite(result):
        return result
    return 0.0 if n < 0 else v


def cast(v: Value, to: exp.DataType) -> Value:
    """``CAST(v AS to)`` as DuckDB computes it; raises where DuckDB does (out of range,
    not a number), which ``TRY`` and the guard's domain enumeration turn into NULL /
    no public domain."""
    if v is None:
        return None
    kind = to.this
    if kind in _INT_BITS:
        return _to_int(v, _INT_BITS[kind])
    if kind in (exp.DType.FLOAT, exp.DType.DOUBLE):
        return float(v.strip() if isinstance(v, str) else v)
    if kind == exp.DType.DECIMAL:
        return _to_decimal(v, to)
    if kind in (exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.CHAR):
        return text(v)
    if kind == exp.DType.DATE:
        return as_date(v)
    if kind == exp.DType.BOOLEAN:
        if isinstance(v, str):
            low = v.lower()
            if low in ("true", "t", "yes", "y", "1"):
                return True
            if low in ("false", "f", "no", "n", "0"):
                return False
            raise ValueError("not a boolean")
        return bool(v)
    raise Unsupported(f"cast to {kind}")


def _to_int(v: Value, bits: int) -> int:
    """DOUBLE rounds half to even; text and DECIMAL half away from zero (DuckDB 2.0)."""
    if isinstance(v, str):
        v = decimal.Decimal(v.strip())
        if not v.is_finite():
            raise ValueError("not a number")
        result = int(v.to_integral_value(decimal.ROUND_HALF_UP))
    elif isinstance(v, Dec):
        result = int(decimal.Decimal(v).to_integral_value(decimal.ROUND_HALF_UP))
    elif isinstance(v, float):
        result = round(v)  # OverflowError / ValueError for inf and NaN, as DuckDB raises
    elif isinstance(v, int):
        result = int(v)
    else:
        raise ValueError(f"cannot cast {type(v).__name__} to an integer")
    if not -(2 ** (bits - 1)) <= result < 2 ** (bits - 1):
        raise OverflowError("out of range for the integer type")
    return result


def _to_decimal(v: Value, to: exp.DataType) -> Dec:
    """DECIMAL(p, s) (default (18, 3)): rounded half away from zero to s digits; raises
    when the integer part needs more than p - s digits."""
    params = [int(p.name) for p in to.expressions]
    width, scale = (params + [18, 3][len(params):])[:2] if params else (18, 3)
    if isinstance(v, str):
        exact = decimal.Decimal(v.strip())
    elif isinstance(v, (int, float)):
        exact = decimal.Decimal(v)
    else:
        raise ValueError(f"cannot cast {type(v).__name__} to DECIMAL")
    if not exact.is_finite():
        raise ValueError("not a number")
    with decimal.localcontext() as ctx:
        ctx.prec = 80
        rounded = exact.quantize(decimal.Decimal(1).scaleb(-scale), decimal.ROUND_HALF_UP)
    if abs(rounded) >= decimal.Decimal(10) ** (width - scale):
        raise OverflowError("out of range for the DECIMAL type")
    return Dec(float(rounded), width, scale)


def text(v: Value) -> str:
    if isinstance(v, Dec):
        return f"{float(v):.{v.scale}f}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return f"{v:.1f}"
    return v.isoformat() if isinstance(v, dt.date) else str(v)


def as_date(v: Value) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if isinstance(v, str):
        return dt.date.fromisoformat(v[:10])
    raise Unsupported("not a date")


def date_part(part: str, d: dt.date) -> int:
    if part == "YEAR":
        return d.year
    if part == "QUARTER":
        return (d.month - 1) // 3 + 1
    if part == "MONTH":
        return d.month
    if part == "DAY":
        return d.day
    if part in ("DOW", "DAYOFWEEK"):
        return d.isoweekday() % 7
    if part in ("DOY", "DAYOFYEAR"):
        return d.timetuple().tm_yday
    if part == "WEEK":
        return d.isocalendar()[1]
    raise Unsupported(part)


def trunc_date(part: str, d: dt.date) -> dt.date:
    if part == "YEAR":
        return dt.date(d.year, 1, 1)
    if part == "QUARTER":
        return dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    if part == "MONTH":
        return dt.date(d.year, d.month, 1)
    if part == "WEEK":
        return d - dt.timedelta(days=d.weekday())
    if part == "DAY":
        return d
    raise Unsupported(part)
