"""privacy.inversion: the tail it tests with, and intervals that are total and sane.

Coverage itself is measured in tests/test_coverage.py; here: the Laplace-sum tail agrees
with a numerical convolution, and for any noisy input (negative or zero counts, huge sums)
the intervals are finite, ordered, inside the public range and hold the released figure.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.inversion import _laplace_tail, mean_intervals, variance_intervals


def _convolved_tail(scales: list[float], t: float) -> float:
    """P(|Σ Laplace(bᵢ)| > t) by numerical convolution of the densities on a fine grid."""
    step = min(scales) / 200
    span = 40 * max(scales) * len(scales)
    x = np.arange(-span, span + step / 2, step)
    spectrum = np.ones(2 * len(x) - 1, dtype=complex)
    for b in scales:
        spectrum = spectrum * np.fft.fft(np.exp(-np.abs(x) / b) / (2 * b) * step, 2 * len(x) - 1)
    full = np.real(np.fft.ifft(spectrum))
    # the sum of len(scales) centred grids is centred at (len − 1)·(−span) offset: realign
    start = (len(scales) - 1) * (len(x) // 2)
    density = full[start:start + len(x)] if len(scales) > 1 else full[:len(x)]
    return float(density[np.abs(x) > t].sum())


@pytest.mark.parametrize("scales", [[1.0], [1.0, 2.0], [3.0, 3.0], [1.0, 1.5, 4.0], [2.0, 2.0, 2.0]])
@pytest.mark.parametrize("t", [0.5, 3.0, 8.0])
def test_laplace_sum_tail_matches_a_numerical_convolution(scales, t):
    exact = _convolved_tail(scales, t)
    ours = float(_laplace_tail(np.array([t]), [np.array([b]) for b in scales])[0])
    # scales closer than 1 % are moved apart upwards: never below, at most a little above
    assert ours >= exact - 2e-3
    assert ours <= exact * 1.06 + 2e-3


finite = st.floats(-1e12, 1e12, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(s=finite, k=st.floats(-50, 1e9, allow_nan=False), family=st.sampled_from(["laplace", "gaussian"]),
       lo=st.floats(-1e6, 1e6), width=st.floats(1e-3, 1e8))
def test_mean_intervals_are_total_and_inside_the_bounds(s, k, family, lo, width):
    hi = lo + width
    c = (lo + hi) / 2
    (a, b), = mean_intervals(c, [s], [k], (50.0, 2.0), (1 / 1024, 1.0), family, 0.05, lo, hi)
    assert math.isfinite(a) and math.isfinite(b)
    assert lo - 1e-9 * abs(lo) <= a <= b <= hi + 1e-9 * abs(hi)
    if k >= 1:
        point = min(hi, max(lo, c + s / k))
        assert a - 1e-9 * width <= point <= b + 1e-9 * width


@settings(max_examples=150, deadline=None)
@given(q=finite, s=finite, k=st.floats(-50, 1e9, allow_nan=False),
       family=st.sampled_from(["laplace", "gaussian"]), top=st.floats(1e-3, 1e12))
def test_variance_intervals_are_total_and_inside_the_bounds(q, s, k, family, top):
    (a, b), = variance_intervals([q], [s], [k], (5000.0, 50.0, 2.0), (1 / 1024, 1 / 1024, 1.0),
                                 family, 0.05, top, 1)
    assert math.isfinite(a) and math.isfinite(b)
    assert 0.0 <= a <= b <= top * (1 + 1e-12)


def test_many_groups_are_computed_together():
    """One call for all groups (numpy): 10,000 groups in well under a second."""
    import time

    rng = np.random.default_rng(7)
    s, k = rng.normal(100, 30, 10_000), rng.integers(50, 500, 10_000).astype(float)
    start = time.perf_counter()
    out = mean_intervals(50.0, s, k, (60.0, 2.0), (1 / 1024, 1.0), "laplace", 0.05, 0.0, 100.0)
    assert len(out) == 10_000
    assert time.perf_counter() - start < 3.0
