"""From noisy statistics to released values and their intervals (post-processing only).

Counts and sums take their intervals from OpenDP's accuracy functions for the noise
actually added (``discrete_laplacian_scale_to_accuracy`` /
``discrete_gaussian_scale_to_accuracy``): P(|noise| > a) ≤ α. Means and variances, ratios
of several noisy parts, invert a test on the parts' joint noise
(:mod:`privacy.inversion`), so that their coverage is the stated one rather than the
≈ 99 % of a union bound; quantiles read the noisy histogram's cumulative counts
(:func:`privacy.quantiles.rank_interval`). Each ``method`` says how it was obtained.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from privacy.allocation import NoiseSpec
from privacy.inversion import mean_intervals, variance_intervals
from privacy.mechanisms import Family, half_width
from privacy.quantiles import quantiles, rank_interval
from privacy.sensitivity import centre
from query_guard.plan import Measurement

Interval = tuple[float, float]

FAMILY_NAMES = {"laplace": "discrete Laplace", "gaussian": "discrete Gaussian"}


@dataclass(frozen=True)
class Noisy:
    """One measurement's noisy statistics (integers, per released group)."""

    m: Measurement
    stats: Mapping[str, list[int]]
    specs: Mapping[str, NoiseSpec]
    from_partitions: bool = False

    def half(self, stat: str, alpha: float) -> float:
        """Half-width of statistic ``stat`` at level alpha, in output units."""
        s = self.specs[stat]
        return half_width(s.family, s.scale, alpha) / s.unit

    def family_name(self) -> str:
        return FAMILY_NAMES[next(iter(self.specs.values())).family]


