"""Open files whose row counts are multiples of g ≥ k, anchored to what is already public
(第十二条; issue 14, round 3 of the red team of the unconditional derivative).

Why: k-anonymity does not compose. Two open files of the same people built independently —
yearly snapshots published as separate datasets (2025年…, 2026年…), one district's file and
the rest of the city's, the same columns under other headers, an older version of the same
dataset — can be subtracted (or added, then subtracted) down to one newcomer's or one leaver's
row. The guard of one dataset's successive releases
(:func:`sandbox.governance.deidentification.successive_releases.guard_differencing`)
compares with that dataset's last release only, and nothing tells the builder which other
files an outsider will line up with this one, under which headers.

Rule (applied to every derivative, as its last step before the shuffle):

1. **granularity**: every combination of the published columns appears a multiple of ``g``
   times, ``g`` the smallest of 5, 10, 20, 40 … (:func:`granularity`) that is at least k.
   Every count an outsider can form from open files — one combination, a column ignored
   (projection), bands merged, files added (a union) or subtracted, whatever their headers or
   row order — is a whole-number sum of such counts, hence a multiple of the smaller ``g`` of the
   files involved: 0 or at least 5 rows, never 1 … 4. This needs no guess about which files are
   related, so it also covers files of other owners and files published later.
2. **anchors** (hysteresis): *which* multiple is published is chosen against the counts the
   already-public files show for the same combination (mapped onto this release's labels by
   :mod:`sandbox.governance.deidentify`), and sums of two of them (a district's file and the rest of the
   city's), ranked by their total difference from this release (the likeliest predecessor
   first): the first count within ``g − 1`` of the true one is kept, so a single newcomer or
   leaver cannot tip a combination over a rounding edge and show where it went; otherwise the
   nearest sum of public counts, moved by whole steps of ``g``. A file at a smaller g (k = 5
   next to this k = 10) may be anchored to, so a release's own lattice is the largest ladder
   value dividing all its counts, recorded in the recipe (never below 5).

Rows are removed (a person with several rows in the combination first) or duplicated (a copy of
a row of the same combination, all of whose published values are the same). Pure functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance.risk_scan import K_MIN

#: Granularities double from the scan's k minimum, so each divides the next: a file at g = 10 and
#: one at g = 5 still differ by multiples of 5.
LADDER_BASE: Final = K_MIN
#: Anchors are sums of the counts of at most this many public files per combination (the nearest
#: sums only matter; the cap bounds the work when a portal holds many files of the same shape).
MAX_ANCHOR_FILES: Final = 64

Key = tuple[Any, ...]


def granularity(k: int) -> int:
    """The smallest of 5, 10, 20, 40 … at least ``k``.

    >>> [granularity(k) for k in (5, 6, 10, 11, 1000)]
    [5, 10, 10, 20, 1280]
    """
    g = LADDER_BASE
    while g < k:
        g *= 2
    return g


def anchors(priors: Iterable[int], g: int, *, bound: int, residue: int | None = None) -> set[int]:
    """Sums of any subset of ``priors`` (the empty one included) up to ``bound + g``; with
    ``residue``, only those equal to it modulo ``g``.

    >>> sorted(anchors([5, 5, 10], 5, bound=12))
    [0, 5, 10, 15]
    >>> sorted(anchors([10, 15], 10, bound=30, residue=0))
    [0, 10]
    """
    sums = {0}
    for p in list(priors)[:MAX_ANCHOR_FILES]:
        if p > 0:
            sums |= {s + p for s in sums if s + p <= bound + g}
    return sums if residue is None else {s for s in sums if s % g == residue % g}


def published_count(n: int, g: int, candidates: set[int] | None) -> int:
    """The count to publish for a combination held ``n`` times.

    ``candidates`` None: nothing public maps onto this release; the nearest positive multiple of
    ``g`` (a combination that passed k is not emptied). Otherwise the nearest candidate while
    within ``g − 1`` of ``n``, else that candidate moved by the nearest whole number of ``g``.

    >>> published_count(7, 5, None), published_count(8, 5, None), published_count(3, 5, None)
    (5, 10, 5)
    >>> published_count(11, 5, {0, 10}), published_count(14, 5, {0, 10}), published_count(18, 5, {0, 10})
    (10, 10, 20)
    >>> published_count(4, 5, {0}), published_count(3, 5, {0, 5})
    (0, 5)
    """
    if candidates is None:
        return g * max(1, int(np.floor(n / g + 0.5))) if n > 0 else 0
    a = min(candidates, key=lambda c: (abs(n - c), -c))
    d = n - a
    if abs(d) < g:
        return a
    return max(0, a + g * int(np.sign(d)) * int(np.floor(abs(d) / g + 0.5)))


def class_keys(table: pa.Table, cols: Sequence[str]) -> list[Key]:
    """Each row's combination of ``cols`` as text (null stays None)."""
    return list(zip(*(pc.cast(table.column(c), pa.string()).to_pylist() for c in cols), strict=True)) \
        if cols else [()] * table.num_rows


