"""RFC 8785 (JCS) canonical JSON: encoding at append, checking every line at verify.

The maintained ``rfc8785`` library is the reference, but it is pure Python (~160 µs for
a release entry). The audit-log issue's targets (≥ 2,000 durable appends/s; verify 1M
entries in < 30 s on two cores) leave a few tens of µs per entry, so both directions
take a fast path where it provably gives ``rfc8785``'s answer, and exact slower paths
everywhere else:

* **orjson** (optional; C speed): encode with sorted keys, then rewrite every
  float-syntax number token (RFC 8259: digits, then ``.`` or an exponent) to the
  ECMAScript form ``rfc8785`` prints. orjson escapes strings exactly as JCS does, sorts
  keys as JCS does up to U+FFFF (text with characters beyond goes to the exact paths)
  and prints integers below 2^53 as JCS does (``OPT_STRICT_INTEGER`` refuses larger
  ones). In compact JSON every number follows ``:``, ``,`` or ``[`` and is followed by
  ``,``, ``]`` or ``}``, so a pattern sees every float token; a match inside a string is
  rewritten too, but the result then decodes to another value (``encode`` reads it
  back) or cannot equal the line (``parse``), and the exact path decides. The fast path
  only ever *accepts*: every refusal and every error message comes from the exact path.
* **the C ``json`` codec** (always available): equal to JCS for strings, integers and
  literals and for key order up to U+FFFF; floats are printed by ``rfc8785`` itself
  through markers.
* **rfc8785** for whatever else (characters beyond U+FFFF, 16+ digit integer tokens).

Property tests (tests/test_audit_canonical.py) check on generated values, number tokens,
string escapes and edited lines that each path agrees with the reference
``rfc8785.dumps(json.loads(line)) == line`` (numbers read as IEEE doubles).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from typing import Any, Final

import rfc8785

from audit_log.errors import EntryError

try:  # optional: only speed depends on it (see the module docstring)
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    orjson = None  # type: ignore[assignment]

HAVE_ORJSON: Final = orjson is not None
SAFE_INTEGER: Final = 2**53  # RFC 8785 §3.2.2.3: integers are IEEE doubles


def _has_astral(data: bytes) -> bool:
    """Does UTF-8 ``data`` hold a character beyond U+FFFF? Bytes 0xF0..0xF4 lead exactly
    those (0xF5..0xFF are invalid UTF-8, which orjson refuses); each search runs at
    memchr speed."""
    return not data.isascii() and (
        b"\xf0" in data or b"\xf1" in data or b"\xf2" in data or b"\xf3" in data or b"\xf4" in data
    )


# Float-syntax number tokens (RFC 8259: an integer part, then "." or an exponent) of
# compact JSON, which follow ":", "," or "[" and are followed by ",", "]" or "}". The
# search runs on a copy where "," and "[" read ":", so that the pattern starts with one
# literal byte, which the regex engine finds at C speed (a leading class is ~5x slower).
_SHADOW: Final = bytes.maketrans(b",[", b"::")
_FLOAT_RE: Final = re.compile(rb":(-?[0-9]+[.eE][0-9.eE+-]*)(?=[:\]}])")
_JCS_FLOATS: dict[bytes, bytes] = {}


class _Decline(Exception):
    """The fast path cannot decide: use the exact path."""


def _jcs_float(token: bytes) -> bytes:
    """RFC 8785 text of a float token (memoised: a log repeats the same few ε, δ and
    scale values a million times). A match inside a string may be no number ("1e999"):
    it is kept as it is."""
    jcs = _JCS_FLOATS.get(token)
    if jcs is None:
        try:
            jcs = rfc8785.dumps(float(token))
        except ValueError:  # overflows to infinity, or "1-2"
            jcs = token
        if len(_JCS_FLOATS) > 100_000:
            _JCS_FLOATS.clear()
        _JCS_FLOATS[token] = jcs
    return jcs


def _jcs_floats(out: bytes) -> bytes:
    """Compact JSON ``out`` with every float-syntax number token in RFC 8785 form.

    Integer tokens are left alone: below 2^53 their text is already the JCS text, and
    larger ones are refused (encoding) or sent to the exact path (checking).
    """
    pieces: list[bytes] = []
    last = 0
    for match in _FLOAT_RE.finditer(out.translate(_SHADOW)):
        token = match[1]
        jcs = _JCS_FLOATS.get(token) or _jcs_float(token)
        if jcs != token:
            start, end = match.span(1)
            pieces += (out[last:start], jcs)
            last = end
    if not pieces:
        return out
    pieces.append(out[last:])
    return b"".join(pieces)


# ----------------------------------------------------------------------------- fast paths
def fast_is_canonical(line: bytes) -> bool:
    """True only if ``line`` is certainly the RFC 8785 encoding of the JSON it holds.

    False means "not decided here" (no orjson, characters beyond U+FFFF, integers beyond
    ±(2^53 - 1), a top-level number, a line orjson refuses, or a mismatch): ask ``parse``.
    """
    try:
        _fast_parse(line)
    except _Decline:
        return False
    return True


def _fast_parse(line: bytes) -> Any:
    """The value of ``line`` if the fast path accepts it as canonical, else ``_Decline``.

    Why acceptance is sound: ``line`` holds ``value``; orjson's encoding of ``value``
    with every float token in JCS form is exactly ``rfc8785.dumps(value)`` (strings and
    key order agree up to U+FFFF, integers below 2^53 are printed alike, and
    ``OPT_STRICT_INTEGER`` declines the others). A false match rewritten inside a string
    would make that text hold another value than ``line``, so it cannot equal ``line``.
    """
    if orjson is None or line[:1] not in b'{["tfn' or _has_astral(line):
        raise _Decline
    try:
        value = orjson.loads(line)
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except (ValueError, TypeError):  # orjson's decode and encode errors
        raise _Decline from None
    if _jcs_floats(out) != line:
        raise _Decline
    return value


def _fast_encode(value: Any) -> bytes:
    """orjson's encoding with JCS floats, if it provably equals ``rfc8785.dumps``."""
    if orjson is None:
        raise _Decline
    try:  # OPT_STRICT_INTEGER refuses integers beyond ±(2^53 - 1), as rfc8785 does
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except TypeError:  # non-string keys, big integers, lone surrogates, other types
        raise _Decline from None
    if out[:1] not in b'{["tfn' or _has_astral(out):
        raise _Decline
    out = _jcs_floats(out)
    # A false match rewritten inside a string, or a type orjson serialises and rfc8785
    # refuses (enum, dataclass, datetime, NaN written as null, …) reads back different.
    if orjson.loads(out) != value:
        raise _Decline
    return out


