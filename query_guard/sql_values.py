"""Scalar value semantics of DuckDB that ``query_guard.evaluate`` reproduces in Python:
rounding, casts, text rendering, date parts and truncation."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlglot import exp

Value = Any


class Unsupported(Exception):
    """The expression uses a construct this evaluator does not implement."""


def round_half_away(v: float, n: int) -> float:
    if not math.isfinite(v):
        return v
    scale = 10.0**n
    return math.copysign(math.floor(abs(v) * scale + 0.5) / scale, v)


def cast(v: Value, to: exp.DataType) -> Value:
    if v is None:
        return None
    kind = to.this
    try:
        if kind in (exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT):
            if isinstance(v, str):
                v = float(v.strip())
            if isinstance(v, float):
                if not math.isfinite(v):
                    return None
                v = round(v)  # DuckDB rounds half to even when casting DOUBLE to integer
            result = int(v)
            return result if -(2**63) <= result < 2**63 else None
        if kind in (exp.DType.FLOAT, exp.DType.DOUBLE, exp.DType.DECIMAL):
            return float(v.strip() if isinstance(v, str) else v)
        if kind in (exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.CHAR):
            return text(v)
        if kind == exp.DType.DATE:
            return as_date(v)
        if kind == exp.DType.BOOLEAN:
            if isinstance(v, str):
                low = v.strip().lower()
                return (
                    True
                    if low in ("true", "t", "1")
                    else False
                    if low in ("false", "f", "0")
                    else None
                )
            return bool(v)
    except (ValueError, TypeError, OverflowError):
        return None
    raise Unsupported(f"cast to {kind}")


def text(v: Value) -> str:
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
