"""The range of every number and the rules for the SQL text in a query request: one place.

Each function takes the raw JSON value (as ``json.loads`` gives it: ``bool``, ``int`` of any
size, ``float`` including ``nan``/``inf`` since Python's parser accepts ``NaN`` and
``Infinity``, ``str``, ``list``, ``dict`` or ``None``) and returns a clean ``float``/``int``/
``str``, or raises :class:`~sandbox.errors.BadRequest` (400) with a stable code and a
message that names the range. They never raise anything else: no ``OverflowError`` on a
401-digit integer (it is compared as an exact integer before any conversion), no
``UnicodeEncodeError`` on a lone surrogate. Issue 12, finding 5 and "Deliver → Clean input".

=================  =========================================  ===================
field              accepted                                   code when refused
=================  =========================================  ===================
``epsilon``        number, ``EPSILON_MIN`` ≤ ε ≤ the           ``bad_epsilon``
                   approval's per-query cap (absent or null:
                   min(cap, 1))
``confidence``     number, ``CONFIDENCE_MIN`` ≤ c ≤            ``bad_confidence``
                   ``CONFIDENCE_MAX``
``expected_rows``  integer, 1 ≤ n ≤ ``EXPECTED_ROWS_MAX``      ``bad_expected_rows``
``half_width``     number, 0 < h ≤ ``HALF_WIDTH_MAX``          ``bad_accuracy``
``sql``            string of Unicode scalar values (no lone    ``missing_sql`` (absent,
                   surrogate), not blank, at most              not a string, blank),
                   ``SQL_MAX_CHARS`` characters                ``invalid_sql_text``
=================  =========================================  ===================

``docs/api.md`` ("Input ranges") and the OpenAPI schemas (``sandbox.web.api.openapi``) repeat
this table; ``tests/test_request_limits.py`` checks that they agree.

Why these bounds:

* ε floor ``1e-3``: below it the noise scale is above 1000 × the sensitivity, so no figure
  carries information, while calibration works with ever smaller floats down to
  subnormals (5e-324 overflowed the scale to ``inf``; 1e-300 made the ρ search loop
  forever). The floor keeps every accepted ε far inside float range.
* ``EPSILON_MAX`` (1000) is the largest per-query cap an approval can hold (an owner's
  ``epsilon_total`` is at most 1000, ``sandbox.governance.applications``); ε above it is refused
  whatever an approval's cap says.
* confidence in [0.5, 0.999]: intervals below 50 % mean nothing; above 99.9 % the
  half-width grows without bound while the tail probability 1 − c underflows meaning.
* expected_rows ≤ 10⁹: a researcher's guess of one group's size; above any dataset the
  sandbox is sized for.
* SQL at most 100 000 characters: far above any hand-written query, below the 1 MiB body
  limit; a lone surrogate cannot be stored (SQLite, UTF-8) or hashed into the audit log
  (RFC 8785 needs valid Unicode), so it is refused before anything else reads it, and the
  refusal is logged with :func:`printable` text.
"""

from __future__ import annotations

import math
from typing import Any, Final

from privacy.accounting import TOLERANCE
from sandbox.errors import BadRequest

EPSILON_MIN: Final = 1e-3
EPSILON_MAX: Final = 1000.0
EPSILON_DEFAULT_MAX: Final = 1.0  # ε when none is asked: min(per-query cap, 1)
CONFIDENCE_MIN: Final = 0.5
CONFIDENCE_MAX: Final = 0.999
CONFIDENCE_DEFAULT: Final = 0.95
EXPECTED_ROWS_MIN: Final = 1
EXPECTED_ROWS_MAX: Final = 10**9
HALF_WIDTH_MAX: Final = 1e15
SQL_MAX_CHARS: Final = 100_000


