"""Quantiles from one noisy histogram per group: several fractions, one budget, monotone.

The engine gives, per group, the histogram of the clamped value over ``bins`` bins of
[lower, upper]: equal bins (``layout="linear"``) or, for plans from the planner, the
merged equal + asinh grid of :mod:`query_guard.histogram` (``"linear_asinh"``), which is
finer where the mass of a skewed column sits. One OpenDP measurement adds noise to every bin of every group (see
:mod:`privacy.release`); everything below is post-processing of those noisy counts:

1. the noisy cumulative counts are made monotone by isotonic regression (pool adjacent
   violators; Hay, Rastogi, Miklau, Suciu 2010, "Boosting the accuracy of differentially
   private histograms through consistency") and turned back into non-negative counts;
2. OpenDP's ``make_quantiles_from_counts`` (linear interpolation inside a bin) reads
   every fraction off the same counts, so the quantiles are monotone in the fraction by
   construction and all fractions share one budget.

Interval (:func:`rank_interval`, what releases use). Let Ñ_k be the noisy count of bins
0..k, T the noisy total and W_k = (Ñ_k − f·T) − (true N_k − f·N), a weighted sum of the
bins' independent noises with variance v·((k+1)(1−f)² + (bins−k−1)f²). QUANTILE_CONT's
two order statistics lie in bins j1 ≤ j2 with N_j1 − fN ≥ −1 and N_(j2−1) − fN ≤ 1. The
interval runs from the first bin k with Ñ_k − f·T + a_k ≥ −1 to the last bin k with
Ñ_(k−1) − f·T − a_(k−1) < 1; it misses the truth only if W_j1 < −a_j1 or
W_(j2−1) ≥ a_(j2−1): one fixed position each, so with a_k = z_(1−α/2)·sd(W_k) (normal
approximation of a sum of many independent noises) each side fails with probability
≈ α/2, and the coverage is ≈ 1 − α rather than the ≈ 1 of a simultaneous band.

Band (:func:`cumulative_band`, kept for comparison). Let Z_k be the sum of the first k bins' noise. By Doob's maximal inequality
applied to exp(t·Z_k) and a Chernoff bound on the noise's moment generating function,
P(max_k |Z_k| > E) ≤ 2 min_t e^(−tE) M(t)^bins. Under that event every true
cumulative count is within E of the noisy one, which brackets the bin holding the true
quantile; the interval is that bracket's edges. Discrete Laplace: M(t) = (1−p)² /
((1 − p e^t)(1 − p e^−t)), p = e^(−1/scale); discrete Gaussian: σ²-subgaussian
(Canonne, Kamath, Steinke 2020), so E = σ √(2 · bins · ln(2/α)).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from statistics import NormalDist

from privacy.features import dp
from privacy.mechanisms import Family, noise_variance
from query_guard import histogram

Layout = str  # "linear" | "linear_asinh" (query_guard.plan.Measurement.bin_layout)


def isotonic(values: Sequence[float]) -> list[float]:
    """Least-squares non-decreasing fit (pool adjacent violators), O(n).

    >>> isotonic([1, 3, 2, 4])
    [1.0, 2.5, 2.5, 4.0]
    """
    blocks: list[list[float]] = []  # [mean, weight]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    out: list[float] = []
    for mean, weight in blocks:
        out.extend([mean] * int(weight))
    return out


def consistent_counts(noisy: Sequence[int]) -> list[float]:
    """Non-negative counts whose running sum is the isotonic fit of the noisy running sum."""
    cumulative, total = [], 0.0
    for v in noisy:
        total += v
        cumulative.append(total)
    fitted = [max(0.0, c) for c in isotonic(cumulative)]
    counts, previous = [], 0.0
    for c in fitted:
        counts.append(max(0.0, c - previous))
        previous = max(previous, c)
    return counts


@functools.lru_cache(maxsize=256)
def edges(lower: float, upper: float, bins: int, layout: Layout = "linear") -> list[float]:
    """The bins + 1 edges of the histogram the engine computed (public: from the bounds)."""
    if layout == "linear_asinh" and bins == histogram.HIST_BINS:
        return histogram.bin_edges(lower, upper)
    width = (upper - lower) / bins
    return [lower + i * width for i in range(bins)] + [upper]


def _strict(cut: Sequence[float], counts: Sequence[float]) -> tuple[list[float], list[float]]:
    """Drop empty-width bins (a tie of the two grids), moving their counts to the next bin."""
    out_e, out_c, carry = [cut[0]], [], 0.0
    for right, c in zip(cut[1:], counts, strict=True):
        if right > out_e[-1]:
            out_e.append(right)
            out_c.append(c + carry)
            carry = 0.0
        else:
            carry += c
    if out_c:
        out_c[-1] += carry
    return out_e, out_c


@functools.lru_cache(maxsize=256)
def _quantile_function(cut: tuple[float, ...], fractions: tuple[float, ...]):
    return dp.t.make_quantiles_from_counts(
        bin_edges=list(cut), alphas=list(fractions), interpolation="linear"
    )


def quantiles(noisy: Sequence[int], lower: float, upper: float, fractions: Sequence[float],
              layout: Layout = "linear") -> list[float]:
    """Each fraction's quantile read off one consistent noisy histogram (monotone)."""
    if not upper > lower:  # clamped to one value: every quantile is that value, whatever the data
        return [float(lower)] * len(fractions)
    counts = consistent_counts(noisy)
    order = sorted(range(len(fractions)), key=lambda i: fractions[i])
    if sum(counts) <= 0:
        return [(lower + upper) / 2] * len(fractions)
    cut, counts = _strict(edges(float(lower), float(upper), len(noisy), layout), counts)
    ranked = _quantile_function(tuple(cut), tuple(float(fractions[i]) for i in order))(counts)
    out = [0.0] * len(fractions)
    for i, value in zip(order, ranked, strict=True):
        out[i] = min(upper, max(lower, float(value))) if math.isfinite(value) else (lower + upper) / 2
    # Ties in the sorted order can only help; enforce monotone against float noise.
    running = -math.inf
    for i in order:
        running = max(running, out[i])
        out[i] = running
    return out


