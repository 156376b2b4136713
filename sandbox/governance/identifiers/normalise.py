"""Values as the scanner reads them: one identifier typed with spaces, dashes or full-width digits is one value."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def normalise(value: str) -> str:
    """A value as the scanner reads it: NFKC (full-width → half-width), spaces and hyphens inside
    digit runs and between digits and Han characters removed, upper case.

    >>> normalise("３７０１０２ 19900307-123x"), normalise("经十路 17 号"), normalise("zhang＠example.com")
    ('37010219900307123X', '经十路17号', 'ZHANG@EXAMPLE.COM')
    """
    return normalise_array(pa.array([value], pa.string()))[0].as_py()


def normalise_array(text: pa.Array) -> pa.Array:
    """:func:`normalise` over an Arrow string array."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if len(text) > 1000 and pc.count_distinct(text.slice(0, 1000)).as_py() < 500:
        # PERF: normalise each distinct value once (a column of districts or 无 has a handful)
        enc = pc.dictionary_encode(text)
        return pc.take(_normalise_values(enc.dictionary), enc.indices)
    return _normalise_values(text)


def _normalise_values(text: pa.Array) -> pa.Array:
    ascii_only = pc.all(pc.string_is_ascii(text)).as_py() is not False
    if not ascii_only:
        text = pc.utf8_normalize(text, "NFKC")
    digit_run = r"(\d)[\s\-\x{2010}-\x{2015}\x{2212}]+(\d)"
    if pc.any(pc.match_substring_regex(text, digit_run)).as_py():
        for _ in range(2):  # twice: "1 2 3" overlaps
            text = pc.replace_substring_regex(text, digit_run, r"\1\2")
    if not ascii_only:  # PERF: only non-ASCII text can hold Han characters
        text = pc.replace_substring_regex(text, r"(\p{Han})\s+(\d)", r"\1\2")
        text = pc.replace_substring_regex(text, r"(\d)\s+(\p{Han})", r"\1\2")
    return pc.ascii_upper(text) if ascii_only else pc.utf8_upper(text)


def as_text(arr: pa.Array) -> pa.Array | None:
    """A column's values as text to scan: strings, integers, and integral floats read as integers (None: nothing to scan)."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.string())
    if pa.types.is_floating(arr.type) and len(arr):
        # phone or ID numbers typed as numbers: scan the integral values as integers
        finite = arr.filter(pc.and_(pc.is_finite(arr), pc.less(pc.abs(arr), 2.0 ** 63)))
        integral = finite.filter(pc.equal(pc.floor(finite), finite))
        return pc.cast(pc.cast(integral, pa.int64()), pa.string()) if len(integral) else None
    return None