def _is_number(value: Any) -> bool:
    """A JSON number: int or float, never bool (``True`` is an ``int`` in Python)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite_in_range(value: Any, low: float, high: float) -> float | None:
    """``float(value)`` if it is a finite JSON number in [low, high], else None; never
    raises. An ``int`` is compared exactly before conversion, so 10**400 is simply out of
    range (``math.isfinite(10**400)`` and ``float(10**400)`` raise ``OverflowError``).
    For other request numbers (``sandbox.store.fields.number``) to share the same reading.

    >>> finite_in_range(10**400, 0, 1000), finite_in_range(True, 0, 1), finite_in_range(3, 0, 5)
    (None, None, 3.0)
    """
    if not _is_number(value):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not low <= value <= high:
        return None
    return float(value)


def epsilon(value: Any, per_query_cap: float) -> float:
    """The ε of one query: ``EPSILON_MIN`` ≤ ε ≤ ``per_query_cap`` (+ the ledger's float
    tolerance); absent (None) means min(cap, 1). Code ``bad_epsilon``.

    >>> epsilon(0.5, 1.0), epsilon(None, 4.0), epsilon(1, 2.0)
    (0.5, 1.0, 1.0)
    """
    cap = float(per_query_cap)
    if value is None:
        value = min(cap, EPSILON_DEFAULT_MAX)
        if value < EPSILON_MIN:
            raise BadRequest(f"this approval's per-query cap {cap:g} is below the smallest ε a "
                             f"query may use ({EPSILON_MIN:g})", code="bad_epsilon")
        return float(value)
    high = min(cap, EPSILON_MAX) + TOLERANCE
    clean = finite_in_range(value, EPSILON_MIN, high)
    if clean is None:
        raise BadRequest(f"epsilon must be a number from {EPSILON_MIN:g} to this approval's "
                         f"per-query cap {cap:g}", code="bad_epsilon")
    return clean


def confidence(value: Any) -> float:
    """The confidence level of intervals: ``CONFIDENCE_MIN`` ≤ c ≤ ``CONFIDENCE_MAX``.
    Code ``bad_confidence``. (An absent field means ``CONFIDENCE_DEFAULT``: the caller's
    choice; an explicit null is refused.)

    >>> confidence(0.95), confidence(0.999)
    (0.95, 0.999)
    """
    clean = finite_in_range(value, CONFIDENCE_MIN, CONFIDENCE_MAX)
    if clean is None:
        raise BadRequest(f"confidence must be a number from {CONFIDENCE_MIN:g} to "
                         f"{CONFIDENCE_MAX:g}", code="bad_confidence")
    return clean


def expected_rows(value: Any) -> int | None:
    """A researcher's guess of one group's size: an integer from 1 to ``EXPECTED_ROWS_MAX``
    (a float with an integral value, such as 3000.0, is accepted); None stays None.
    Code ``bad_expected_rows``."""
    if value is None:
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not (isinstance(value, int) and not isinstance(value, bool)
            and EXPECTED_ROWS_MIN <= value <= EXPECTED_ROWS_MAX):
        raise BadRequest(f"expected_rows must be an integer from {EXPECTED_ROWS_MIN} to "
                         f"{EXPECTED_ROWS_MAX}", code="bad_expected_rows")
    return int(value)


def half_width(value: Any) -> float:
    """The ± of a target accuracy: a number above 0 and at most ``HALF_WIDTH_MAX``.
    Code ``bad_accuracy`` (the field lives inside ``accuracy``)."""
    clean = finite_in_range(value, 0.0, HALF_WIDTH_MAX)
    if clean is None or clean <= 0:
        raise BadRequest(f"accuracy.half_width must be a number above 0 and at most "
                         f"{HALF_WIDTH_MAX:g}", code="bad_accuracy")
    return clean


def is_scalar_text(text: str) -> bool:
    """True when ``text`` holds only Unicode scalar values (no lone surrogate), i.e. it can
    be encoded as UTF-8 and so stored, hashed and logged.

    >>> is_scalar_text("SELECT 1 -- 你好"), is_scalar_text("SELECT 1 -- \\ud800")
    (True, False)
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sql_text(value: Any) -> str:
    """The SQL of a request, unchanged, if it is a non-blank string of at most
    ``SQL_MAX_CHARS`` Unicode scalar values. Codes: ``missing_sql`` (absent, not a string,
    blank), ``invalid_sql_text`` (too long, or a lone surrogate such as ``\\ud800``).

    SECURITY: the message never echoes the text. The caller logs the refusal with
    :func:`printable` (issue 12, finding 4: such a refusal was a 500, never logged).
    """
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("field 'sql' is required and must be a non-empty string",
                         code="missing_sql")
    if len(value) > SQL_MAX_CHARS:
        raise BadRequest(f"the SQL text is {len(value)} characters long; at most "
                         f"{SQL_MAX_CHARS} are accepted", code="invalid_sql_text")
    if not is_scalar_text(value):
        at = next(i for i, ch in enumerate(value) if 0xD800 <= ord(ch) <= 0xDFFF)
        raise BadRequest(f"the SQL text is not valid Unicode: a lone surrogate "
                         f"U+{ord(value[at]):04X} at character {at + 1}; send UTF-8 text",
                         code="invalid_sql_text")
    return value


def printable(sql: Any) -> str:
    """A storable form of any request's SQL for the refusal log: lone surrogates become
    ``\\udXXX`` escapes (valid text stays as it is), cut to ``SQL_MAX_CHARS``.

    >>> printable("SELECT 1 -- \\ud800")
    'SELECT 1 -- \\\\ud800'
    """
    text = sql if isinstance(sql, str) else "" if sql is None else repr(sql)
    text = text[:SQL_MAX_CHARS]
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


__all__ = [
    "CONFIDENCE_DEFAULT", "CONFIDENCE_MAX", "CONFIDENCE_MIN", "EPSILON_MAX", "EPSILON_MIN",
    "EXPECTED_ROWS_MAX", "EXPECTED_ROWS_MIN", "HALF_WIDTH_MAX", "SQL_MAX_CHARS", "confidence",
    "epsilon", "expected_rows", "finite_in_range", "half_width", "is_scalar_text", "printable",
    "sql_text",
]
