"""privacy.release: the charge is OpenDP's own map; intervals cover; groups are sound."""

from __future__ import annotations

import math

import opendp.prelude as dp
import pytest
from sqlglot import exp

from privacy import calibrate, release
from privacy.mechanisms import (
    laplace_vector,
    make_gaussian_partition_threshold,
    make_partition_threshold,
    make_pure_as_zcdp,
    make_vector_discrete_gaussian,
    make_vector_discrete_laplace,
    select_partitions,
    threshold_d_in,
)
from query_guard.plan import GroupKey, Measurement, OutputColumn, QueryPlan

DOMAIN = ("a", "b", "c")
PUBLIC_KEY = (GroupKey("k", "__g0", DOMAIN),)
PRIVATE_KEY = (GroupKey("k", "__g0", None),)


def plan_of(measurements, outputs, keys=PUBLIC_KEY, **kw):
    return QueryPlan(sql="", engine_query=exp.select("1"), datasets=("t",), group_keys=tuple(keys),
                     measurements=tuple(measurements), outputs=tuple(outputs), **kw)


COUNT = Measurement("m0", "count", {"count": "__m0_count"}, max_partitions=1, max_rows_per_partition=1,
                    expression_sql="*")
MEAN = Measurement("m1", "mean", {"sum": "__m1_sum", "count": "__m1_count"}, max_partitions=2,
                   max_rows_per_partition=5, lower=0.0, upper=100.0, fixed_point=1024, value_type="float")
SUM = Measurement("m2", "sum", {"sum": "__m2_sum"}, max_partitions=2, max_rows_per_partition=5,
                  lower=-10.0, upper=100.0, fixed_point=1024, value_type="float")
EXACT = {"__g0": ["a", "c", "zzz"], "__rows": [10, 20, 5], "__m0_count": [10, 20, 5],
         "__m1_sum": [500 * 1024, 1000 * 1024, 1], "__m1_count": [10, 20, 5],
         "__m2_sum": [500 * 1024, 1000 * 1024, 1]}


def _map(rec):
    """Re-derive a record's loss from a freshly built OpenDP measurement."""
    if rec.mechanism == "discrete_laplace":
        meas = make_vector_discrete_laplace(rec.scale)
        return meas.map(int(rec.sensitivity)), make_pure_as_zcdp(meas).map(int(rec.sensitivity))
    if rec.mechanism == "discrete_gaussian":
        return None, make_vector_discrete_gaussian(rec.scale).map(float(rec.sensitivity))
    raise AssertionError(rec.mechanism)


def test_charge_equals_opendp_map_of_each_measurement():
    p = plan_of([COUNT, MEAN, SUM], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0"),
                                     OutputColumn("avg", "measure", "m1"), OutputColumn("s", "measure", "m2")])
    rel = release(p, EXACT, epsilon=0.9)
    assert len(rel.mechanisms) == 4 and rel.family == "laplace"
    for rec in rel.mechanisms:
        assert (rec.epsilon, rec.rho) == _map(rec)
    # Basic composition of the maps for ε; zCDP composition (ε²/2 each) for ρ.
    assert rel.epsilon == sum(r.epsilon for r in rel.mechanisms) <= 0.9
    assert rel.rho == pytest.approx(sum(r.rho for r in rel.mechanisms), rel=1e-15)
    assert rel.delta == 0.0
    # Data-independent: the same charge was known before the data was seen.
    assert rel.charge == calibrate(p, 0.9).charge


def test_gaussian_charge_is_the_zcdp_map_converted_by_opendp():
    wide = Measurement("m0", "count", {"count": "__m0_count"}, max_partitions=100, max_rows_per_partition=1)
    p = plan_of([wide], [OutputColumn("n", "measure", "m0")])
    rel = release(p, {"__g0": ["a"], "__rows": [5], "__m0_count": [5]}, epsilon=1.0, delta=1e-7)
    assert rel.family == "gaussian"  # L2 = 10 ≪ L1 = 100: the Gaussian is more accurate
    (rec,) = rel.mechanisms
    assert rec.sensitivity == pytest.approx(math.sqrt(100)) and rec.rho == _map(rec)[1] == rel.rho
    proxy = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=1.0)
    converted = dp.c.make_zCDP_to_approxDP(proxy).map(math.sqrt(2 * rel.rho)).epsilon(1e-7)
    assert rel.epsilon == pytest.approx(converted, rel=1e-9) and rel.epsilon <= 1.0
    assert rel.delta == 1e-7


