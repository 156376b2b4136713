"""Successive releases (第十二条): a new derivative nests the public ones and hides small changes.

Levels map a previous release's labels onto this release's (:func:`map_level`); the guard
compares two releases class by class; the granular counts are anchored to every public file
that maps onto this release (:mod:`sandbox.governance.granular_counts`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance import granular_counts
from sandbox.governance.deidentification.generalisation import TOP, band_labels
from sandbox.governance.deidentification.k_anonymity import DeidentificationError, row_index
from sandbox.governance.policy import ColumnPolicy


class SignedRelease(Protocol):
    """What the guards read of a signed derivative (:class:`sandbox.governance.deidentify.Previous`)."""

    table: pa.Table
    recipe: Mapping[str, Any]
    name: str
    public: bool


def level_name(levels: Mapping[str, list[str]], at: Mapping[str, int], q: str) -> str:
    """The name of column ``q``'s level ``at[q]`` (``raw`` at 0)."""
    return levels[q][at[q] - 1] if at[q] else "raw"


def level_names(recipe: Mapping[str, Any], columns: list[str]) -> dict[str, str]:
    """Each column's level in a signed release's recipe (``raw`` when not generalised)."""
    named = {g["column"]: g.get("level", "raw")
             for g in [*recipe.get("generalised", []), *recipe.get("categories", [])]}
    return {c: named.get(c, "raw") for c in columns}


def previous_levels(previous: SignedRelease, before: Mapping[str, str], cols: Mapping[str, ColumnPolicy],
                     kcols: list[str], levels: Mapping[str, list[str]],
                     shown: Mapping[str, set[str]]) -> dict[str, int]:
    """For each column, the finest of this release's levels into which the previous release's
    labels nest (the floor Datafly starts from; ``*`` always nests)."""
    out = {}
    for q in kcols:
        old = previous.table.column(q)
        for i in range(len(levels[q]) + 1):
            if map_level(old, before[q], levels[q][i - 1] if i else "raw", cols[q], shown.get(q)) is not None:
                out[q] = i
                break
    return out


_INT_BAND: Final = re.compile(r"^(-?\d+)-(-?\d+)$")
_FLOAT_BAND: Final = re.compile(r"^\[(\S+), (\S+)\)$")


def shown_values(arr: pa.ChunkedArray | pa.Array) -> set[str]:
    """A category column's values other than ``*`` (as text)."""
    return {v for v in pc.unique(pc.cast(arr, pa.string())).to_pylist() if v is not None and v != TOP}


def map_level(old: pa.ChunkedArray | pa.Array, old_level: str, new_level: str,
               col: ColumnPolicy, shown: set[str] | None = None) -> pa.Array | None:
    """The previous release's values of one column, relabelled at this release's level, or None
    when the previous level does not *nest* inside the new one — a previous band straddling a new
    band's edge (width 20 then 50), months asked of years, a raw value asked of ``*`` …: then the
    two downloads subtracted could isolate what neither shows (第十二条). ``shown``: for a
    category, the values this release shows; a previous value it hides is relabelled ``*`` (one
    the previous release hid and this one shows does not nest).

    >>> from sandbox.governance.policy import ColumnPolicy
    >>> age = ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))
    >>> map_level(pa.array(["10-19", "20-29"]), "band:10", "band:50", age).to_pylist()
    ['0-49', '0-49']
    >>> map_level(pa.array(["20-39", "40-59"]), "band:20", "band:50", age) is None
    True
    """
    if isinstance(old, pa.ChunkedArray):
        old = old.combine_chunks()
    text = pc.cast(old, pa.string())
    if new_level == old_level == "raw" and shown is not None:
        if not shown <= shown_values(text):
            return None  # a value hidden (or absent) before is shown now: classes do not nest
        hidden = pc.invert(pc.fill_null(pc.is_in(text, value_set=pa.array(sorted(shown), pa.string())), False))
        return pc.if_else(pc.and_(hidden, pc.is_valid(text)), TOP, text)
    if new_level == old_level:
        return text
    if new_level == TOP:
        return pa.array([TOP] * len(text), pa.string())
    if old_level == TOP:
        return None
    if new_level in ("month", "year"):
        if old_level == "raw" or (old_level == "month" and new_level == "year"):
            return pc.utf8_slice_codeunits(text, 0, 7 if new_level == "month" else 4)
        return None
    if not new_level.startswith("band:"):
        return None
    w = float(new_level.split(":", 1)[1])
    integer = col.type == "int"
    if old_level == "raw":
        try:
            x = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return band_labels(x, w, integer)
    if not old_level.startswith("band:"):
        return None
    return _nest_bands(text, w, integer)


