"""Intervals for ratios of noisy statistics, by inverting a test on their joint noise.

A mean is c + S/C and a variance is (Q − S²/C)/(C − d): ratios of independently noised
integers. Interval arithmetic over each part's own interval (a union bound, worst corners
combined) holds, but it over-covers: a 95 % mean interval held the truth 98–99 % of the
time, a variance 99.5 % (issue 13 asks for 93–97 %). This module gives intervals whose
coverage is the stated one, by test inversion (Fieller 1954, the classical interval for a
ratio):

For a hypothesised value h of the figure, the *residual* T(h) is a combination of the
noisy statistics that, were h the truth, equals a known linear combination Σ wᵢ(h)·eᵢ of
the independent noises eᵢ (exactly for the mean, S̃ − r·C̃ = e_S − r·e_C with r = μ − c; to
first order for the variance, whose nuisance mean is plugged in). h is kept when
|T(h)| is not in the α tail of |Σ wᵢ(h)·eᵢ|. The interval is the hull of the kept values
within the public range. Each hypothesis is tested at level α, so the truth is kept with
probability ≈ 1 − α: no union bound, no worst corner.

The noise distribution of the combination, with each eᵢ of scale sᵢ (output units) on a
grid of step gᵢ (one integer of the noised statistic):

* discrete Gaussian: Σ wᵢeᵢ is close to N(0, Σ wᵢ²sᵢ²); the tail is the normal one;
* discrete Laplace: the sum of independent Laplace(bᵢ), bᵢ = |wᵢ|sᵢ, has the tail
  P(|X| > t) = Σᵢ Aᵢ e^(−t/bᵢ), Aᵢ = Πⱼ≠ᵢ bᵢ²/(bᵢ² − bⱼ²) (partial fractions of the
  characteristic function Πᵢ 1/(1 + bᵢ²ω²)). Scales closer than 1 % are moved apart
  upwards first (a larger scale only widens: the law is more spread out);

and the continuity correction moves t down by Σ |wᵢ|gᵢ/2 (for the discrete Laplace,
P(|e| ≥ k) ≤ P(|Y| ≥ k − ½) exactly; for the discrete Gaussian it is the usual
approximation). PRIVACY: post-processing of noisy values and public scales only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np

from privacy.mechanisms import Family

#: Hypotheses tried on the public range before the ends are refined by bisection.
GRID = 65
#: Bisection steps per end: the grid step / 2^24, far below any interval's width.
STEPS = 24
#: Laplace scales within this factor of each other are moved apart (upwards).
SEPARATION = 1.01

Residual = Callable[[np.ndarray], tuple[np.ndarray, Sequence[np.ndarray]]]


def _laplace_tail(t: np.ndarray, scales: list[np.ndarray]) -> np.ndarray:
    """P(|Σ Laplace(bᵢ)| > t), elementwise; ``scales`` broadcast against ``t``."""
    b = np.abs(np.stack(np.broadcast_arrays(*scales, t)[:-1], axis=0).astype(float))
    b.sort(axis=0)
    # negligible parts dropped (a 1e-9 share of the spread cannot move a 95 % tail)
    b[b < 1e-9 * b[-1]] = 0.0
    for i in range(1, b.shape[0]):  # ascending: move each above the last kept one
        prev = b[i - 1] * SEPARATION
        np.copyto(b[i], prev, where=b[i] < prev)
    kept = b > 0
    inv = np.divide(1.0, b, out=np.zeros_like(b), where=kept)
    t = np.maximum(t, 0.0)
    total = np.zeros(b.shape[1:])
    for i in range(b.shape[0]):
        coef = np.ones(b.shape[1:])
        for j in range(b.shape[0]):
            if j != i:
                coef /= 1.0 - (b[j] * inv[i]) ** 2
        total += np.where(kept[i], coef * np.exp(-t * inv[i]), 0.0)
    return np.clip(total, 0.0, 1.0)


def _kept(h: np.ndarray, residual: Residual, scales: Sequence[float], steps: Sequence[float],
          family: Family, alpha: float, z: float) -> np.ndarray:
    """Whether each hypothesis in ``h`` survives the test at level alpha."""
    t, weights = residual(h)
    t = np.abs(t) - sum(np.abs(w) * (g / 2) for w, g in zip(weights, steps, strict=True))
    if family == "gaussian":
        var = sum(w * w * (sc * sc) for w, sc in zip(weights, scales, strict=True))
        return t <= z * np.sqrt(var)
    bs = [np.abs(w * sc) for w, sc in zip(weights, scales, strict=True)]
    if len(bs) == 2:  # a mean: the two-part closed form, without the general bookkeeping
        return _laplace2_tail(t, *bs) > alpha
    return _laplace_tail(t, bs) > alpha


def _laplace2_tail(t: np.ndarray, b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """P(|Laplace(b1) + Laplace(b2)| > t): (B²e^(−t/B) − b²e^(−t/b)) / (B² − b²), B > b
    moved apart as in :func:`_laplace_tail`, one part alone when the other is negligible."""
    big, small = np.maximum(b1, b2), np.minimum(b1, b2)
    small = np.where(small < 1e-9 * big, 0.0, small)
    big = np.maximum(big, small * SEPARATION)
    t = np.maximum(t, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        one = np.exp(-t / big)
        two = (big * big * one - small * small * np.exp(-t / np.where(small > 0, small, 1.0))) \
            / (big * big - small * small)
    return np.clip(np.where(small > 0, two, one), 0.0, 1.0)


def invert(residual: Residual, anchor: np.ndarray, lower: np.ndarray, upper: np.ndarray,
           scales: Sequence[float], steps: Sequence[float], family: Family, alpha: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the hull of the hypotheses in [lower, upper] that the test keeps.

    ``residual(h)`` maps an (n, k) array of hypotheses (row i: group i) to the residuals
    and the weights of each noise, broadcast to the same shape. ``anchor`` is each group's
    estimate (kept whenever its residual is 0), where the search for the ends starts;
    groups where nothing is kept get the whole [lower, upper] (nothing is known).
    """
    with np.errstate(all="ignore"):  # huge or degenerate noisy inputs: checked below
        lo_out, hi_out = _invert(residual, anchor, lower, upper, scales, steps, family, alpha)
    ok = np.isfinite(lo_out) & np.isfinite(hi_out) & (lo_out <= hi_out)
    return np.where(ok, lo_out, lower), np.where(ok, hi_out, upper)