def test_no_delta_or_pure_means_laplace_only():
    wide = Measurement("m0", "count", {"count": "__m0_count"}, max_partitions=100, max_rows_per_partition=1)
    p = plan_of([wide], [OutputColumn("n", "measure", "m0")])
    assert calibrate(p, 1.0, 0.0).family == "laplace"
    assert calibrate(p, 1.0, 1e-7, pure=True).family == "laplace"
    with pytest.raises(Exception, match="pure"):
        calibrate(p, 1.0, 1e-7, family="gaussian", pure=True)


def test_sensitivity_is_l0_times_linf_times_bound():
    p = plan_of([MEAN, SUM], [OutputColumn("avg", "measure", "m1"), OutputColumn("s", "measure", "m2")])
    rel = release(p, EXACT, epsilon=1.0)
    sens = {(r.measurement, r.statistic): r.sensitivity for r in rel.mechanisms}
    # A sum moves by max(|lo|, |hi|) per row; a mean's sum is centred (half the range).
    assert sens == {("m1", "count"): 2 * 5, ("m1", "csum"): 2 * 5 * 50 * 1024,
                    ("m2", "sum"): 2 * 5 * 100 * 1024}


def test_gaussian_sensitivity_is_l2():
    p = plan_of([SUM], [OutputColumn("s", "measure", "m2")])
    noise = calibrate(p, 1.0, 1e-6, family="gaussian")
    (spec,) = noise.specs
    assert spec.sensitivity == pytest.approx(math.sqrt(2) * 5 * 100 * 1024)