def _nest_bands(text: pa.Array, w: float, integer: bool) -> pa.Array | None:
    """Previous band labels relabelled as the band of width ``w`` holding each, or None when
    one straddles an edge of the new bands."""
    enc = pc.dictionary_encode(text)
    starts = []
    for label in enc.dictionary.to_pylist():
        m = (_INT_BAND if integer else _FLOAT_BAND).match(label or "")
        if m is None:
            return None
        a, b = float(m.group(1)), float(m.group(2))
        first = math.floor(a / w + 1e-9)
        last = math.floor(b / w + 1e-9) if integer else math.ceil(b / w - 1e-9) - 1
        if first != last:
            return None  # the previous band straddles an edge of the new one: they do not nest
        starts.append(first * w)
    if not starts:
        return pa.nulls(len(text), pa.string())
    labels = band_labels(np.asarray(starts, dtype=np.float64), w, integer)
    return pa.DictionaryArray.from_arrays(enc.indices, labels).cast(pa.string())


def guard_differencing(work: pa.Table, previous: SignedRelease, kcols: list[str], before: Mapping[str, str],
                        now: Mapping[str, str], cols: Mapping[str, ColumnPolicy], person: str,
                        k: int, shown: Mapping[str, set[str]]) -> tuple[pa.Table, dict[str, Any]]:
    """Hide changes of fewer than ``k`` rows in any class, compared class by class under the
    coarser of the two releases.

    This release publishes a subset of the previous release's columns at the same or coarser,
    *nesting* levels (the caller makes sure), so every previous row falls in exactly one class of
    this release (:func:`map_level`): an attacker subtracting the two downloads learns, per class,
    the change in its count and nothing finer. A class that gained 1 … k − 1 rows keeps its
    previous count (the newcomers are held back for a later release); one that lost 1 … k − 1
    rows keeps the previous rows (already public, relabelled at this release's levels).
    ``departures_unmasked`` is always 0 (kept for older readers of the recipe).
    """
    mapped = {q: map_level(previous.table.column(q), before[q], now[q], cols[q], shown.get(q)) for q in kcols}
    if any(v is None for v in mapped.values()):  # the caller coarsens until every column nests
        raise DeidentificationError("a column's level does not nest the previous signed release's (第十二条)")
    report: dict[str, Any] = {"compared_on": list(kcols), "rule": "same or fewer columns, same or coarser nesting "
                              "levels; changes of fewer than k rows per class held back or retained (第十二条)",
                              "levels": {q: {"previous": before[q], "now": now[q]} for q in kcols},
                              "held_back_rows": 0, "retained_rows": 0, "departures_unmasked": 0}
    if not kcols or previous.table.num_rows == 0:
        return work, report
    key = [f"c{i}" for i in range(len(kcols))]
    new_rows = row_index(pa.table([pc.cast(work.column(c), pa.string()) for c in kcols], names=key), key)
    old_rows = row_index(pa.table([mapped[c] for c in kcols], names=key), key)
    drop: list[int] = []
    add: list[int] = []
    for kv in set(old_rows) | set(new_rows):
        delta = len(new_rows.get(kv, ())) - len(old_rows.get(kv, ()))
        if 0 < delta < k:
            drop += new_rows[kv][:delta]
            report["held_back_rows"] += delta
        elif -k < delta < 0:
            add += old_rows[kv][:-delta]
            report["retained_rows"] += -delta
    if drop:
        keep = np.ones(work.num_rows, dtype=bool)
        keep[drop] = False
        work = work.filter(pa.array(keep))
    if add:
        take = pa.array(add, pa.int64())
        fresh = pa.array(np.arange(len(add), dtype=np.int64) - len(add) - 1)  # persons of their own
        extra = pa.table([*(pc.cast(mapped[c].take(take), work.schema.field(c).type) for c in kcols), fresh],
                         names=[*kcols, person])
        work = pa.concat_tables([work, extra.cast(work.schema)])
    return work, report