@functools.lru_cache(maxsize=1024)
def cumulative_band(family: Family, scale: float, bins: int, alpha: float) -> float:
    """E with P(max_k |noise of the first k bins| > E) ≤ alpha (Doob + Chernoff)."""
    if family == "gaussian":
        return scale * math.sqrt(2 * bins * math.log(2 / alpha))
    p = math.exp(-1.0 / scale)

    def log_bound(e: float) -> float:
        # min over t in (0, 1/scale) of −tE + bins·log M(t); convex in t: golden section.
        def f(t: float) -> float:
            return -t * e + bins * (2 * math.log1p(-p) - math.log1p(-p * math.exp(t))
                                    - math.log1p(-p * math.exp(-t)))

        a, b = 0.0, (1.0 / scale) * (1 - 1e-9)
        g = (math.sqrt(5) - 1) / 2
        c, d = b - g * (b - a), a + g * (b - a)
        for _ in range(100):
            if f(c) < f(d):
                b = d
            else:
                a = c
            c, d = b - g * (b - a), a + g * (b - a)
        return f((a + b) / 2)

    target = math.log(alpha / 2)
    lo, hi = 0.0, scale
    while log_bound(hi) > target:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if log_bound(mid) > target else (lo, mid)
    return hi


def quantile_interval(noisy: Sequence[int], lower: float, upper: float, fraction: float,
                      band: float, layout: Layout = "linear") -> tuple[float, float]:
    """Bin edges bracketing the true ``fraction``-quantile when the band holds."""
    bins = len(noisy)
    cut = edges(float(lower), float(upper), bins, layout)
    prefix, total = [], 0.0
    for v in noisy:
        total += v
        prefix.append(total)  # prefix[k] = noisy count of bins 0..k
    # QUANTILE_CONT interpolates the order statistics of ranks ⌊f(N−1)⌋+1 and +2, which
    # lie within [fN − 1, fN + 2]; N is within ``band`` of the noisy total.
    low_rank = fraction * (total - band) - band - 1
    high_rank = fraction * (total + band) + band + 2
    lo_bin = 0
    for k in range(bins):
        if prefix[k] < low_rank:
            lo_bin = k + 1
    hi_bin = bins - 1
    for k in range(bins):
        if prefix[k] >= high_rank:
            hi_bin = k
            break
    lo_bin = min(lo_bin, bins - 1)
    if lo_bin > hi_bin:
        lo_bin, hi_bin = hi_bin, lo_bin
    return cut[lo_bin], cut[hi_bin + 1]


def rank_interval(noisy: Sequence[int], lower: float, upper: float, fraction: float,
                  family: Family, scale: float, alpha: float, layout: Layout = "linear"
                  ) -> tuple[float, float]:
    """Where the true ``fraction``-quantile lies, with probability ≈ 1 − alpha.

    See the module docstring: one position per side, so the two tails at α/2 each. The
    bracketing bins are found from the noisy cumulative counts; each end is then placed
    inside its bin by linear interpolation of those counts (the same reading of a bin as
    the released figure's: values spread evenly within it). Whole bins would hold the truth
    far more often than stated wherever a bin holds more ranks than the noise moves
    (97.8 % for a 95 % interval on the coverage test's incomes).
    """
    bins = len(noisy)
    if not upper > lower or bins == 0:
        return float(lower), float(upper)
    cut = edges(float(lower), float(upper), bins, layout)
    f = min(1.0, max(0.0, fraction))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    v = noise_variance(family, scale)
    total = float(sum(noisy))
    # centred[k + 1]: (Ñ_k − f·T, its half-width) at the right edge of bin k; centred[0]
    # is the left edge of bin 0 (no bin counted yet)
    centred = [(-f * total, z * math.sqrt(v * bins * f * f))]
    running = 0.0
    for k, h in enumerate(noisy):
        running += h
        sd = math.sqrt(v * ((k + 1) * (1 - f) ** 2 + (bins - k - 1) * f * f))
        centred.append((running - f * total, z * sd))
    upper_c = [c + a for c, a in centred]  # the most the true centred cumulative may be
    lower_c = [c - a for c, a in centred]  # the least
    # lower end: where the upper confidence cumulative first reaches −1
    lo_x = float(cut[-1])
    for i in range(bins + 1):
        if upper_c[i] >= -1:
            lo_x = float(cut[i]) if i == 0 else _cross(cut, i - 1, upper_c[i - 1], upper_c[i], -1)
            break
    # upper end: past the last point where the lower confidence cumulative is below 1
    hi_x = float(cut[0])
    for i in range(bins, -1, -1):
        if lower_c[i] < 1:
            hi_x = float(cut[i]) if i == bins else _cross(cut, i, lower_c[i], lower_c[i + 1], 1)
            break
    if lo_x > hi_x:
        lo_x, hi_x = hi_x, lo_x
    return lo_x, hi_x


def _cross(cut: Sequence[float], k: int, left: float, right: float, level: float) -> float:
    """Where, inside bin k, a cumulative going from ``left`` (its left edge) to ``right``
    (its right edge) linearly reaches ``level``; an end of the bin when it does not."""
    a, b = float(cut[k]), float(cut[k + 1])
    if right == left:
        return b if right < level else a
    share = min(1.0, max(0.0, (level - left) / (right - left)))
    return a + share * (b - a)