def values(n: Noisy) -> list[Any]:
    """The released point values, one per group (a list per group for quantiles)."""
    m = n.m
    if m.kind in ("count", "count_distinct"):
        return [max(0, int(v)) for v in n.stats["count"]]
    if m.kind == "sum":
        out = [v / m.fixed_point for v in n.stats["sum"]]
        return [round(v) for v in out] if m.value_type == "int" else out
    lo, hi = float(m.lower), float(m.upper)  # type: ignore[arg-type]
    if m.kind == "quantile":
        size = m.bins
        hist = n.stats["hist"]
        return [quantiles(hist[g * size:(g + 1) * size], lo, hi, m.quantiles, m.bin_layout)
                for g in range(len(hist) // size if size else 0)]
    c = centre(m).value
    sums = [v / m.fixed_point for v in n.stats["csum"]]
    counts = n.stats["count"]
    if m.kind == "mean":
        return [min(hi, max(lo, c + s / k)) if k >= 1 else (lo + hi) / 2
                for s, k in zip(sums, counts, strict=True)]
    ddof = _ddof(m)
    out = []
    for q, s, k in zip(n.stats["csumsq"], sums, counts, strict=True):
        if k < 1 + ddof:
            var = (hi - lo) ** 2 / 8
        else:
            var = min(_max_variance(lo, hi, k, ddof),
                      max(0.0, (q / m.fixed_point - s * s / k) / (k - ddof)))
        out.append(math.sqrt(var) if m.kind == "stddev" else var)
    return out


def _ddof(m: Measurement) -> int:
    """1 for VARIANCE/STDDEV (sample), 0 for VAR_POP/STDDEV_POP."""
    return int(getattr(m, "ddof", 1))


def _max_variance(lo: float, hi: float, count: float, ddof: int = 1) -> float:
    """Largest variance (divisor count − ddof) of ``count`` values in [lo, hi]."""
    if count < 1 + ddof:
        return (hi - lo) ** 2 / 2
    return (hi - lo) ** 2 / 4 * count / (count - ddof)


def intervals(n: Noisy, alpha: float) -> list[Any]:
    """Per group, the interval at level alpha (a list of intervals for quantiles)."""
    m = n.m
    if m.kind in ("count", "count_distinct"):
        a = n.half("count", alpha)
        return [(max(0.0, v - a), max(0.0, v + a)) for v in n.stats["count"]]
    if m.kind == "sum":
        a = n.half("sum", alpha)
        return [(v / m.fixed_point - a, v / m.fixed_point + a) for v in n.stats["sum"]]
    lo, hi = float(m.lower), float(m.upper)  # type: ignore[arg-type]
    if m.kind == "quantile":
        spec = n.specs["hist"]
        size = m.bins
        hist = n.stats["hist"]
        return [[rank_interval(hist[g * size:(g + 1) * size], lo, hi, f, spec.family, spec.scale,
                               alpha, m.bin_layout) for f in m.quantiles]
                for g in range(len(hist) // size if size else 0)]
    c = centre(m).value
    sums = [v / m.fixed_point for v in n.stats["csum"]]
    counts = n.stats["count"]
    if m.kind == "mean":
        return mean_intervals(c, sums, counts, _scales(n, ("csum", "count")),
                              _steps(n, ("csum", "count")), _family(n), alpha, lo, hi)
    qs = [q / m.fixed_point for q in n.stats["csumsq"]]
    ddof = _ddof(m)
    pivot = variance_intervals(qs, sums, counts, _scales(n, ("csumsq", "csum", "count")),
                               _steps(n, ("csumsq", "csum", "count")), _family(n), alpha,
                               (hi - lo) ** 2 / 2, ddof)
    out = []
    for q, s, k, iv in zip(qs, sums, counts, pivot, strict=True):
        a_c = n.half("count", alpha / 3)
        if k - a_c < max(2.0, 10 * a_c):
            # the first-order pivot needs the count known to ~10 %: otherwise the union
            # bound over the box of the parts' intervals (conservative, always valid)
            iv = _variance_box(n, q, s, k, alpha, lo, hi, ddof)
        top = _max_variance(lo, hi, max(1.0 + ddof, k - a_c), ddof)
        v_lo, v_hi = max(0.0, min(iv[0], top)), max(0.0, min(iv[1], top))
        out.append((math.sqrt(v_lo), math.sqrt(v_hi)) if m.kind == "stddev" else (v_lo, v_hi))
    return out


def _family(n: Noisy) -> Family:
    return next(iter(n.specs.values())).family


def _scales(n: Noisy, stats: tuple[str, ...]) -> Any:
    """Each statistic's noise scale in output units."""
    return tuple(n.specs[st].scale / n.specs[st].unit for st in stats)


def _steps(n: Noisy, stats: tuple[str, ...]) -> Any:
    """Each statistic's grid step (one noised integer) in output units."""
    return tuple(1.0 / n.specs[st].unit for st in stats)


def _variance_box(n: Noisy, q: float, s: float, k: float, alpha: float, lo: float, hi: float,
                  ddof: int) -> Interval:
    """The variance over the box of its parts' intervals, α split among them (the
    narrowest of a fixed list of splits; a union bound, so valid whatever the count)."""
    best = None
    for wq, ws in SPLITS_3:
        a_q, a_s = n.half("csumsq", alpha * wq), n.half("csum", alpha * ws)
        a_c = n.half("count", alpha * (1 - wq - ws))
        iv = _variance_interval(q, a_q, s, a_s, k, a_c, lo, hi, ddof)
        best = iv if best is None or iv[1] - iv[0] < best[1] - best[0] else best
    assert best is not None
    return best


#: Shares of α among a variance's three parts for the fallback box interval. Any split is a
#: valid union bound; the narrowest over this fixed list is chosen from the noisy values
#: (post-processing).
SPLITS_3 = tuple((a, b) for a in (0.34, 0.5, 0.75, 0.9, 0.97, 0.98)
                 for b in (0.01, 0.02, 0.05, 0.1, 0.33) if a + b < 1)


def _variance_interval(q: float, a_q: float, s: float, a_s: float, k: float, a_c: float,
                       lo: float, hi: float, ddof: int = 1) -> Interval:
    """Variance (Q − S²/C)/(C − ddof) over the box of its parts' intervals."""
    k_lo, k_hi = k - a_c, k + a_c
    if k_lo < 1 + ddof:
        return (0.0, (hi - lo) ** 2 / 2)
    s_ends = (abs(s - a_s), abs(s + a_s))
    s2_max = max(s_ends) ** 2
    s2_min = 0.0 if s - a_s <= 0 <= s + a_s else min(s_ends) ** 2
    n_lo, n_hi = (q - a_q) - s2_max / k_lo, (q + a_q) - s2_min / k_hi
    v_lo = n_lo / ((k_hi if n_lo >= 0 else k_lo) - ddof)
    v_hi = n_hi / ((k_lo if n_hi >= 0 else k_hi) - ddof)
    top = _max_variance(lo, hi, k_lo, ddof)
    low, high = max(0.0, min(v_lo, top)), max(0.0, min(v_hi, top))
    return (low, high) if low <= high else (0.0, top)


def method(n: Noisy) -> str:
    """How the value and its interval were obtained, in words."""
    fam = n.family_name()
    kind = n.m.kind
    if kind in ("count", "count_distinct", "sum"):
        if n.from_partitions:
            return (f"noisy count released by {fam} partition selection; interval from "
                    "OpenDP's accuracy function (groups just above the threshold may be "
                    "biased upwards by the selection)")
        return f"{fam} noise; interval from OpenDP's accuracy function"
    if kind == "mean":
        return (f"c + noisy centred sum / noisy count ({fam}, budget split to minimise the "
                "worst-case error); interval: the means a test on the joint noise of sum and "
                "count keeps at level α (Fieller's ratio interval), clipped to the bounds")
    if kind in ("variance", "stddev"):
        return (f"from noisy centred sum of squares, centred sum and count ({fam}); "
                "interval: the values a first-order test on the joint noise of the three "
                "keeps at level α (interval arithmetic at α/3 each when the count is small)")
    grid = "equal + asinh-scaled" if n.m.bin_layout == "linear_asinh" else "equal"
    return (f"from one noisy histogram ({fam}, {n.m.bins} {grid} bins; isotonic fit, OpenDP "
            "make_quantiles_from_counts); interval: from where the noisy cumulative count, "
            "within its α/2 normal bound, could first reach the quantile's rank to where it "
            "must have passed it, each end interpolated within its bin")
