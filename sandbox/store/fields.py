"""Small validators for request fields shared by the workflow's service functions.

Each raises ``BadRequest`` (400) naming the field, or ``NotFound`` for an id that cannot be
one (the same answer as for an id that does not exist).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any, Final

from sandbox.errors import BadRequest, NotFound, SandboxError
from sandbox.store.request_limits import finite_in_range
from sandbox.store.users import get_user

MAX_TEXT: Final = 5000


def conflict(message: str) -> SandboxError:
    """409: the request is allowed but the object's state refuses it (already decided, …)."""
    return SandboxError(message, code="conflict", status=409)


def text(body: dict[str, Any], name: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    """A stripped string field; ``missing_<name>`` when required and empty."""
    value = body.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string")
    value = value.strip()
    if required and not value:
        raise BadRequest(f"{name} is required", code=f"missing_{name}")
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


def ident(value: Any, what: str) -> int:
    """An object id: a JSON integer or a string of ASCII digits (booleans, fractions and
    other scripts' digits are not ids); anything else reads like an id that does not exist."""
    if isinstance(value, bool):
        raise NotFound(f"no {what} {value}")
    if isinstance(value, int):
        result = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        result = int(value)  # at most 19 digits: int() refuses over 4,300, and 2**63 has 19
    else:
        raise NotFound(f"no {what} {value}")
    if not 0 <= result < 2**63:  # beyond SQLite integers: cannot exist
        raise NotFound(f"no {what} {value}")
    return result


def names(value: Any, what: str) -> list[str]:
    """A non-empty list of names, lower-cased, duplicates dropped, order kept."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f"{what} must be a non-empty list of names")
    return list(dict.fromkeys(v.lower() for v in value))


def number(body: dict[str, Any], name: str, *, low: float, high: float, low_open: bool = True) -> float:
    """A finite number in (low, high] (or [low, high] with ``low_open=False``); ``bad_<name>``."""
    value = body.get(name)
    # never OverflowError: a 401-digit integer is a number, simply out of range
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            isinstance(value, float) and not math.isfinite(value)):
        raise BadRequest(f"{name} is required and must be a number", code=f"bad_{name}")
    if finite_in_range(value, low, high) is None or (low_open and value == low):
        raise BadRequest(f"{name} must be {'above' if low_open else 'at least'} {low:g} and at most {high:g}",
                         code=f"bad_{name}")
    return float(value)


def username_of(conn: sqlite3.Connection, user_id: int | None) -> str | None:
    if user_id is None:
        return None
    user = get_user(conn, user_id)
    return user.username if user else None
