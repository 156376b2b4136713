"""privacy.quantiles: one noisy histogram, monotone quantiles, a band that covers."""

from __future__ import annotations

import random

import pytest
from sqlglot import exp

from privacy import release
from privacy.mechanisms import noisy_vector
from privacy.quantiles import (
    consistent_counts,
    cumulative_band,
    isotonic,
    quantile_interval,
    quantiles,
)
from query_guard.plan import Measurement, OutputColumn, QueryPlan


def test_isotonic_pools_violators():
    assert isotonic([1, 3, 2, 4]) == [1.0, 2.5, 2.5, 4.0]
    assert isotonic([3, 2, 1]) == [2.0, 2.0, 2.0]
    assert isotonic([]) == []


def test_consistent_counts_are_non_negative_and_keep_mass():
    counts = consistent_counts([5, -3, 2, 0, -1, 7])
    assert all(c >= 0 for c in counts)
    assert sum(counts) == pytest.approx(10, abs=1e-9)


def test_quantiles_monotone_for_unsorted_fractions():
    hist = [0] * 50 + [100] * 50
    q = quantiles(hist, 0.0, 100.0, [0.9, 0.1, 0.5])
    assert q[1] <= q[2] <= q[0]
    assert q[1] == pytest.approx(55.0, abs=1.0) and q[0] == pytest.approx(95.0, abs=1.0)


def test_empty_histogram_gives_the_midpoint():
    assert quantiles([0, 0, 0, 0], 0.0, 10.0, [0.5]) == [5.0]


def test_several_fractions_share_one_measurement():
    m = Measurement("m0", "quantile", {"hist": "h"}, max_partitions=1, max_rows_per_partition=1,
                    lower=0.0, upper=1.0, quantiles=(0.25, 0.5, 0.75), bins=16)
    p = QueryPlan(sql="", engine_query=exp.select("1"), datasets=("t",), group_keys=(),
                  measurements=(m,), outputs=tuple(OutputColumn(f"q{i}", "measure", "m0", index=i)
                                                   for i in range(3)))
    rel = release(p, {"__rows": [10], "h": [[(3, 10)]]}, epsilon=1.0)
    assert len(rel.mechanisms) == 1 and rel.epsilon <= 1.0


@pytest.mark.statistical
def test_quantile_band_covers_the_true_quantile():
    """400 noisy histograms (scale 2, 64 bins, 300 values): the 95% bracket holds ≥ 93%."""
    rng = random.Random(7)
    values = sorted(rng.gauss(50, 15) for _ in range(300))
    values = [min(99.999, max(0.0, v)) for v in values]
    bins = 64
    hist = [0] * bins
    for v in values:
        hist[int(v / 100 * bins)] += 1
    truth = values[len(values) // 2]  # the median's order statistic
    band = cumulative_band("laplace", 2.0, bins, 0.05)
    hits = 0
    for _ in range(400):
        noisy = noisy_vector(hist, "laplace", 2.0)
        lo, hi = quantile_interval(noisy, 0.0, 100.0, 0.5, band)
        hits += lo <= truth <= hi
    assert hits >= 372
