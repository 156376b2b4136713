"""Entries: RFC 8785 canonical encoding, the fast canonical check, time format, chain."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit_log.entry import ZERO_CHAIN_HEX, Entry, chain_hash, check_canonical, decode, format_time
from audit_log.errors import EntryError

T0 = datetime(2025, 1, 31, 9, 30, tzinfo=UTC)


def entry(**details) -> Entry:
    return Entry(0, format_time(T0), "alice", "researcher", "query.released", "query:q1", details)


def test_known_encoding():
    data = entry(
        epsilon=0.5, delta=1e-6, approval_id=7, sql="SELECT 1", values=[2.0, 1e21]
    ).encode()
    assert data == (
        b'{"action":"query.released","actor":"alice","details":{"approval_id":7,"delta":0.000001,'
        b'"epsilon":0.5,"sql":"SELECT 1","values":[2,1e+21]},"prev":"'
        + b"0" * 64
        + b'","role":"researcher","seq":0,"subject":"query:q1","time":"2025-01-31T09:30:00.000000Z"}'
    )
    assert decode(data)["details"]["delta"] == 1e-6


def test_time_is_utc_with_microseconds():
    beijing = timezone(timedelta(hours=8))
    assert (
        format_time(datetime(2025, 1, 31, 17, 30, 0, 5, tzinfo=beijing))
        == "2025-01-31T09:30:00.000005Z"
    )
    with pytest.raises(EntryError, match="timezone-aware"):
        format_time(datetime(2025, 1, 31))


def test_chain_hash_definition():
    leaf = hashlib.sha256(b"\x00x").digest()
    assert chain_hash(bytes(32), leaf) == hashlib.sha256(bytes(32) + leaf).digest()


@pytest.mark.skipif("sm3" not in hashlib.algorithms_available, reason="hashlib has no SM3 here")
def test_chain_hash_definition_sm3():
    """The ``sm`` profile's chain (issue 17): the same definition with SM3."""
    from audit_log.hashing import SM3

    leaf = hashlib.new("sm3", b"\x00x").digest()
    assert chain_hash(bytes(32), leaf, SM3) == hashlib.new("sm3", bytes(32) + leaf).digest()


@pytest.mark.parametrize(
    "details",
    [
        {"x": float("nan")},
        {"x": float("inf")},
        {"x": 2**60},
        {"x": object()},
        {1: "non-string key"},
    ],
    ids=["nan", "inf", "big-int", "object", "int-key"],
)
def test_unencodable_details_are_refused(details):
    with pytest.raises(EntryError):
        entry(**{}).__class__(0, format_time(T0), "a", "r", "act", "s", details).encode()


CANONICAL = entry(epsilon=0.25, n=3, note="café 中文 😀").encode()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b + b" ",
        lambda b: b" " + b,
        lambda b: b.replace(b'"action":', b'"action" :'),
        lambda b: b.replace(b"0.25", b"0.250"),
        lambda b: b.replace(b"0.25", b"2.5e-1"),
        lambda b: b.replace(b'"n":3', b'"n":3.0'),
        lambda b: b.replace("é".encode(), b"\\u00e9"),
        lambda b: b.replace(b'{"epsilon"', b'{"n":3,"epsilon"'),  # duplicate key
        lambda b: b.replace(b'"n":3', b'"n":NaN'),
        lambda b: b.replace(b'"n":3', b'"n":12345678901234567890'),
        lambda b: b"\xef\xbb\xbf" + b,
        lambda b: b.replace(b'"seq":0', b'"seq":-1'),
        lambda b: b.replace(b'"seq":0', b'"seq":"0"'),
        lambda b: b.replace(b'.000000Z"', b'Z"'),
        lambda b: b.replace(b'"prev":"0', b'"prev":"A'),
        lambda b: b.replace(b',"role":"researcher"', b""),
        lambda b: b.replace(b'"subject"', b'"extra":1,"subject"'),
        lambda b: b[:-1],
        lambda b: b"[" + b + b"]",
        lambda b: b.replace("中".encode(), b"\xff"),
    ],
)
def test_non_canonical_lines_are_refused(mutate):
    check_canonical(CANONICAL)
    bad = mutate(CANONICAL)
    assert bad != CANONICAL
    with pytest.raises(EntryError):
        check_canonical(bad)


