"""Log entries: RFC 8785 canonical JSON, the running hash chain, and decoding checks.

An entry is the RFC 8785 (JCS) serialisation, by the maintained ``rfc8785`` library, of::

    {"seq": 0, "time": "2025-01-31T09:30:00.000000Z", "actor": "alice", "role": "owner",
     "action": "approval.created", "subject": "approval:7", "details": {...},
     "prev": "<64 hex: chain hash of entry seq-1, or 64 zeros for seq 0>"}

``time`` is RFC 3339 in UTC with exactly six fractional digits and ``Z``, so that string
order is time order. The Merkle leaf is the canonical bytes (leaf hash = SHA-256(0x00 ||
bytes), RFC 6962). The chain hash is::

    chain[-1] = 32 zero bytes
    chain[n]  = SHA-256(chain[n-1] || leaf_hash[n])

and every entry names its predecessor's chain hash in ``prev``. The tree proves
inclusion and append-only growth against a signed root; the chain lets a reader of an
export localise damage to one entry without any signature (an edit breaks exactly the link
after the edited entry).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import rfc8785

from audit_log.errors import EntryError
from audit_log.hashing import hash_leaf

ZERO_CHAIN: Final = bytes(32)
ZERO_CHAIN_HEX: Final = "0" * 64
FIELDS: Final = frozenset(
    {"seq", "time", "actor", "role", "action", "subject", "details", "prev"}
)
_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")
_ASTRAL_RE: Final = re.compile("[\U00010000-\U0010ffff]")
_MARK_HEX: Final = secrets.token_hex(8)
_MARK: Final = f"\x00{_MARK_HEX}:"  # per-process random: entries cannot forge it
_MARK_ESCAPED: Final = f"\\u0000{_MARK_HEX}:"
_LONG_DIGITS_RE: Final = re.compile(rb"[:,\[]-?\d{16}")  # a 16+-digit number token


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``; naive datetimes are refused.

    >>> from datetime import timezone, timedelta
    >>> format_time(datetime(2025, 1, 31, 17, 30, tzinfo=timezone(timedelta(hours=8))))
    '2025-01-31T09:30:00.000000Z'
    """
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise EntryError("entry time must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    if not _TIME_RE.fullmatch(text):
        raise EntryError(f"time {text!r} is not RFC 3339 UTC with microseconds")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def chain_hash(prev_chain: bytes, leaf_hash: bytes) -> bytes:
    """chain[n] = SHA-256(chain[n-1] || leaf_hash[n]) (see module docstring)."""
    return hashlib.sha256(prev_chain + leaf_hash).digest()


@dataclass(frozen=True)
class Entry:
    """One audit-log entry before encoding. ``details`` must be JSON data (no NaN)."""

    seq: int
    time: str
    actor: str
    role: str
    action: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)
    prev: str = ZERO_CHAIN_HEX

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
            "prev": self.prev,
        }

    def encode(self) -> bytes:
        """The canonical RFC 8785 bytes (the Merkle leaf data)."""
        _check_fields(self.to_dict())
        try:
            return rfc8785.dumps(self.to_dict())
        except rfc8785.CanonicalizationError as exc:
            raise EntryError(f"entry details are not canonical JSON data: {exc}") from None


def _check_fields(obj: dict[str, Any]) -> None:
    if set(obj) != FIELDS:
        missing, extra = FIELDS - set(obj), set(obj) - FIELDS
        raise EntryError(f"entry fields wrong: missing {sorted(missing)}, extra {sorted(extra)}")
    seq = obj["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise EntryError("seq must be a non-negative integer")
    for name in ("time", "actor", "role", "action", "subject", "prev"):
        if not isinstance(obj[name], str):
            raise EntryError(f"{name} must be a string")
    if not _TIME_RE.fullmatch(obj["time"]):
        raise EntryError(f"time {obj['time']!r} is not RFC 3339 UTC with microseconds")
    if not obj["action"]:
        raise EntryError("action must not be empty")
    if not isinstance(obj["details"], dict):
        raise EntryError("details must be a JSON object")
    if not _HEX64_RE.fullmatch(obj["prev"]):
        raise EntryError("prev must be 64 lowercase hex digits")


def _parse_constant(text: str) -> float:
    raise EntryError(f"{text} is not JSON")


def _int_or_double(text: str) -> int | float:
    """JSON numbers are IEEE doubles (RFC 8785 §3.2.2.3): an integer token beyond 2^53 is
    read as the double it denotes, so re-encoding shows whether it was canonical."""
    value = int(text)
    return value if abs(value) < 2**53 else float(value)


def _plain_float(text: str) -> bool:
    """True when ``text`` is already the RFC 8785 form of its float: Python's repr and
    ECMA-262 7.1.12.1 both print the shortest round-trip digits and agree whenever repr
    uses neither an exponent nor a trailing ``.0``."""
    return "e" not in text and "E" not in text and not text.endswith(".0") and repr(float(text)) == text


def check_canonical(line: bytes) -> dict[str, Any]:
    """Check that ``line`` is exactly the RFC 8785 encoding of a valid entry; return it.

    SECURITY: floats in the returned object are replaced by opaque markers (only ``seq``
    and ``prev`` are meant to be read); use ``decode`` for the real values.

    Fast path for verifying a million entries: the standard library's compact, key-sorted
    JSON equals JCS except (a) float formatting: each float is parsed to a marker and
    printed back in its RFC 8785 form (through ``rfc8785`` unless its repr already is);
    (b) integers beyond 2^53 and key order between keys holding characters beyond U+FFFF:
    lines that could contain either (a 16-digit number token, an astral character) are
    re-encoded entirely by ``rfc8785``. Tests cross-check against ``rfc8785.dumps``.
    """
    floats: list[str] = []

    def parse_float(token: str) -> str:
        floats.append(token)
        return f"{_MARK}{len(floats) - 1}"

    try:
        text = line.decode("utf-8")
        obj = json.loads(text, parse_float=parse_float, parse_constant=_parse_constant)
    except EntryError:
        raise
    except (ValueError, RecursionError) as exc:
        raise EntryError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EntryError("an entry is a JSON object")
    try:
        if _LONG_DIGITS_RE.search(line) or (not text.isascii() and _ASTRAL_RE.search(text)):
            expected = rfc8785.dumps(
                json.loads(text, parse_int=_int_or_double, parse_constant=_parse_constant)
            )
        else:
            out = json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            for i, token in enumerate(floats):
                canonical = token if _plain_float(token) else rfc8785.dumps(float(token)).decode()
                out = out.replace(f'"{_MARK_ESCAPED}{i}"', canonical, 1)
            expected = out.encode()
    except (UnicodeEncodeError, ValueError) as exc:  # rfc8785 errors are ValueErrors
        raise EntryError(f"not encodable as RFC 8785: {exc}") from None
    if expected != line:
        raise EntryError("entry is not in RFC 8785 canonical form")
    _check_fields(obj)
    return obj


def decode(line: bytes) -> dict[str, Any]:
    """Decode one entry after checking it is exactly its canonical form (``EntryError``)."""
    check_canonical(line)
    result: dict[str, Any] = json.loads(line)
    return result


def leaf_hash_of(line: bytes) -> bytes:
    return hash_leaf(line)