def _invert(residual: Residual, anchor: np.ndarray, lower: np.ndarray, upper: np.ndarray,
            scales: Sequence[float], steps: Sequence[float], family: Family, alpha: float
            ) -> tuple[np.ndarray, np.ndarray]:
    n = anchor.shape[0]
    z = NormalDist().inv_cdf(1 - alpha / 2)
    grid = lower[:, None] + (upper - lower)[:, None] * np.linspace(0.0, 1.0, GRID)[None, :]
    anchor = np.clip(anchor, lower, upper)
    kept = _kept(np.concatenate([grid, anchor[:, None]], axis=1), residual, scales, steps,
                 family, alpha, z)
    kept_grid, kept_anchor = kept[:, :GRID], kept[:, GRID]
    rows = np.arange(n)
    inside, outside, at_end = [], [], []
    for side in (-1, 1):
        # the outermost kept grid point on this side of the anchor (else the anchor), and
        # the next grid point outwards: rejected by construction, or past the range's end
        mask = kept_grid & (grid > anchor[:, None] if side > 0 else grid < anchor[:, None])
        found = mask.any(axis=1)
        if side > 0:
            idx = GRID - 1 - np.argmax(mask[:, ::-1], axis=1)
            above = grid > anchor[:, None]
            nxt = np.where(found, idx + 1, np.where(above.any(axis=1), np.argmax(above, axis=1), GRID))
        else:
            idx = np.argmax(mask, axis=1)
            below = grid < anchor[:, None]
            nxt = np.where(found, idx - 1, np.where(below.any(axis=1),
                                                    GRID - 1 - np.argmax(below[:, ::-1], axis=1), -1))
        inside.append(np.where(found, grid[rows, idx], anchor))
        outside.append(grid[rows, np.clip(nxt, 0, GRID - 1)])
        at_end.append((nxt < 0) | (nxt >= GRID))
    a, b = np.stack(inside, axis=1), np.stack(outside, axis=1)  # (n, 2): lower, upper side
    for _ in range(STEPS):  # both ends of every group at once
        mid = (a + b) / 2
        ok = _kept(mid, residual, scales, steps, family, alpha, z)
        a, b = np.where(ok, mid, a), np.where(ok, b, mid)
    # b is on the rejected side of each end: the interval is the slightly wider one
    lo_out = np.where(at_end[0], lower, b[:, 0])
    hi_out = np.where(at_end[1], upper, b[:, 1])
    nothing = ~(kept_grid.any(axis=1) | kept_anchor)
    return np.where(nothing, lower, lo_out), np.where(nothing, upper, hi_out)


