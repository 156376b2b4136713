"""Typed literals decided at plan time (issue 12, "Total expressions").

DuckDB converts a text literal next to a DATE *per row*, when a row reaches it, so
``CASE WHEN cost > 4999 THEN visit_date = 'garbage' END`` raises only if some row has a
cost above 4999: an error whose occurrence depends on the data. The guard instead reads
such a literal once, at plan time: a valid ``YYYY-MM-DD`` date becomes a typed DATE
literal in the engine query; anything else is refused before any data is read.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlglot import exp

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The calendar range every engine the plan may run on reads the same way.
FIRST_DAY = dt.date(1, 1, 1)
LAST_DAY = dt.date(9999, 12, 31)


def parse_date(text: str) -> dt.date | None:
    """The date a ``YYYY-MM-DD`` text names, or None (strict: no spaces, no time, no
    week dates, no ``infinity``).

    >>> parse_date("2024-02-29"), parse_date("2023-02-29"), parse_date(" 2024-01-01")
    (datetime.date(2024, 2, 29), None, None)
    """
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def date_literal(day: dt.date) -> exp.Expr:
    """``TRY_CAST('YYYY-MM-DD' AS DATE)``: a constant that cannot fail (TRY_CAST in
    case a dialect reads the text differently; the value was validated here)."""
    return exp.TryCast(this=exp.Literal.string(day.isoformat()), to=exp.DataType.build("DATE"))


def is_string(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Literal) and bool(node.is_string)


def is_number(node: exp.Expr | None) -> bool:
    """A numeric literal, or one negated (``-5``)."""
    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string