# ----------------------------------------------------------------------------- encoding
_ASTRAL_RE: Final = re.compile("[\U00010000-\U0010ffff]")
_MARK_HEX: Final = secrets.token_hex(8)
_MARK: Final = f"\x00{_MARK_HEX}:"  # per-process random: entries cannot forge it
_MARK_ESCAPED: Final = f"\\u0000{_MARK_HEX}:"
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _mark_floats(value: Any, floats: list[float]) -> Any:
    """Copy of ``value`` with each float replaced by a marker string (see ``encode``)."""
    if isinstance(value, str) or value is None or value is True or value is False:
        return value
    if isinstance(value, float):
        floats.append(value)
        return f"{_MARK}{len(floats) - 1}"
    if isinstance(value, int):
        if not -SAFE_INTEGER < value < SAFE_INTEGER:
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


def _std_encode(value: Any) -> bytes:
    floats: list[float] = []
    marked = _mark_floats(value, floats)
    text = _ENCODER.encode(marked)
    if _ASTRAL_RE.search(text):
        return rfc8785.dumps(value)
    for i, number in enumerate(floats):
        text = text.replace(f'"{_MARK_ESCAPED}{i}"', _float_text(number), 1)
    return text.encode()


def encode(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of JSON data; equal to ``rfc8785.dumps(value)``.

    Raises ``EntryError`` for what ``rfc8785`` refuses (NaN, ±∞, integers beyond
    ±(2^53 - 1), non-string keys, lone surrogates, other types).
    """
    try:
        return _fast_encode(value)
    except _Decline:
        pass
    try:
        return _std_encode(value)
    except (UnicodeEncodeError, ValueError) as exc:  # rfc8785 errors are ValueErrors
        raise EntryError(f"not encodable as RFC 8785: {exc}") from None


# ----------------------------------------------------------------------------- checking
def _parse_constant(text: str) -> float:
    raise EntryError(f"{text} is not JSON")


def int_or_double(text: str) -> int | float:
    """JSON numbers are IEEE doubles (RFC 8785 §3.2.2.3): an integer token beyond 2^53 is
    read as the double it denotes, so re-encoding shows whether it was canonical."""
    value = int(text)
    return value if abs(value) < SAFE_INTEGER else float(value)


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
    """The exact path with the C ``json`` codec, built once per thread (building a
    decoder and encoder per call costs more than the work itself). Float tokens are
    parsed into marked strings holding their literal text (by a C-level callable,
    ``str.format``: no Python frame per number), so the C encoder prints them back
    verbatim between markers that two ``str.replace`` calls remove."""

    def __init__(self) -> None:
        self.decoder = json.JSONDecoder(
            parse_float=(_FLOAT_OPEN + "{}" + _FLOAT_CLOSE).format, parse_constant=_parse_constant
        )
        self.encoder = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))

    def parse(self, line: bytes) -> Any:
        try:
            text = line.decode("utf-8")
            obj, end = self.decoder.raw_decode(text)
        except EntryError:
            raise
        except (ValueError, RecursionError) as exc:
            raise EntryError(f"not JSON: {exc}") from None
        if end != len(text):
            raise EntryError("trailing data after the entry")
        try:
            if _needs_rfc8785(line):
                # integers beyond 2^53 are doubles; keys beyond U+FFFF sort by UTF-16
                expected = rfc8785.dumps(
                    json.loads(text, parse_int=int_or_double, parse_constant=_parse_constant)
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
        return obj


_checkers = threading.local()


def _checker() -> _Checker:
    checker = getattr(_checkers, "checker", None)
    if checker is None:
        checker = _checkers.checker = _Checker()
    return checker


def parse(line: bytes) -> Any:
    """The JSON value of ``line``, which must be exactly its RFC 8785 encoding.

    Raises ``EntryError`` (with what is wrong) otherwise. SECURITY: when the fast path
    cannot decide, floats come back as opaque marker strings (see ``_Checker``); callers
    read only strings and integers from the result, or decode the line again.
    """
    try:
        return _fast_parse(line)
    except _Decline:
        return _checker().parse(line)


def is_canonical(line: bytes) -> bool:
    """The reference verdict, fast where possible (used by the property tests)."""
    try:
        parse(line)
    except EntryError:
        return False
    return True