#: How the recipe names this dataset's previous signed release among the files it was compared with.
PREVIOUS: Final = "the previous signed release of this dataset"


def granular_of(recipe: Mapping[str, Any]) -> int | None:
    """The granularity of a release whose counts are multiples of it, or None (a release signed
    before that rule, or aligned to one: exact counts)."""
    c = recipe.get("counts") or {}
    g = c.get("granularity")
    return g if c.get("aligned") == "multiples" and isinstance(g, int) and g > 0 else None


def anchor_counts(work: pa.Table, kcols: list[str], now: Mapping[str, str], cols: Mapping[str, ColumnPolicy],
                   shown: Mapping[str, set[str]], previous: SignedRelease | None, published: Sequence[SignedRelease]
                   ) -> tuple[list[dict], dict | None, list[str]]:
    """Each public file that maps onto this release's combinations, as its count of each: the
    granular ones (anchors), and this dataset's previous release when it predates granular counts
    (exact). Files whose columns or levels do not map are still covered by the granularity."""
    sources = [] if previous is None else [previous]
    sources += [p for p in published if previous is None or not p.table.equals(previous.table)]
    priors: list[dict] = []
    exact = None
    names: list[str] = []
    for src in sources:
        try:
            mapped = _mapped_onto(work, kcols, now, cols, shown, src)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, KeyError):
            mapped = None  # a file of another shape: the granularity alone covers it
        if mapped is None:
            continue
        counts: dict = {}
        for kv in granular_counts.class_keys(mapped, kcols):
            counts[kv] = counts.get(kv, 0) + 1
        if granular_of(src.recipe) is not None:
            priors.append(counts)
        elif src is previous:
            exact = counts
        else:
            continue
        if src is previous:
            names.append(PREVIOUS)
        elif src.public:  # a file awaiting the regulator is not named (it may never be public)
            names.append(src.name)
    return priors, exact, names


def _mapped_onto(work: pa.Table, kcols: list[str], now: Mapping[str, str], cols: Mapping[str, ColumnPolicy],
                 shown: Mapping[str, set[str]], src: SignedRelease) -> pa.Table | None:
    """``src``'s rows relabelled onto this release's columns and levels, or None when one of our
    columns has no counterpart there or its level does not nest. A column is matched by its name,
    else (renamed: 区县 for district) by its values: the other file's column whose labels, at our
    level, share the most with ours (Jaccard ≥ 0.5) — an outsider matches columns by content too."""
    names = src.table.column_names
    before = level_names(src.recipe, names)
    out: dict[str, pa.Array] = {}
    for q in [q for q in kcols if q in names]:
        m = map_level(src.table.column(q), before[q], now[q], cols[q], shown.get(q))
        if m is None:
            return None
        out[q] = m
    used = set(out)
    for q in [q for q in kcols if q not in out]:
        mine = shown_values(work.column(q))
        best: tuple[float, str, pa.Array | None] = (0.0, "", None)
        for c in [c for c in names if c not in used and c not in kcols]:
            m = map_level(src.table.column(c), before[c], now[q], cols[q], shown.get(q))
            if m is None:
                continue
            theirs = shown_values(m)
            score = len(mine & theirs) / len(mine | theirs) if mine | theirs else 0.0
            if score > best[0]:
                best = (score, c, m)
        if best[0] < 0.5 or best[2] is None:
            return None
        out[q] = best[2]
        used.add(best[1])
    return pa.table([out[q] for q in kcols], names=list(kcols))
