"""The fast RFC 8785 paths against the maintained library (audit_log.canonical).

The reference verdict for a line is ``rfc8785.dumps(json.loads(line)) == line``, with
JSON numbers read as IEEE doubles (RFC 8785 §3.2.2.3: an integer token beyond 2^53 is
the double it denotes, which is how ``100000000000000000000``, the JCS form of 1e20, is
canonical). The fast path may decline (answer False) but must never accept a line the
reference refuses; on its domain (``in_fast_domain``) it must give exactly the
reference's answer; the full check (fast path, then the exact path) must always.
"""

from __future__ import annotations

import json
import re

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from audit_log import canonical
from audit_log.errors import EntryError

needs_orjson = pytest.mark.skipif(not canonical.HAVE_ORJSON, reason="orjson is not installed")


def reference(line: bytes) -> bool:
    try:
        value = json.loads(line, parse_int=canonical.int_or_double)
        return rfc8785.dumps(value) == line
    except (ValueError, TypeError, RecursionError):  # rfc8785 errors are ValueErrors
        return False


def in_fast_domain(line: bytes) -> bool:
    """Lines the fast path must decide: no character beyond U+FFFF, no 16-digit run, not
    a bare number, and no float-looking run inside a string that the number rewrite
    would touch (such as ``"x:2.0,"``; those lines go to the exact path)."""
    return (
        not re.search(rb"[\xf0-\xf4]", line)
        and not re.search(rb"[0-9]{16}", line)
        and line[:1] not in b"-0123456789"
        and canonical._jcs_floats(line) == line
    )


def check_line(line: bytes) -> None:
    expected = reference(line)
    fast = canonical.fast_is_canonical(line)
    assert not fast or expected, f"fast path accepted a non-canonical line: {line!r}"
    if canonical.HAVE_ORJSON and in_fast_domain(line):
        assert fast == expected, line
    assert canonical.is_canonical(line) == expected, line


# Floats around every place where the ECMAScript, Python and orjson forms change.
edge_floats = st.sampled_from(
    [
        0.0,
        -0.0,
        1.0,
        2.0,
        0.1,
        0.30000000000000004,
        1e-7,
        9.999999e-7,
        1e-6,
        1.5e-6,
        9.99e-6,
        1e-5,
        1e-4,
        123456.789,
        1e15,
        1e15 + 0.5,
        9007199254740992.0,
        1e16,
        1.5e16,
        1e20,
        123456789012345680000.0,
        1e21,
        1.5e21,
        1e22,
        5e-324,
        1.7976931348623157e308,
        2.0**-1074 * 3,
    ]
)
floats = (
    st.floats(allow_nan=False, allow_infinity=False) | edge_floats | edge_floats.map(lambda f: -f)
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | floats
    | st.text(max_size=12)
    | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=8)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=14,
)
objects = st.dictionaries(st.text(max_size=6), values, max_size=5)


