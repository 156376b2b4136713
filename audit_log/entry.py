"""Log entries: RFC 8785 canonical JSON, the running hash chain, and decoding checks.

An entry is the RFC 8785 (JCS) serialisation of the object below: ``canonical_json``
encodes with the C ``json`` encoder plus the maintained ``rfc8785`` library for numbers
(and for whole entries it cannot handle exactly), and equals ``rfc8785.dumps`` byte for
byte (property-tested)::

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
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import rfc8785

from audit_log.errors import EntryError
from audit_log.hashing import hash_leaf

ZERO_CHAIN: Final = bytes(32)
ZERO_CHAIN_HEX: Final = "0" * 64
FIELDS: Final = frozenset({"seq", "time", "actor", "role", "action", "subject", "details", "prev"})
_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")
_ASTRAL_RE: Final = re.compile("[\U00010000-\U0010ffff]")
_MARK_HEX: Final = secrets.token_hex(8)
_MARK: Final = f"\x00{_MARK_HEX}:"  # per-process random: entries cannot forge it
_MARK_ESCAPED: Final = f"\\u0000{_MARK_HEX}:"


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
        obj = self.to_dict()
        _check_fields(obj)
        return canonical_json(obj)


def _mark_floats(value: Any, floats: list[float]) -> Any:
    """Copy of ``value`` with each float replaced by a marker string (see canonical_json)."""
    if isinstance(value, str) or value is None or value is True or value is False:
        return value
    if isinstance(value, float):
        floats.append(value)
        return f"{_MARK}{len(floats) - 1}"
    if isinstance(value, int):
        if not -(2**53) < value < 2**53:
            raise EntryError(f"integer {value} is outside the I-JSON range (RFC 8785 §3.2.2.3)")
        return int(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EntryError("JSON object keys must be strings")
            out[key] = _mark_floats(item, floats)
        return out
    if isinstance(value, list | tuple):
        return [_mark_floats(item, floats) for item in value]
    raise EntryError(f"{type(value).__name__} is not JSON data")


_FLOAT_TEXT: dict[float, str] = {}


def _float_text(number: float) -> str:
    """RFC 8785 text of a float, printed by ``rfc8785`` and remembered (ε and δ repeat)."""
    text = _FLOAT_TEXT.get(number)
    if text is None:
        text = rfc8785.dumps(number).decode()  # raises for NaN and infinities
        if len(_FLOAT_TEXT) > 10_000:
            _FLOAT_TEXT.clear()
        _FLOAT_TEXT[number] = text
    return text


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of JSON data; equal to ``rfc8785.dumps(value)``.

    ``rfc8785`` (pure Python) costs ~100 µs for a release entry; appends must be cheap
    (≥ 2,000 durable appends/s), so this encodes with the C ``json`` encoder, which equals
    JCS for strings (same escapes: ``\\b \\t \\n \\f \\r``, ``\\u00xx`` lowercase for other
    controls, no other escaping), integers and literals, and key order when no key holds
    a character beyond U+FFFF. Floats are printed by ``rfc8785`` itself (ECMA-262 7.1.12.1)
    through markers; text with astral characters is encoded by ``rfc8785`` entirely.
    A property test checks equality with ``rfc8785.dumps`` on generated data.
    """
    floats: list[float] = []
    marked = _mark_floats(value, floats)
    try:
        text = json.dumps(marked, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        if _ASTRAL_RE.search(text):
            return rfc8785.dumps(value)
        for i, number in enumerate(floats):
            text = text.replace(f'"{_MARK_ESCAPED}{i}"', _float_text(number), 1)
        return text.encode()
    except (UnicodeEncodeError, ValueError) as exc:  # rfc8785 errors are ValueErrors
        raise EntryError(f"not encodable as RFC 8785: {exc}") from None


_STRING_FIELDS: Final = ("time", "actor", "role", "action", "subject", "prev")


def _check_fields(obj: dict[str, Any]) -> None:
    if obj.keys() != FIELDS:
        missing, extra = FIELDS - set(obj), set(obj) - FIELDS
        raise EntryError(f"entry fields wrong: missing {sorted(missing)}, extra {sorted(extra)}")
    seq = obj["seq"]
    if type(seq) is not int or seq < 0:
        raise EntryError("seq must be a non-negative integer")
    for name in _STRING_FIELDS:
        if type(obj[name]) is not str:
            raise EntryError(f"{name} must be a string")
    if not _TIME_RE.fullmatch(obj["time"]):
        raise EntryError(f"time {obj['time']!r} is not RFC 3339 UTC with microseconds")
    if not obj["action"]:
        raise EntryError("action must not be empty")
    if type(obj["details"]) is not dict:
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


_FLOAT_OPEN: Final = f"\x00{_MARK_HEX}<"
_FLOAT_CLOSE: Final = f"\x00{_MARK_HEX}>"
_FLOAT_OPEN_JSON: Final = f'"\\u0000{_MARK_HEX}<'  # how the encoder prints the markers
_FLOAT_CLOSE_JSON: Final = f'\\u0000{_MARK_HEX}>"'
_FLOAT_TOKEN_RE: Final = re.compile(
    re.escape(_FLOAT_OPEN_JSON) + '([^\\\\"]*)' + re.escape(_FLOAT_CLOSE_JSON)
)
# One translation marks digits (\x01) and UTF-8 lead bytes of characters beyond U+FFFF
# (\x02): canonical JSON has no raw control bytes, so the marks cannot collide.
_SPECIAL_MARKED: Final = bytes.maketrans(
    b"0123456789" + bytes(range(0xF0, 0xF5)), b"\x01" * 10 + b"\x02" * 5
)
_SIXTEEN_DIGITS: Final = b"\x01" * 16
_CANONICAL_FLOATS: set[str] = set()
_DIGIT_BYTES: Final = frozenset(b"0123456789")


def _needs_rfc8785(data: bytes) -> bool:
    """Must ``data`` be re-encoded by ``rfc8785`` itself? True when it holds a character
    beyond U+FFFF (keys then sort by UTF-16 units, not code points) or could hold an
    integer token of 16+ digits (beyond 2^53, a double in RFC 8785). C-speed scans, then a
    look at the bytes around each 16-digit run (a number token follows ``:``, ``,`` or
    ``[`` and is followed by ``,``, ``]`` or ``}``)."""
    marked = data.translate(_SPECIAL_MARKED)
    if b"\x02" in marked:
        return True
    pos = marked.find(_SIXTEEN_DIGITS)
    while pos >= 0:
        start = pos
        while start > 0 and data[start - 1] in _DIGIT_BYTES:
            start -= 1
        end = pos + 16
        while end < len(data) and data[end] in _DIGIT_BYTES:
            end += 1
        before = start - 1 if start > 0 and data[start - 1] == 45 else start  # "-"
        if (before == 0 or data[before - 1] in b":,[") and (
            end == len(data) or data[end] in b",]}"
        ):
            return True
        pos = marked.find(_SIXTEEN_DIGITS, end)
    return False


def _canonical_float(token: str) -> bool:
    """Is ``token`` the RFC 8785 form of its double (as printed by ``rfc8785``)? Canonical
    tokens are remembered: a log repeats the same few ε and δ values a million times."""
    try:
        ok = rfc8785.dumps(float(token)).decode() == token
    except ValueError:  # overflow to infinity
        return False
    if ok:
        if len(_CANONICAL_FLOATS) > 100_000:
            _CANONICAL_FLOATS.clear()
        _CANONICAL_FLOATS.add(token)
    return ok


class _Checker:
    """A JSON decoder and encoder built once (building them per call costs more than the
    work itself). Float tokens are parsed into marked strings holding their literal text
    (by a C-level callable, ``str.format``: no Python frame per number), so the C encoder
    prints them back verbatim between markers that two ``str.replace`` calls remove."""

    def __init__(self) -> None:
        self.decoder = json.JSONDecoder(
            parse_float=(_FLOAT_OPEN + "{}" + _FLOAT_CLOSE).format, parse_constant=_parse_constant
        )
        self.encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def check(self, line: bytes) -> dict[str, Any]:
        try:
            text = line.decode("utf-8")
            obj, end = self.decoder.raw_decode(text)
        except EntryError:
            raise
        except (ValueError, RecursionError) as exc:
            raise EntryError(f"not JSON: {exc}") from None
        if end != len(text):
            raise EntryError("trailing data after the entry")
        if not isinstance(obj, dict):
            raise EntryError("an entry is a JSON object")
        try:
            if _needs_rfc8785(line):
                # integers beyond 2^53 are doubles; keys beyond U+FFFF sort by UTF-16
                expected = rfc8785.dumps(
                    json.loads(text, parse_int=_int_or_double, parse_constant=_parse_constant)
                )
            else:
                out = self.encoder.encode(obj)
                if _FLOAT_OPEN_JSON in out:
                    tokens = _FLOAT_TOKEN_RE.findall(out)
                    if not _CANONICAL_FLOATS.issuperset(tokens):
                        for token in tokens:
                            if not _canonical_float(token):
                                raise EntryError(
                                    f"number {token} is not in RFC 8785 canonical form"
                                )
                    out = out.replace(_FLOAT_OPEN_JSON, "").replace(_FLOAT_CLOSE_JSON, "")
                expected = out.encode()
        except (UnicodeEncodeError, ValueError) as exc:  # rfc8785 errors are ValueErrors
            raise EntryError(f"not encodable as RFC 8785: {exc}") from None
        if expected != line:
            raise EntryError("entry is not in RFC 8785 canonical form")
        _check_fields(obj)
        return obj


_checkers = threading.local()


def _checker() -> _Checker:
    checker = getattr(_checkers, "checker", None)
    if checker is None:
        checker = _checkers.checker = _Checker()
    return checker


def check_canonical(line: bytes) -> dict[str, Any]:
    """Check that ``line`` is exactly the RFC 8785 encoding of a valid entry; return it.

    SECURITY: numbers that are floats (or integers of 16+ digits) come back as opaque
    markers: only ``seq`` and ``prev`` are meant to be read; use ``decode`` for values.

    Fast path for verifying a million entries: the standard library's compact, key-sorted
    JSON equals JCS for strings, integers and literals, and for key order unless a key
    holds a character beyond U+FFFF (lines with astral characters are re-encoded entirely
    by ``rfc8785``). Each float token is compared with its RFC 8785 form (printed by
    ``rfc8785``), so ``1.0``, ``1e-06`` or ``0.30000000000000004``-style non-shortest forms
    fail. Tests cross-check against ``rfc8785.dumps`` on generated data.
    """
    return _checker().check(line)


def decode(line: bytes) -> dict[str, Any]:
    """Decode one entry after checking it is exactly its canonical form (``EntryError``)."""
    check_canonical(line)
    result: dict[str, Any] = json.loads(line)
    return result


def leaf_hash_of(line: bytes) -> bytes:
    return hash_leaf(line)
