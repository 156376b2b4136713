"""privacy.release: the charge is OpenDP's own map; intervals cover; groups are sound."""

from __future__ import annotations

import opendp.prelude as dp
import pytest
from sqlglot import exp

from privacy import release
from privacy.mechanisms import laplace_vector, make_vector_discrete_laplace, select_partitions
from query_guard.plan import GroupKey, Measurement, OutputColumn, QueryPlan

DOMAIN = ("a", "b", "c")


PUBLIC_KEY = (GroupKey("k", "__g0", DOMAIN),)


def plan_of(measurements, outputs, keys=PUBLIC_KEY):
    return QueryPlan(sql="", engine_query=exp.select("1"), datasets=("t",), group_keys=tuple(keys),
                     measurements=tuple(measurements), outputs=tuple(outputs))


COUNT = Measurement("m0", "count", {"count": "__m0_count"}, max_partitions=1, max_rows_per_partition=1)
MEAN = Measurement("m1", "mean", {"sum": "__m1_sum", "count": "__m1_count"}, max_partitions=2,
                   max_rows_per_partition=5, lower=0.0, upper=100.0, fixed_point=1024, value_type="float")
EXACT = {"__g0": ["a", "c", "zzz"], "__rows": [10, 20, 5], "__m0_count": [10, 20, 5],
         "__m1_sum": [500 * 1024, 1000 * 1024, 1], "__m1_count": [10, 20, 5]}


def test_charge_equals_opendp_map_of_each_measurement():
    p = plan_of([COUNT, MEAN], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0"),
                                OutputColumn("avg", "measure", "m1")])
    rel = release(p, EXACT, epsilon=0.9)
    assert len(rel.mechanisms) == 3
    for rec in rel.mechanisms:
        assert rec.epsilon == make_vector_discrete_laplace(rec.scale).map(int(rec.sensitivity))
    assert rel.epsilon == pytest.approx(sum(r.epsilon for r in rel.mechanisms))
    assert rel.epsilon <= 0.9 + 1e-12


def test_sensitivity_is_l0_times_linf_times_bound():
    p = plan_of([MEAN], [OutputColumn("avg", "measure", "m1")])
    rel = release(p, EXACT, epsilon=1.0)
    sens = {r.statistic: r.sensitivity for r in rel.mechanisms}
    assert sens == {"count": 2 * 5, "sum": 2 * 5 * 100 * 1024}


def test_public_domain_releases_every_key_and_only_those():
    p = plan_of([COUNT], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0")])
    rel = release(p, EXACT, epsilon=1.0)
    assert [row[0] for row in rel.rows] == list(DOMAIN)  # "b" is empty but released; "zzz" never


def test_undeclared_keys_need_partition_selection_and_delta():
    p = plan_of([COUNT], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0")],
                keys=(GroupKey("k", "__g0", None),))
    exact = {"__g0": ["big", "tiny"], "__rows": [100_000, 1], "__m0_count": [100_000, 1]}
    rel = release(p, exact, epsilon=1.0, delta=1e-7)
    assert [row[0] for row in rel.rows] == ["big"]
    assert 0 < rel.delta <= 1e-7
    with pytest.raises(Exception, match="δ"):
        release(p, exact, epsilon=1.0, delta=0.0)


def test_laplace_vector_loss_is_the_map():
    out = laplace_vector([1, 2, 3], sensitivity=7, epsilon=0.3)
    assert out.epsilon == make_vector_discrete_laplace(out.scale).map(7) <= 0.3


def test_partition_selection_delta_from_opendp_map():
    sel = select_partitions({"x": 5000}, l0=2, linf=3, epsilon=0.5, delta=1e-8)
    assert sel.delta <= 1e-8
    dp.enable_features("contrib")
    from privacy.mechanisms import make_partition_threshold

    assert make_partition_threshold(sel.scale, sel.threshold).map((2, 6, 3)) == (sel.epsilon, sel.delta)


@pytest.mark.statistical
def test_count_intervals_cover_about_95_percent():
    """1,000 releases of one count at ε = 0.5: coverage within 93–97%."""
    p = plan_of([COUNT], [OutputColumn("n", "measure", "m0")], keys=())
    exact = {"__rows": [1000], "__m0_count": [1000]}
    hits = 0
    for _ in range(1000):
        rel = release(p, exact, epsilon=0.5)
        lo, hi = rel.intervals["n"][0]
        hits += lo <= 1000 <= hi
    assert 930 <= hits <= 985  # discrete Laplace accuracy is conservative (≥ 95%)
