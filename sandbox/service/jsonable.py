"""Released values as the audit log and a response can hold them (canonical JSON, RFC 8785).

Why a module of its own: a release, a dummy run and a preview shape their figures alike
(``sandbox.service.pipeline``, ``dummy``, ``public_dummy``, ``preview``), and none may raise
on a value the noise or the engine produced.
"""

from __future__ import annotations

import math
from typing import Any

#: The integers canonical JSON (RFC 8785, I-JSON) holds exactly; beyond, a value is text.
JSON_SAFE_INTEGER = 2**53 - 1


def finite_or_none(x: float | None) -> float | None:
    """A float for JSON, or None when it is missing or not finite."""
    return None if x is None or not math.isfinite(x) else float(x)


def jsonable_rows(rows: list[list[Any]]) -> list[list[Any]]:
    """Released values as the audit log and the response can hold them, never raising:
    dates and other types as text, integers beyond ±(2⁵³ − 1) as text (exact)."""
    def one(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str | float):
            return v
        if isinstance(v, int):
            return v if -JSON_SAFE_INTEGER <= v <= JSON_SAFE_INTEGER else str(v)
        return str(v)

    return [[one(v) for v in row] for row in rows]
