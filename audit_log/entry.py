"""Log entries: RFC 8785 canonical JSON, the running hash chain, and decoding checks.

An entry is the RFC 8785 (JCS) serialisation of the object below (encoded and checked
by ``audit_log.canonical``, which equals the maintained ``rfc8785`` library byte for
byte, property-tested)::

    {"seq": 0, "time": "2025-01-31T09:30:00.000000Z", "actor": "alice", "role": "owner",
     "action": "approval.created", "subject": "approval:7", "details": {...},
     "prev": "<64 hex: chain hash of entry seq-1, or 64 zeros for seq 0>"}

``time`` is RFC 3339 in UTC with exactly six fractional digits and ``Z``, so that string
order is time order. The Merkle leaf is the canonical bytes (leaf hash = H(0x00 ||
bytes), RFC 6962, H = SHA-256, or SM3 in the ``sm`` profile). The chain hash is::

    chain[-1] = 32 zero bytes
    chain[n]  = H(chain[n-1] || leaf_hash[n])

and every entry names its predecessor's chain hash in ``prev``. The tree proves
inclusion and append-only growth against a signed root; the chain lets a reader of an
export localise damage to one entry without any signature (an edit breaks exactly the link
after the edited entry).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from audit_log import canonical
from audit_log.errors import EntryError
from audit_log.hashing import SHA256, TreeHash

ZERO_CHAIN: Final = bytes(32)
ZERO_CHAIN_HEX: Final = "0" * 64
FIELDS: Final = frozenset({"seq", "time", "actor", "role", "action", "subject", "details", "prev"})
_TIME_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")

canonical_json = canonical.encode  # RFC 8785 bytes of JSON data (the name appends use)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``; naive datetimes are refused.

    >>> from datetime import timezone, timedelta
    >>> format_time(datetime(2025, 1, 31, 17, 30, tzinfo=timezone(timedelta(hours=8))))
    '2025-01-31T09:30:00.000000Z'
    """
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise EntryError("entry time must be a timezone-aware datetime (e.g. datetime.now(UTC))")
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def chain_hash(prev_chain: bytes, leaf_hash: bytes, th: TreeHash = SHA256) -> bytes:
    """chain[n] = H(chain[n-1] || leaf_hash[n]) (see module docstring)."""
    return th.digest(prev_chain + leaf_hash)


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
        return encode_entry(**self.to_dict())


def encode_entry(
    *,
    seq: int,
    time: str,
    actor: str,
    role: str,
    action: str,
    subject: str,
    details: dict[str, Any],
    prev: str,
) -> bytes:
    """The canonical bytes of the entry with these fields (``Entry.encode`` without
    building an ``Entry``: appends call this once per entry). Raises ``EntryError``."""
    obj = {
        "seq": seq,
        "time": time,
        "actor": actor,
        "role": role,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev,
    }
    _check_fields(obj)
    return canonical_json(obj)


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


def check_canonical(line: bytes) -> dict[str, Any]:
    """Check that ``line`` is exactly the RFC 8785 encoding of a valid entry; return it.

    SECURITY: only ``seq`` and ``prev`` (strings and integers) are meant to be read from
    the result: where the fast path of ``audit_log.canonical`` cannot decide, floats come
    back as opaque markers; use ``decode`` for values.
    """
    obj = canonical.parse(line)
    if not isinstance(obj, dict):
        raise EntryError("an entry is a JSON object")
    _check_fields(obj)
    return obj


def decode(line: bytes) -> dict[str, Any]:
    """Decode one entry after checking it is exactly its canonical form (``EntryError``)."""
    check_canonical(line)
    result: dict[str, Any] = json.loads(line)
    return result


def leaf_hash_of(line: bytes, th: TreeHash = SHA256) -> bytes:
    return th.hash_leaf(line)