def test_public_domain_releases_every_key_and_only_those():
    p = plan_of([COUNT], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0")])
    rel = release(p, EXACT, epsilon=1.0)
    assert [row[0] for row in rel.rows] == list(DOMAIN)  # "b" is empty but released; "zzz" never


def test_undeclared_keys_need_partition_selection_and_delta():
    p = plan_of([COUNT], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0")],
                keys=PRIVATE_KEY)
    exact = {"__g0": ["big", "tiny"], "__rows": [100_000, 1], "__m0_count": [100_000, 1]}
    rel = release(p, exact, epsilon=1.0, delta=1e-7)
    assert [row[0] for row in rel.rows] == ["big"]
    assert 0 < rel.delta <= 1e-7
    with pytest.raises(Exception, match="δ"):
        release(p, exact, epsilon=1.0, delta=0.0)


def test_count_star_comes_from_partition_selection_without_a_second_noise():
    p = plan_of([COUNT], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0")],
                keys=PRIVATE_KEY)
    exact = {"__g0": ["big"], "__rows": [100_000], "__m0_count": [100_000]}
    rel = release(p, exact, epsilon=1.0, delta=1e-7)
    (rec,) = rel.mechanisms
    assert rec.mechanism == "laplace_threshold"
    d_in = threshold_d_in(1, 1, "laplace")
    assert make_partition_threshold(rec.scale, rec.threshold).map(d_in) == (rel.epsilon, rel.delta)
    assert rel.epsilon <= 1.0 and rel.rho is None  # OpenDP gives no zCDP view of it
    assert "partition selection" in rel.methods["n"]
    assert abs(rel.rows[0][1] - 100_000) < 200


def test_gaussian_partition_selection_map():
    wide = Measurement("m0", "count", {"count": "__m0_count"}, max_partitions=50, max_rows_per_partition=1,
                       expression_sql="*")
    p = plan_of([wide], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0")],
                keys=PRIVATE_KEY, max_partitions=50)
    rel = release(p, {"__g0": ["x"], "__rows": [10_000], "__m0_count": [10_000]}, epsilon=1.0,
                  delta=1e-7, family="gaussian")
    (rec,) = rel.mechanisms
    rho, dlt = make_gaussian_partition_threshold(rec.scale, rec.threshold).map(threshold_d_in(50, 1, "gaussian"))
    assert (rel.rho, rel.rho_delta) == (rho, dlt) and rel.delta <= 1e-7 and rel.epsilon <= 1.0


def test_laplace_vector_loss_is_the_map():
    out = laplace_vector([1, 2, 3], sensitivity=7, epsilon=0.3)
    assert out.epsilon == make_vector_discrete_laplace(out.scale).map(7) <= 0.3


def test_partition_selection_delta_from_opendp_map():
    sel = select_partitions({"x": 5000}, l0=2, linf=3, epsilon=0.5, delta=1e-8)
    assert sel.delta <= 1e-8
    assert make_partition_threshold(sel.scale, sel.threshold).map((2, 6, 3)) == (sel.epsilon, sel.delta)


def test_mean_variance_and_quantiles_near_truth_for_large_groups():
    n, total, squares = 100_000, 4_000_000, 200_000_000  # mean 40, variance ≈ 400
    var = Measurement("m0", "variance", {"sum": "s", "sumsq": "q", "count": "c"}, max_partitions=1,
                      max_rows_per_partition=1, lower=0.0, upper=100.0)
    mean = Measurement("m1", "mean", {"sum": "s", "count": "c"}, max_partitions=1,
                       max_rows_per_partition=1, lower=0.0, upper=100.0)
    hist = Measurement("m2", "quantile", {"hist": "h"}, max_partitions=1, max_rows_per_partition=1,
                       lower=0.0, upper=100.0, quantiles=(0.75, 0.25, 0.5), bins=100)
    uniform = [(b, n // 100) for b in range(100)]
    p = plan_of([var, mean, hist], [OutputColumn("v", "measure", "m0"), OutputColumn("m", "measure", "m1"),
                                    *(OutputColumn(f"q{i}", "measure", "m2", index=i) for i in range(3))],
                keys=())
    # Five intervals each checked once: at 95 % the test would fail about one run in four, so ask for
    # 99.999 % intervals (the point estimates do not depend on the confidence).
    rel = release(p, {"__rows": [n], "s": [total], "q": [squares], "c": [n], "h": [uniform]}, epsilon=1.0,
                  confidence=0.99999)
    v, m, q75, q25, q50 = rel.rows[0]
    assert v == pytest.approx((squares - total**2 / n) / (n - 1), rel=0.02)
    assert m == pytest.approx(40, abs=0.1)
    assert q25 <= q50 <= q75 and (q25, q50, q75) == pytest.approx((25, 50, 75), abs=1.0)
    for c, truth in (("v", 400.004), ("m", 40.0), ("q1", 25.0), ("q2", 50.0), ("q0", 75.0)):
        lo, hi = rel.intervals[c][0]
        assert lo <= truth <= hi, c


def test_population_variance_uses_ddof_zero():
    var = Measurement("m0", "variance", {"sum": "s", "sumsq": "q", "count": "c"}, max_partitions=1,
                      max_rows_per_partition=1, lower=0.0, upper=10.0, ddof=0)
    p = plan_of([var], [OutputColumn("v", "measure", "m0")], keys=())
    rel = release(p, {"__rows": [2], "s": [2], "q": [2], "c": [2]}, epsilon=1e6)
    assert rel.rows[0][0] == pytest.approx(0.0, abs=1e-3)  # values {1, 1}: VAR_POP = 0


def test_derived_columns_use_alpha_over_k_per_part():
    p = plan_of([SUM, COUNT], [OutputColumn("r", "derived", expression=exp.column("m2") / exp.column("m0"))],
                keys=())
    rel = release(p, {"__rows": [1000], "__m2_sum": [1000 * 50 * 1024], "__m0_count": [1000]}, epsilon=1.0)
    lo, hi = rel.intervals["r"][0]
    assert lo <= rel.rows[0][0] <= hi and "α/2" in rel.methods["r"]


@pytest.mark.statistical
def test_count_intervals_cover_about_95_percent():
    """4,000 releases of one count at ε = 0.5: coverage within 93–97 % (±5.8 binomial sd
    around 95 %, so a false failure has probability < 1e-8)."""
    p = plan_of([COUNT], [OutputColumn("n", "measure", "m0")], keys=())
    exact = {"__rows": [1000], "__m0_count": [1000]}
    hits = 0
    for _ in range(4000):
        rel = release(p, exact, epsilon=0.5)
        lo, hi = rel.intervals["n"][0]
        hits += lo <= 1000 <= hi
    assert 3720 <= hits <= 3880, hits