def make_granular(work: pa.Table, kcols: Sequence[str], person: str, g: int,
                  priors: Sequence[Mapping[Key, int]], exact: Mapping[Key, int] | None = None, *,
                  predecessor: Mapping[Key, int] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """``work`` with every combination of ``kcols`` held a multiple of ``g`` times (see the module
    doc). ``priors``: per public file that maps onto this release (each a multiple of its own
    granularity, which ``g`` need not divide), its count of each combination. ``exact``: the
    counts of this dataset's previous release when it predates this rule (exact counts): a
    combination it holds keeps its count modulo ``g``, so the two still differ by multiples of g.
    ``predecessor``: this dataset's previous release (also in ``priors``), tried first, so the
    per-dataset guard's "0 or at least k" against it holds at a k above its g.
    Returns the table and a report (rows added and removed: raw counts, not for the public)."""
    keys = class_keys(work, kcols)
    rows: dict[Key, list[int]] = {}
    for i, kv in enumerate(keys):
        rows.setdefault(kv, []).append(i)
    persons = work.column(person).to_numpy(zero_copy_only=False)
    counts = {kv: len(idx) for kv, idx in rows.items()}
    ranked = _ranked_sources(counts, priors, g)
    if predecessor is not None:
        ranked = [predecessor, *ranked]
    drop: list[int] = []
    copy: list[int] = []
    for kv, idx in rows.items():
        n = len(idx)
        if exact is not None and kv in exact:  # keep the exact release's residue modulo g
            cands = anchors((p.get(kv, 0) for p in ranked), g, bound=n, residue=exact[kv]) | {exact[kv]}
            v = exact[kv] if abs(n - exact[kv]) < g else published_count(n, g, cands)
        elif ranked:
            near = [c for c in (src.get(kv, 0) for src in ranked) if abs(n - c) < g]
            v = near[0] if near else published_count(n, g, {0, *(src.get(kv, 0) for src in ranked)})
        else:
            v = published_count(n, g, None)
        if v < n:
            drop += _rows_to_remove(idx, persons, n - v)
        elif v > n:
            copy += [idx[0]] * (v - n)
    keep = np.ones(work.num_rows, dtype=bool)
    keep[drop] = False
    out = work.filter(pa.array(keep)) if drop else work
    if copy:
        extra = work.take(pa.array(copy, pa.int64()))
        lowest = min(0, int(persons.min())) if len(persons) else 0
        fresh = pa.array(lowest - 1 - np.arange(len(copy), dtype=np.int64)).cast(work.schema.field(person).type)
        extra = extra.set_column(extra.column_names.index(person), work.schema.field(person), fresh)
        out = pa.concat_tables([out, extra])
    # PRIVACY: the rows added and removed are raw counts (n mod g); names ending in _rows are left
    # out of the public recipe (sandbox.governance.open_catalog._public_recipe)
    # (whether a possible predecessor was found depends on the raw counts: not in the recipe)
    return out, {"granularity": _lattice(out, kcols, g), "step": g, "added_rows": len(copy),
                 "removed_rows": len(drop)}


def _lattice(table: pa.Table, kcols: Sequence[str], g: int) -> int:
    """The largest of 5, 10, 20 … up to ``g`` dividing every combination's count (an anchor of a
    file at a smaller g keeps its count, so a release at k = 10 next to one at k = 5 may hold
    multiples of 5 only; one aligned to exact counts: 1)."""
    sizes: dict[Key, int] = {}
    for kv in class_keys(table, kcols):
        sizes[kv] = sizes.get(kv, 0) + 1
    while g > LADDER_BASE and any(m % g for m in sizes.values()):
        g //= 2
    return g if not any(m % g for m in sizes.values()) else 1


def _ranked_sources(counts: Mapping[Key, int], priors: Sequence[Mapping[Key, int]], g: int
                    ) -> list[Mapping[Key, int]]:
    """The public files, and sums of two of them (a district's file and the rest of the city's),
    that could be this release's predecessor — differing from it by less than ``g`` per
    combination on average (a file of other people differs by more, and holding to it would only
    cost accuracy) — most like this release first (least total difference): a combination keeps
    the count of the likeliest predecessor when it can, so that the file an outsider would
    subtract shows no change that one newcomer or leaver tipped over a rounding edge."""
    def close(p: Mapping[Key, int]) -> bool:
        return _distance(counts, p) < g * max(1, len(set(counts) | set(p)))

    singles = sorted(priors, key=lambda p: _distance(counts, p))[:16]
    pairs = [_add(a, b) for i, a in enumerate(singles) for b in singles[i + 1:]]
    return sorted([p for p in [*singles, *pairs] if close(p)], key=lambda p: _distance(counts, p))


def _distance(a: Mapping[Key, int], b: Mapping[Key, int]) -> int:
    return sum(abs(a.get(kv, 0) - b.get(kv, 0)) for kv in set(a) | set(b))


def _add(a: Mapping[Key, int], b: Mapping[Key, int]) -> dict[Key, int]:
    return {kv: a.get(kv, 0) + b.get(kv, 0) for kv in set(a) | set(b)}


def _rows_to_remove(idx: list[int], persons: np.ndarray, m: int) -> list[int]:
    """``m`` of the rows ``idx``, taken from the persons with the most rows there first (so the
    combination loses as few persons as it can: k counts persons)."""
    by_person: dict[Any, list[int]] = {}
    for i in idx:
        by_person.setdefault(persons[i], []).append(i)
    out: list[int] = []
    while len(out) < m:
        p = max(by_person, key=lambda q: (len(by_person[q]), str(q)))
        out.append(by_person[p].pop())
        if not by_person[p]:
            del by_person[p]
    return out
