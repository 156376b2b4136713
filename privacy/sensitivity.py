"""What one person can change: the statistics we add noise to and their sensitivities.

The engine returns exact per-group statistics (``query_guard/plan.py``). We add noise to
integer vectors over the released groups, one vector per *noised statistic*:

==========  =====================================  ==========================
statistic   per group                              one row moves it by at most
==========  =====================================  ==========================
``count``   ``COUNT`` (rows, or distinct units)    1
``sum``     Σ v, v = round(x·fp)                    V = max(|⌊lo·fp⌋|, |⌈hi·fp⌉|)
``csum``    Σ (v − a), a the centre in fixed point  R = max(⌈hi·fp⌉ − a, a − ⌊lo·fp⌋)
``csumsq``  ⌊Σ (x − c)²·fp⌋, c = a/fp               (R² + |a|)/fp + 2 (rounding slack)
``hist``    one count per histogram bin             1 (in one bin)
==========  =====================================  ==========================

A person adds at most L∞ rows to each of at most L0 groups (the guard's bounding pass),
so a vector's L1 sensitivity is L0 × ⌈L∞ × per-row bound⌉ and its L2 sensitivity
√L0 × ⌈L∞ × per-row bound⌉ (``count_distinct``: at most 1 per group).

Centring (``csum``, ``csumsq``) is a deterministic function of the exact statistics,
computed here in exact integer arithmetic: Σ(v − a) = S − a·C and
fp·Σ(x − c)² ≈ fp·W − 2a·S + a²·C. It halves the per-row bound of a mean's sum when
lo ≥ 0 (Tumult Analytics and PipelineDP compute averages from the same "normalised
sum"); the released mean is c + noisy Σ(x − c) / noisy count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from privacy.errors import PrivacyError
from query_guard.plan import Measurement

#: noised statistics per measurement kind (in allocation order).
NOISED_STATS: Mapping[str, tuple[str, ...]] = {
    "count": ("count",),
    "count_distinct": ("count",),
    "sum": ("sum",),
    "mean": ("csum", "count"),
    "variance": ("csumsq", "csum", "count"),
    "stddev": ("csumsq", "csum", "count"),
    "quantile": ("hist",),
}


@dataclass(frozen=True)
class Centre:
    """The centre a (fixed point) and R = max |v − a| over clamped values."""

    a: int
    radius: int
    fixed_point: int

    @property
    def value(self) -> float:
        return self.a / self.fixed_point

    @property
    def value_radius(self) -> float:
        return self.radius / self.fixed_point


@dataclass(frozen=True)
class StatSpec:
    """One noised statistic of one measurement.

    ``l1``/``l2``: sensitivities of its vector over groups. ``weight``: its coefficient
    in the worst-case delta-method error of the measurement's estimate, in output units
    (see :mod:`privacy.allocation`).
    """

    measurement: str
    stat: str
    l1: float
    l2: float
    weight: float
    unit: float = 1.0  # divide the noisy integer by this to get output units


def _bounds(m: Measurement) -> tuple[float, float]:
    if m.lower is None or m.upper is None:
        raise PrivacyError(f"measurement {m.id} ({m.kind}) has no bounds", code="internal_error")
    return float(m.lower), float(m.upper)


def row_bound(m: Measurement) -> int:
    """V: the largest |round(x·fp)| of a clamped value."""
    lo, hi = _bounds(m)
    fp = m.fixed_point
    return max(1, abs(math.floor(lo * fp)), abs(math.ceil(hi * fp)))


def centre(m: Measurement) -> Centre:
    lo, hi = _bounds(m)
    fp = m.fixed_point
    vlo, vhi = math.floor(lo * fp), math.ceil(hi * fp)
    a = (vlo + vhi) // 2
    return Centre(a, max(1, vhi - a, a - vlo), fp)


def _per_group(m: Measurement, per_row: float) -> int:
    return max(1, math.ceil(m.max_rows_per_partition * per_row))


def stat_specs(m: Measurement) -> list[StatSpec]:
    """The noised statistics of ``m`` with their sensitivities and error weights."""
    l0 = m.max_partitions
    root = math.sqrt(l0)
    kind = m.kind
    if kind not in NOISED_STATS:
        raise PrivacyError(f"unsupported aggregate kind {kind!r}", code="unsupported_aggregate")
    if kind == "count_distinct":
        return [StatSpec(m.id, "count", l0, root, 1.0)]
    if kind in ("count", "quantile"):
        g = _per_group(m, 1)
        return [StatSpec(m.id, NOISED_STATS[kind][0], l0 * g, root * g, 1.0)]
    if kind == "sum":
        g = _per_group(m, row_bound(m))
        return [StatSpec(m.id, "sum", l0 * g, root * g, 1.0, float(m.fixed_point))]
    c = centre(m)
    fp = float(m.fixed_point)
    r = c.value_radius
    g_sum = _per_group(m, c.radius)
    g_cnt = _per_group(m, 1)
    csum = (l0 * g_sum, root * g_sum)
    count = (l0 * g_cnt, root * g_cnt)
    if kind == "mean":
        # mean ≈ c + S/C:  ∂/∂S = 1/C,  ∂/∂C = −μc/C with |μc| ≤ r.
        return [StatSpec(m.id, "csum", *csum, 1.0, fp), StatSpec(m.id, "count", *count, r)]
    # +2: the engine rounds (or floors) x²·fp, off by < 1 (+ float slack) per row.
    g_sq = _per_group(m, (c.radius * c.radius + abs(c.a)) / fp + 2)
    csumsq = (l0 * g_sq, root * g_sq)
    # var ≈ Q/C − (S/C)²:  ∂/∂Q = 1/C,  ∂/∂S = −2μc/C,  ∂/∂C = −(m2 − 2μc²)/C, |·| ≤ r².
    return [
        StatSpec(m.id, "csumsq", *csumsq, 1.0, fp),
        StatSpec(m.id, "csum", *csum, 2 * r, fp),
        StatSpec(m.id, "count", *count, r * r),
    ]


def _column(exact: Mapping[str, Sequence[Any]], name: str, rows: Sequence[int | None]) -> list[int]:
    column = exact.get(name)
    if column is None:
        raise PrivacyError(f"the engine result lacks column {name}", code="internal_error")
    return [int(column[i]) if i is not None and column[i] is not None else 0 for i in rows]


def exact_vector(
    m: Measurement, stat: str, exact: Mapping[str, Sequence[Any]], rows: Sequence[int | None]
) -> list[int]:
    """The exact integer vector of one noised statistic over the released groups.

    ``rows[g]`` is the engine-result row of group g (None: the group is empty).
    PRIVACY: the result is exact; it must only go into an OpenDP measurement.
    """
    if stat == "count":
        return _column(exact, m.stats["count"], rows)
    if stat == "sum":
        return _column(exact, m.stats["sum"], rows)
    if stat == "hist":
        return _histograms(m, exact, rows)
    c = centre(m)
    sums = _column(exact, m.stats["sum"], rows)
    counts = _column(exact, m.stats["count"], rows)
    if stat == "csum":
        return [s - c.a * n for s, n in zip(sums, counts, strict=True)]
    if stat == "csumsq":
        squares = _column(exact, m.stats["sumsq"], rows)
        fp = m.fixed_point
        return [w + (c.a * c.a * n - 2 * c.a * s) // fp
                for w, s, n in zip(squares, sums, counts, strict=True)]
    raise PrivacyError(f"unknown statistic {stat!r}", code="internal_error")


def _histograms(m: Measurement, exact: Mapping[str, Sequence[Any]], rows: Sequence[int | None]
                ) -> list[int]:
    bins = m.bins
    if bins <= 0:
        raise PrivacyError(f"quantile measurement {m.id} has no histogram bins", code="internal_error")
    column = exact.get(m.stats["hist"])
    if column is None:
        raise PrivacyError("the engine result lacks the histogram column", code="internal_error")
    out: list[int] = []
    for i in rows:
        counts = [0] * bins
        cell = column[i] if i is not None else None
        items = cell.items() if isinstance(cell, Mapping) else (cell or ())
        for key, value in items:
            if key is None or value is None:
                continue
            b = min(bins - 1, max(0, int(key)))  # the engine clips too; never trust blindly
            counts[b] += int(value)
        out.extend(counts)
    return out