def variants(value: object) -> list[bytes]:
    """The canonical line and encodings that differ from it in the usual ways."""
    out = [rfc8785.dumps(value)]
    out.append(
        json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    )
    out.append(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
    out.append(json.dumps(value, ensure_ascii=False).encode())
    if canonical.HAVE_ORJSON:
        import orjson

        out.append(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
        out.append(orjson.dumps(value))
    return out


@needs_orjson
@settings(max_examples=600, deadline=None)
@given(objects | values)
def test_fast_check_agrees_with_rfc8785_on_generated_values(value):
    try:
        lines = variants(value)
    except (ValueError, TypeError):  # e.g. lone surrogates: nothing to encode
        return
    for line in lines:
        check_line(line)


number_tokens = st.from_regex(
    r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
) | st.sampled_from(
    [
        "-0",
        "-0.0",
        "1.0",
        "1E5",
        "1e5",
        "1e+5",
        "00",
        "01",
        "1.",
        ".5",
        "+1",
        "1e400",
        "-1e400",
        "9007199254740991",
        "9007199254740992",
        "9007199254740993",
        "18446744073709551616",
        "100000000000000000000",
        "1e+21",
        "0.000001",
        "1e-7",
        "1e-6",
        "2e-6",
        "1e+16",
        "NaN",
        "Infinity",
    ]
)


@needs_orjson
@settings(max_examples=600, deadline=None)
@given(number_tokens, st.sampled_from(['{"a":%s}', "[%s]", '{"a":[1,%s,2],"b":"x"}', "%s"]))
@example("1.5", '{"a":"%s"}')
@example("2.0", '{"a":"x:%s,"}')  # a float-looking match inside a string
@example("1e-6", '{"a":"x:%s,","b":%s}')
def test_number_tokens_agree_with_rfc8785(token, template):
    check_line((template.replace("%s", token)).encode())


string_pieces = st.lists(
    st.sampled_from(
        [
            "a",
            "é",
            "中",
            "\\u00e9",
            "\\u00E9",
            "\\/",
            "\\\\",
            '\\"',
            "\\n",
            "\\u000a",
            "\\u001f",
            "\\u001F",
            "\\b",
            "\\u0008",
            "\\t",
            "\x7f",
            "\\u007f",
            "\u2028",
            "\\u2028",
            "\\ud83d\\ude00",
            "😀",
            "\\ud800",
            "\t",
            "\\u0000",
            " ",
        ]
    ),
    max_size=6,
)


@needs_orjson
@settings(max_examples=400, deadline=None)
@given(string_pieces, string_pieces)
def test_string_escapes_agree_with_rfc8785(key, text):
    line = '{"' + "".join(key) + '":"' + "".join(text) + '","z":1}'
    try:
        data = line.encode("utf-8")
    except UnicodeEncodeError:
        return
    check_line(data)


@needs_orjson
@settings(max_examples=300, deadline=None)
@given(objects, st.data())
def test_single_byte_edits_of_canonical_lines(value, data):
    try:
        line = rfc8785.dumps(value)
    except ValueError:
        return
    at = data.draw(st.integers(min_value=0, max_value=len(line)))
    byte = data.draw(st.sampled_from(b' ,:{}[]"\\0123456789.eE+-a\xc3\xa9\xff'))
    for edited in (
        line[:at] + bytes([byte]) + line[at:],
        line[:at] + bytes([byte]) + line[at + 1 :],
    ):
        check_line(edited)


@settings(max_examples=400, deadline=None)
@given(values)
def test_encode_equals_rfc8785(value):
    try:
        expected = rfc8785.dumps(value)
    except (ValueError, TypeError):
        with pytest.raises(EntryError):
            canonical.encode(value)
        return
    assert canonical.encode(value) == expected
    try:
        fast = canonical._fast_encode(value)
    except canonical._Decline:
        return
    assert fast == expected


@pytest.mark.parametrize(
    "value",
    [
        {"a": 2**53},
        {"a": -(2**53)},
        {"a": 2**64},
        {1: 2},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": "\ud800"},
        {"a": b"x"},
        {"a": {1, 2}},
    ],
)
def test_encode_refuses_what_rfc8785_refuses(value):
    with pytest.raises(EntryError):
        canonical.encode(value)


def test_encode_declines_types_orjson_knows_and_rfc8785_does_not():
    import dataclasses
    import datetime
    import enum
    import uuid

    class Colour(enum.Enum):
        RED = 1

    @dataclasses.dataclass
    class Point:
        x: int

    for odd in (Colour.RED, Point(1), datetime.date(2025, 1, 1), uuid.UUID(int=1)):
        with pytest.raises(EntryError):
            canonical.encode({"a": odd})
    assert canonical.encode({"t": (1, 2.0)}) == b'{"t":[1,2]}'  # tuples are arrays


def test_parse_returns_the_value_and_names_the_problem():
    if canonical.HAVE_ORJSON:  # the exact path returns floats as opaque markers
        assert canonical.parse(b'{"a":[1,0.000001,"x"]}') == {"a": [1, 1e-6, "x"]}
    assert canonical.is_canonical(b'{"a":[1,0.000001,"x"]}')
    with pytest.raises(EntryError, match="canonical"):
        canonical.parse(b'{"a":1e-6}')
    with pytest.raises(EntryError, match="not JSON"):
        canonical.parse(b'{"a":')


@settings(max_examples=300, deadline=None)
@given(objects | values)
def test_exact_paths_alone_agree_with_rfc8785(value):
    """Without orjson (it is optional) the stdlib and rfc8785 paths give every answer."""
    from unittest import mock

    with mock.patch.object(canonical, "orjson", None):
        try:
            lines = variants(value)
        except (ValueError, TypeError):
            return
        for line in lines:
            assert not canonical.fast_is_canonical(line)
            assert canonical.is_canonical(line) == reference(line), line
        try:
            expected = rfc8785.dumps(value)
        except (ValueError, TypeError):
            return
        assert canonical.encode(value) == expected