def mean_intervals(centre: float, sums: Sequence[float], counts: Sequence[float],
                   scales: tuple[float, float], steps: tuple[float, float], family: Family,
                   alpha: float, lower: float, upper: float) -> list[tuple[float, float]]:
    """Intervals of μ = c + S/C from noisy centred sums S̃ and counts C̃ (output units).

    Exact pivot: were r = μ − c the truth, S̃ − r·C̃ = e_S − r·e_C.
    """
    s, k = np.asarray(sums, float), np.asarray(counts, float)
    if s.size == 0:
        return []
    lo = np.full(s.shape, lower - centre)
    hi = np.full(s.shape, upper - centre)
    with np.errstate(all="ignore"):  # a count of 1e-300 overflows: the search clips it
        anchor = np.nan_to_num(np.where(k > 0, s / np.where(k > 0, k, 1.0), 0.0))

    def residual(r: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return s[:, None] - r * k[:, None], [np.ones_like(r), -r]

    a, b = invert(residual, anchor, lo, hi, scales, steps, family, alpha)
    return [(min(upper, max(lower, float(centre + x))), min(upper, max(lower, float(centre + y))))
            for x, y in zip(a, b, strict=True)]


def variance_intervals(sumsq: Sequence[float], sums: Sequence[float], counts: Sequence[float],
                       scales: tuple[float, float, float], steps: tuple[float, float, float],
                       family: Family, alpha: float, top: float, ddof: int
                       ) -> list[tuple[float, float]]:
    """Intervals of V = (Q − S²/C)/(C − d) from noisy centred Q̃, S̃, C̃ (output units).

    Pivot to first order, the centred mean m = S/C plugged in: were v the truth,
    Q̃ − S̃²/C̃ − v(C̃ − d) ≈ e_Q − 2m·e_S + (m² − v)·e_C.
    """
    q, s, k = (np.asarray(x, float) for x in (sumsq, sums, counts))
    if q.size == 0:
        return []
    kk = np.where(k > ddof, k, ddof + 1.0)
    with np.errstate(all="ignore"):  # huge sums overflow: the search clips the estimate
        m = s / kk
        estimate = np.nan_to_num((q - s * s / kk) / (kk - ddof))
    lo, hi = np.zeros(q.shape), np.full(q.shape, float(top))

    def residual(v: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        t = (q - s * s / kk)[:, None] - v * (kk - ddof)[:, None]
        mm = m[:, None]
        return t, [np.ones_like(v), -2 * mm + 0 * v, mm * mm - v]

    a, b = invert(residual, estimate, lo, hi, scales, steps, family, alpha)
    return [(float(x), float(y)) for x, y in zip(a, b, strict=True)]


__all__ = ["invert", "mean_intervals", "variance_intervals"]