def test_astral_key_order_follows_utf16():
    # U+1F600 sorts before U+FF61 in UTF-16 (surrogate 0xD83D < 0xFF61) but after it by code point.
    details = {"\U0001f600": 1, "\uff61": 2}
    line = Entry(0, format_time(T0), "a", "r", "act", "s", details).encode()
    assert line.index("\U0001f600".encode()) < line.index("\uff61".encode())
    check_canonical(line)
    python_order = json.dumps(
        json.loads(line), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    ).encode()
    with pytest.raises(EntryError):
        check_canonical(python_order)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_data = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_data, max_size=5), st.text(max_size=10))
def test_fast_check_agrees_with_rfc8785(details, actor):
    """The fast canonical check accepts exactly rfc8785's output (cross-check)."""
    e = Entry(3, format_time(T0), actor, "owner", "x.y", "s", details, "ab" * 32)
    try:
        line = e.encode()
    except EntryError:
        return  # lone surrogates in generated text cannot be encoded: refused at append
    assert check_canonical(line)["seq"] == 3
    assert decode(line) == json.loads(line)
    for alternative in (
        json.dumps(json.loads(line), ensure_ascii=False, sort_keys=True, separators=(",", ":")),
        json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")),
    ):
        alt = alternative.encode()
        if alt == line:
            check_canonical(alt)
        else:
            with pytest.raises(EntryError):
                check_canonical(alt)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_form_matches_rfc8785(value):
    line = Entry(0, format_time(T0), "a", "r", "act", "s", {"v": value}).encode()
    assert rfc8785.dumps(value) in line
    check_canonical(line)
    as_repr = line.replace(rfc8785.dumps(value), repr(value).encode())
    if as_repr != line:
        with pytest.raises(EntryError):
            check_canonical(as_repr)


def test_zero_chain_constant():
    assert ZERO_CHAIN_HEX == "0" * 64


@settings(max_examples=200, deadline=None)
@given(json_data)
def test_canonical_json_equals_rfc8785(value):
    """The fast encoder used at append is byte-for-byte the maintained library's output."""
    from audit_log.entry import canonical_json

    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(EntryError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"a": 2**53},
        {"a": -(2**53)},
        {1: 2},
        {"a": {1, 2}},
        {"a": float("nan")},
        {"a": "\ud800"},
        {"a": b"x"},
    ],
)
def test_canonical_json_refuses_what_rfc8785_refuses(value):
    from audit_log.entry import canonical_json

    with pytest.raises(EntryError):
        canonical_json(value)
    with pytest.raises((rfc8785.CanonicalizationError, TypeError, AttributeError, ValueError)):
        rfc8785.dumps(value)


def test_canonical_json_with_astral_and_controls():
    from audit_log.entry import canonical_json

    value = {
        "\U0001f600": "\x00\x1f\x7f\u2028",
        "\uff61": [1.5, -0.0, 1e-7, 123456789012345680000.0],
        "k": None,
    }
    assert canonical_json(value) == rfc8785.dumps(value)


def test_integers_beyond_2_53_are_doubles():
    """A 16+ digit integer token is a double in RFC 8785: accepted only in its ES6 form."""
    good = Entry(
        0, format_time(T0), "a", "r", "act", "s", {"big": 1e20, "id": "x:12345678901234567"}
    ).encode()
    assert b'"big":100000000000000000000' in good
    check_canonical(good)
    bad = good.replace(b"100000000000000000000", b"100000000000000000001")
    with pytest.raises(EntryError):
        check_canonical(bad)
    with pytest.raises(EntryError):
        check_canonical(good.replace(b'"big":100000000000000000000', b'"big":12345678901234567890'))
