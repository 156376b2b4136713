"""What the guard knows of a value's type: :class:`Info`, the SQL type families, and the
rules for mixing them (which operands may meet without an implicit per-row conversion).

Apart from :mod:`query_guard.typer` (the inference over expressions) because rules and
the post-processing typer read these facts without inferring anything.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import ImplicitCastError, TypeMismatchError
from query_guard.literals import is_string, parse_date
from query_guard.positions import show

NUMERIC = frozenset({"int", "float"})
EPOCH = dt.date(1970, 1, 1)
INT_TYPES = frozenset({exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT})
FLOAT_TYPES = frozenset({exp.DType.FLOAT, exp.DType.DOUBLE, exp.DType.DECIMAL})
TEXT_TYPES = frozenset({exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.CHAR})
#: Longest LIKE pattern: bounds the per-row cost of matching (timing, issue 12).
MAX_PATTERN_CHARS = 100
#: The most characters one text expression may build for one row (concatenation), from its
#: columns' declared ``max_length`` and its literals: bounds one row's work (timing).
MAX_TEXT_CHARS = 10_000
#: LIKE's worst case is (text length) × (pattern length) steps per row (DuckDB matches
#: ``%…_…`` patterns by backtracking, ~0.3 ns a step): at most this many per row, ~15 µs
#: (bench/bench_timing.py measured 62 µs at 200,000; docs/privacy.md, "Timing").
MAX_LIKE_STEPS = 50_000
#: A number or date turned into text has at most this many characters.
NON_TEXT_CHARS = 40
#: DECIMAL(width, scale) as DuckDB accepts it (a wider one is a binder error).
MAX_DECIMAL_WIDTH = 38
DATE_PART_RANGE = {
    "QUARTER": (1, 4),
    "MONTH": (1, 12),
    "WEEK": (1, 53),
    "DAY": (1, 31),
    "DOW": (0, 6),
    "DAYOFWEEK": (0, 6),
    "DOY": (1, 366),
    "DAYOFYEAR": (1, 366),
}


@dataclass(frozen=True)
class Info:
    """Type and (if numeric or date) closed bounds of an expression's values."""

    type: str  # int | float | text | date | bool | null
    lo: float | None = None
    hi: float | None = None
    literal: bool = False

    @property
    def bounded(self) -> bool:
        return (
            self.lo is not None
            and self.hi is not None
            and math.isfinite(self.lo)
            and math.isfinite(self.hi)
        )


def to_date(days: float) -> dt.date:
    """Days since 1970-01-01 (the catalog's date bounds) → a date, clipped to 1..9999."""
    days = max(min(days, 2_932_896.0), -719_162.0)
    return EPOCH + dt.timedelta(days=int(math.floor(days)))


def type_family(infos: list[Info], parent: exp.Expr, ctx: Context, nodes: list[exp.Expr]) -> str:
    families = set()
    for info in infos:
        if info.type == "null":
            continue
        if info.type in NUMERIC:
            families.add("numeric")
        elif info.type == "text" and info.literal:
            families.add("text_literal")
        else:
            families.add(info.type)
    if "text_literal" in families:
        families.discard("text_literal")
        if not families:
            return "text"
        if families == {"date"}:
            date_literals(infos, nodes, ctx)
            return "date"
        if families <= {"text"}:
            return families.pop()
        families.add("text")
    if len(families) > 1:
        ctx.refuse(
            TypeMismatchError,
            f"{parent.key.upper()} mixes {' and '.join(sorted(families))} values"
            f" ({show(parent, 50)}): cast explicitly with TRY_CAST",
            parent,
        )
    return families.pop() if families else "null"


def date_literals(infos: list[Info], nodes: list[exp.Expr], ctx: Context) -> None:
    """Text literals that meet a date must name a valid date (``rules/safe_arithmetic``
    then writes them as typed DATE literals); decided here, never at run time."""
    for info, node in zip(infos, nodes, strict=True):
        while isinstance(node, exp.Paren):
            node = node.this
        if info.type == "text" and info.literal and is_string(node):
            if parse_date(str(node.this)) is None:
                ctx.refuse(
                    ImplicitCastError,
                    f"text '{str(node.this)[:30]}' used as a date: not a valid YYYY-MM-DD"
                    " date (the engine would convert it row by row)",
                    node,
                )
