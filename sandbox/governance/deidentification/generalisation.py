"""Generalisation hierarchies: each column's levels, from raw to ``*``, and a column at one level.

Bands start at multiples of their width and widths divide each other (1, 5, 10, 50 …); dates
go month → year: so every value at one level lies inside one value of any coarser level, which
is what lets successive releases nest (:mod:`sandbox.governance.deidentification.successive_releases`).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance.policy import ColumnPolicy

#: Band widths tried for numbers, times powers of ten (1, 5, 10, 50, 100 …): each divides the
#: next, and bands start at multiples of their width, so every band of one width lies inside one
#: band of any wider width (successive releases nest; see
#: :func:`sandbox.governance.deidentification.successive_releases.map_level`).
_NICE: Final = (1, 5)
TOP: Final = "*"


def widths(span: float, integer: bool) -> list[float]:
    """Increasing band widths below ``span`` (a span that is not a positive finite number — an
    empty or all-NaN column — is taken as 1).

    >>> widths(100, True)
    [1, 5, 10, 50]
    >>> widths(float("nan"), False)
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5]
    """
    if not math.isfinite(span) or span <= 0:
        span = 1.0
    out: list[float] = []
    exp = math.floor(math.log10(span)) - 3 if span > 0 else 0
    while True:
        for n in _NICE:
            w = n * 10.0 ** exp
            if integer and w < 1:
                continue
            if w >= span:
                return out
            out.append(int(w) if integer or float(w).is_integer() else w)
        exp += 1


def column_levels(col: ColumnPolicy, arr: pa.ChunkedArray, role: str) -> list[str]:
    """Names of the generalisation levels of one column, level 0 (raw) excluded; last is ``*``."""
    if role == "category":
        return [TOP]
    if col.type in ("int", "float") and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        lo, hi = _range(col, arr)
        return [f"band:{w}" for w in widths(hi - lo, col.type == "int")] + [TOP]
    if col.type == "date":
        return ["month", "year", TOP]
    return [TOP]


def _range(col: ColumnPolicy, arr: pa.ChunkedArray) -> tuple[float, float]:
    """The span the band widths are chosen from (not their origin: bands start at multiples of
    their width, never at a person's value); non-finite values are ignored."""
    b = col.numeric_bounds()
    if b is not None and all(math.isfinite(x) for x in b):
        return b
    x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False) if len(arr) else np.zeros(0)
    x = x[np.isfinite(x)]
    lo, hi = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
    return lo, max(hi, lo + 1)


def non_finite_as_null(table: pa.Table) -> pa.Table:
    """Float columns with NaN and ±inf as missing (null): a failed import or an overflow is not a
    value, and an infinite span has no bands."""
    for i, f in enumerate(table.schema):
        if pa.types.is_floating(f.type):
            col = table.column(i)
            if pc.any(pc.invert(pc.fill_null(pc.is_finite(col), True))).as_py():
                table = table.set_column(i, f, pc.if_else(pc.is_finite(col), col, pa.scalar(None, f.type)))
    return table


def band_labels(x: np.ndarray, w: float, integer: bool) -> pa.Array:
    """Band labels of numbers ``x`` (NaN → null): ``a-b`` for integers, ``[a, b)`` otherwise, with
    ``a`` a multiple of ``w``."""
    valid = np.isfinite(x)
    band = np.floor(np.where(valid, x, 0.0) / w + 1e-9)
    uniq, inverse = np.unique(band, return_inverse=True)
    labels = [f"{_fmt(b * w)}-{_fmt(b * w + w - 1)}" if integer else f"[{_fmt(b * w)}, {_fmt(b * w + w)})"
              for b in uniq]
    indices = pa.array(inverse.reshape(-1).astype(np.int32), mask=~valid)
    return pa.DictionaryArray.from_arrays(indices, pa.array(labels, pa.string())).cast(pa.string())


def _fmt(x: float) -> str:
    x = round(float(x), 9)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def generalise(col: ColumnPolicy, arr: pa.ChunkedArray, level: str) -> pa.Array:
    """One column at one level, as text (nulls stay null, except at ``*``, which hides them too).

    >>> from sandbox.governance.policy import ColumnPolicy
    >>> age = ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))
    >>> generalise(age, pa.chunked_array([[3, 27, 100]]), "band:10").to_pylist()
    ['0-9', '20-29', '100-109']
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if level == TOP:
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(arr), dtype=np.int32)),
                                              pa.array([TOP])).cast(pa.string())
    if level.startswith("band:"):
        x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return band_labels(x, float(level.split(":", 1)[1]), col.type == "int")
    if level in ("month", "year"):
        return pc.utf8_slice_codeunits(pc.cast(arr, pa.string()), 0, 7 if level == "month" else 4)
    raise ValueError(f"unknown generalisation level {level!r}")

