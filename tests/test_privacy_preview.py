"""privacy.preview: cost and accuracy before running; ε for a target accuracy."""

from __future__ import annotations

import pytest
from sqlglot import exp

from privacy import calibrate, epsilon_for_accuracy, preview, release
from privacy.allocation import _calibrate
from privacy.errors import AccuracyError
from privacy.mechanisms import noise_variance
from query_guard.plan import GroupKey, Measurement, OutputColumn, QueryPlan

KEY = (GroupKey("k", "__g0", ("a", "b")),)
COUNT = Measurement("m0", "count", {"count": "c"}, max_partitions=1, max_rows_per_partition=3,
                    expression_sql="*")
SUM = Measurement("m1", "sum", {"sum": "s"}, max_partitions=1, max_rows_per_partition=1,
                  lower=0.0, upper=1000.0, fixed_point=1024, value_type="float")
MEAN = Measurement("m2", "mean", {"sum": "ms", "count": "c"}, max_partitions=1, max_rows_per_partition=1,
                   lower=0.0, upper=100.0)
PLAN = QueryPlan(sql="", engine_query=exp.select("1"), datasets=("t",), group_keys=KEY,
                 measurements=(COUNT, SUM, MEAN),
                 outputs=(OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0"),
                          OutputColumn("total", "measure", "m1"), OutputColumn("avg", "measure", "m2")))
EXACT = {"__g0": ["a", "b"], "__rows": [500, 400], "c": [500, 400], "s": [10_000 * 1024, 8_000 * 1024],
         "ms": [500 * 40, 400 * 40]}


def test_preview_half_widths_are_the_release_intervals():
    pv = preview(PLAN, epsilon=0.7, confidence=0.9)
    rel = release(PLAN, EXACT, epsilon=0.7, confidence=0.9)
    cols = {c.column: c for c in pv.columns}
    for name in ("n", "total"):
        lo, hi = rel.intervals[name][0]
        # Issue 13: a released interval reaching below 0 for a count or a sum of non-negative
        # values is clipped at 0 (public bounds), so it is at most the preview's width.
        if lo > 0:
            assert cols[name].half_width == pytest.approx((hi - lo) / 2, rel=1e-12)
        else:
            assert (hi - lo) / 2 <= cols[name].half_width * (1 + 1e-12)
    assert pv.charge == rel.charge  # the cost is known before running
    assert cols["avg"].half_width is None and set(cols["avg"].parts) == {"sum", "count"}


def test_mean_preview_with_expected_rows_bounds_the_interval():
    pv = preview(PLAN, epsilon=1.0, expected_rows=450)
    rel = release(PLAN, EXACT, epsilon=1.0)
    bound = next(c for c in pv.columns if c.column == "avg").half_width
    for lo, hi in rel.intervals["avg"]:
        assert (hi - lo) / 2 <= bound * 1.2  # worst case at n = 450, groups of 400 and 500


@pytest.mark.parametrize("column,half_width", [("n", 50.0), ("total", 5_000.0), ("n", 3.0)])
def test_epsilon_for_accuracy_is_the_smallest(column, half_width):
    eps = epsilon_for_accuracy(PLAN, column, half_width, 0.95)
    got = next(c for c in preview(PLAN, epsilon=eps).columns if c.column == column).half_width
    assert got <= half_width
    worse = next(c for c in preview(PLAN, epsilon=eps * (1 - 1e-4)).columns if c.column == column)
    assert worse.half_width > half_width * (1 - 1e-3)


def test_target_preview_uses_the_found_epsilon():
    pv = preview(PLAN, target=("n", 40.0, 0.9))
    assert pv.confidence == 0.9 and pv.epsilon <= epsilon_for_accuracy(PLAN, "n", 40.0, 0.9)
    assert next(c for c in pv.columns if c.column == "n").half_width <= 40.0


def test_accuracy_target_errors_are_precise():
    with pytest.raises(AccuracyError, match="no output column"):
        epsilon_for_accuracy(PLAN, "nope", 1.0)
    with pytest.raises(AccuracyError, match="group's size"):
        epsilon_for_accuracy(PLAN, "avg", 1.0)
    with pytest.raises(AccuracyError) as err:  # ± 0.5 on a count needs far more than ε 0.01
        epsilon_for_accuracy(PLAN, "n", 0.5, max_epsilon=0.01)
    assert err.value.code == "accuracy_unreachable"
    # a count's interval is whole units (⌈a⌉ − 1): ± 0 is reachable, at a large ε
    assert epsilon_for_accuracy(PLAN, "n", 1e-9) > 1
    assert epsilon_for_accuracy(PLAN, "avg", 5.0, expected_rows=1000) > 0


def test_mean_split_minimises_the_worst_case_error():
    """Derivation check: no other split of the mean's share has a lower worst-case
    delta-method variance Var(S) + r²·Var(C) than the one calibrated."""
    p = QueryPlan(sql="", engine_query=exp.select("1"), datasets=("t",), group_keys=(),
                  measurements=(MEAN,), outputs=(OutputColumn("avg", "measure", "m2"),))
    noise = _calibrate(p, 1.0, 0.0, "laplace")
    by = {s.stat: s for s in noise.specs}
    r = 50.0

    def worst(eps_sum: float) -> float:
        eps_cnt = 1.0 - eps_sum
        return noise_variance("laplace", 50 / eps_sum) + r * r * noise_variance("laplace", 1 / eps_cnt)

    chosen = worst(by["csum"].epsilon)
    assert by["csum"].epsilon == pytest.approx(0.5, rel=1e-6)
    assert all(worst(e / 100) >= chosen * (1 - 1e-9) for e in range(5, 96))


def test_calibration_is_deterministic_and_data_free():
    assert calibrate(PLAN, 0.3) == calibrate(PLAN, 0.3)
