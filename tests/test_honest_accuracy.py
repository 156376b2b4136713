"""Issue 13, honest accuracy: figures and intervals inside what the public bounds allow,
"not informative" flags, the note on what intervals cover, and a confidence change on a
cached release answered with the same noise and new intervals, free."""

from __future__ import annotations

import json
import math
import re

import pytest
from sqlglot import exp

from privacy import not_informative, reinterval, release
from privacy.constraints import (
    NOT_INFORMATIVE_SHARE,
    constrain_intervals,
    constrain_values,
    public_range,
)
from query_guard.plan import GroupKey, Measurement, OutputColumn, QueryPlan
from sandbox.service.accuracy import ACCURACY_NOTE, STATE, with_confidence
from sandbox.service.pipeline import QueryRequest
from sandbox.store.users import find_user
from tests.conftest import bearer

DOMAIN = tuple(f"g{i}" for i in range(20))
KEY = (GroupKey("k", "__g0", DOMAIN),)


def plan_of(measurements, outputs, keys=KEY):
    return QueryPlan(sql="", engine_query=exp.select("1"), datasets=("t",), group_keys=tuple(keys),
                     measurements=tuple(measurements), outputs=tuple(outputs))


COUNT = Measurement("m0", "count", {"count": "c"}, max_partitions=1, max_rows_per_partition=1)
SUM = Measurement("m1", "sum", {"sum": "s"}, max_partitions=1, max_rows_per_partition=1,
                  lower=0.0, upper=100.0, fixed_point=1, value_type="int")
MEAN = Measurement("m2", "mean", {"sum": "s", "count": "c"}, max_partitions=1, max_rows_per_partition=1,
                   lower=0.0, upper=5000.0, fixed_point=1, value_type="float")
# Almost empty groups at a small ε: the raw noisy figures fall outside what is public.
SPARSE = {"__g0": list(DOMAIN), "__rows": [1] * 20, "c": [1] * 20, "s": [50] * 20}


def _sparse_release(seed_eps: float = 0.05):
    p = plan_of([COUNT, SUM, MEAN], [OutputColumn("k", "group", "__g0"), OutputColumn("n", "measure", "m0"),
                                      OutputColumn("total", "measure", "m1"), OutputColumn("avg", "measure", "m2")])
    return p, release(p, SPARSE, epsilon=seed_eps)


# -- post-processing respects what is public -------------------------------------------------------
@pytest.mark.parametrize("trial", range(5))
def test_counts_and_sums_of_non_negative_values_never_negative(trial):
    _p, rel = _sparse_release()
    for row in rel.rows:
        assert row[1] >= 0 and row[2] >= 0
    for c in ("n", "total"):
        for lo, hi in rel.intervals[c]:
            assert 0 <= lo <= hi


@pytest.mark.parametrize("trial", range(5))
def test_means_and_their_intervals_inside_the_bounds(trial):
    _p, rel = _sparse_release()
    for row, (lo, hi) in zip(rel.rows, rel.intervals["avg"], strict=True):
        assert 0 <= row[3] <= 5000 and 0 <= lo <= hi <= 5000


def test_public_ranges_follow_the_bounds():
    assert public_range(COUNT) == (0.0, None)
    assert public_range(SUM) == (0.0, None)
    assert public_range(Measurement("m", "sum", {}, 1, 1, -100.0, -1.0)) == (None, 0.0)
    assert public_range(Measurement("m", "sum", {}, 1, 1, -1.0, 1.0)) == (None, None)
    assert public_range(MEAN) == (0.0, 5000.0)
    assert public_range(Measurement("m", "stddev", {}, 1, 1, 0.0, 10.0)) == (0.0, 5.0)


def test_quantiles_clipped_and_monotone_values_and_intervals():
    q = Measurement("m0", "quantile", {"hist": "h"}, 1, 1, 0.0, 100.0, quantiles=(0.9, 0.1, 0.5), bins=10)
    # fractions 0.9, 0.1, 0.5 → after: q(0.1) ≤ q(0.5) ≤ q(0.9), all in [0, 100]
    assert constrain_values(q, [[120.0, -5.0, 30.0], [10.0, 40.0, 20.0]]) == [[100.0, 0.0, 30.0],
                                                                             [40.0, 40.0, 40.0]]
    ivs = constrain_intervals(q, [[(50.0, 130.0), (-10.0, 60.0), (20.0, 40.0)]])[0]
    assert ivs == [(50.0, 100.0), (0.0, 40.0), (20.0, 40.0)]
    for lo, hi in ivs:
        assert 0 <= lo <= hi <= 100


def test_separate_quantile_calls_on_one_value_never_cross():
    """QUANTILE_CONT(x, 0.75) and QUANTILE_CONT(x, 0.25) in one query: two histograms, two
    noises; at a small ε their figures would cross, the release keeps them in order."""
    def q(mid, f):
        return Measurement(mid, "quantile", {"hist": f"h{mid}"}, 1, 1, 0.0, 100.0, quantiles=(f,),
                           bins=16, expression_sql="x", dataset="t")

    p = plan_of([q("m0", 0.75), q("m1", 0.25)],
                [OutputColumn("k", "group", "__g0"), OutputColumn("p75", "measure", "m0"),
                 OutputColumn("p25", "measure", "m1")])
    hist = {i: 2 for i in range(16)}  # 32 rows spread evenly
    exact = {"__g0": list(DOMAIN), "__rows": [32] * 20, "hm0": [hist] * 20, "hm1": [hist] * 20}
    crossed_raw = 0
    for _ in range(10):
        rel = release(p, exact, epsilon=0.05)
        for row in rel.rows:
            assert row[2] <= row[1], row
            crossed_raw += row[2] == row[1]
    assert crossed_raw > 0  # at ε 0.05 the raw figures did cross, and were tied instead


def test_post_processing_is_total_on_anything():
    weird = [None, math.nan, math.inf, "x", True, [1, 2, 3], (1,), 7]
    for m in (COUNT, SUM, MEAN, Measurement("m0", "quantile", {}, 1, 1, 0.0, 1.0, quantiles=(0.5,), bins=4)):
        assert len(constrain_values(m, weird)) == len(weird)
        assert len(constrain_intervals(m, weird)) == len(weird)
    for iv in weird:
        assert not_informative(iv, (0, 1)) in (True, False)
    assert not_informative((0, 1), "nonsense") is True


# -- not informative -------------------------------------------------------------------------------
def test_not_informative_rule():
    assert NOT_INFORMATIVE_SHARE == 0.5
    assert not_informative((0.0, 6e7), (0.0, 1e8)) and not not_informative((2e4, 4e4), (0.0, 1e8))
    assert not_informative((0.0, 12.0), (0.0, None)) and not not_informative((980.0, 1020.0), (0.0, None))
    assert not_informative((-3.0, 5.0), (None, None)) and not not_informative((3.0, 5.0), (None, None))
    assert not_informative(None, (0.0, 1.0)) and not_informative((None, 3.0), (0.0, None))


# -- the service: API shape, note, cache at another confidence -------------------------------------
@pytest.fixture
def sb(demo):
    return demo[0]


@pytest.fixture
def researcher(sb):
    return find_user(sb.conn(), "researcher")


def _spent(sb, researcher, aid):
    return sb.budget(researcher, aid)["epsilon"]["spent"]


def test_response_flags_a_wide_interval_and_not_a_narrow_one(sb, researcher, demo):
    aid = demo[1]["researcher"]["approval_id"]
    wide = sb.run_query(researcher, QueryRequest(aid, "SELECT MEDIAN(income) AS m FROM residents", 0.01))
    acc = wide["accuracy"]["m"]
    assert acc["public_range"] == [0.0, 500000.0] and acc["not_informative"] == [True]
    lo, hi = acc["intervals"][0]
    assert hi - lo >= 0.5 * 500000
    narrow = sb.run_query(researcher, QueryRequest(aid, "SELECT district, COUNT(*) AS n FROM residents "
                                                        "GROUP BY district", 1.0))
    flags = narrow["accuracy"]["n"]["not_informative"]
    assert len(flags) == len(narrow["rows"]) and not any(flags)
    assert narrow["accuracy"]["n"]["public_range"] == [0.0, None]
    for r in (wide, narrow):
        assert r["accuracy_note"] == ACCURACY_NOTE and "does not cover the bias that bounding" in ACCURACY_NOTE
        assert "bounding" in r["accuracy_note"] and STATE not in r


def test_cached_confidence_change_same_values_new_intervals_no_charge(sb, researcher, demo):
    aid = demo[1]["researcher"]["approval_id"]
    sql = ("SELECT district, COUNT(*) AS n, AVG(income) AS avg_income, SUM(income) / COUNT(*) AS ratio "
           "FROM residents GROUP BY district HAVING COUNT(*) > 10 ORDER BY n DESC LIMIT 5")
    first = sb.run_query(researcher, QueryRequest(aid, sql, 0.3, 0.95))
    assert not first["cached"]
    spent = _spent(sb, researcher, aid)
    ledger_rows = sb.conn().execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    audit_rows = sb.conn().execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0]
    other = sb.run_query(researcher, QueryRequest(aid, sql, 0.3, 0.9))
    assert other["cached"] and other["epsilon_spent"] == 0 and other["query_id"] == first["query_id"]
    assert other["rows"] == first["rows"] and other["receipt"] == first["receipt"]
    assert _spent(sb, researcher, aid) == spent
    assert sb.conn().execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == ledger_rows
    assert sb.conn().execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0] == audit_rows
    for c in ("n", "avg_income", "ratio"):
        a95, a90 = first["accuracy"][c], other["accuracy"][c]
        assert a90["confidence"] == 0.9 and a95["confidence"] == 0.95
        for (lo95, hi95), (lo90, hi90) in zip(a95["intervals"], a90["intervals"], strict=True):
            assert lo95 <= lo90 <= hi90 <= hi95  # narrower at a lower confidence, same value inside
        assert a90["intervals"] != a95["intervals"]
    back = sb.run_query(researcher, QueryRequest(aid, sql, 0.3, 0.95))
    assert back["accuracy"] == first["accuracy"]  # recomputed from the state: identical
    repeats = sb.conn().execute("SELECT COUNT(*) FROM query_repeats WHERE query_id = ?",
                                (first["query_id"],)).fetchone()[0]
    assert repeats == 2


def test_the_state_recomputes_the_stored_intervals_exactly(sb, researcher, demo):
    aid = demo[1]["researcher"]["approval_id"]
    sql = "SELECT sex, QUANTILE_CONT(age, 0.25) AS q1, MEDIAN(age) AS q2 FROM residents GROUP BY sex"
    first = sb.run_query(researcher, QueryRequest(aid, sql, 0.5, 0.95))
    stored = json.loads(sb.conn().execute("SELECT response_json FROM queries WHERE id = ?",
                                          (first["query_id"],)).fetchone()[0])
    state = stored[STATE]
    full = reinterval(state, 0.95)
    for c in ("q1", "q2"):
        assert [list(full[c][r]) for r in state["order"]] == first["accuracy"][c]["intervals"]
    for row in first["rows"]:  # inside the bounds (monotone only within one measurement: see
        assert 0 <= row[1] <= 100 and 0 <= row[2] <= 100  # test_quantiles_clipped_and_monotone…)
    assert with_confidence(stored, 0.95) == {k: v for k, v in stored.items() if k != STATE}


def test_a_release_without_state_keeps_its_intervals_with_a_note(sb, researcher, demo):
    aid = demo[1]["researcher"]["approval_id"]
    sql = "SELECT COUNT(*) AS n FROM residents"
    first = sb.run_query(researcher, QueryRequest(aid, sql, 0.3, 0.95))
    row = sb.conn().execute("SELECT response_json FROM queries WHERE id = ?", (first["query_id"],)).fetchone()
    stored = json.loads(row[0])
    stored[STATE] = None  # too large to keep, or released before issue 13
    out = with_confidence(stored, 0.9)
    assert out["accuracy"] == first["accuracy"] and "95% confidence" in out["notes"][-1]


def test_api_shape_and_cached_confidence_over_http(client, creds):
    h = bearer(creds["researcher"]["token"])
    body = {"approval_id": creds["researcher"]["approval_id"], "epsilon": 0.2,
            "sql": "SELECT district, AVG(age) AS a FROM residents GROUP BY district"}
    first = client.post("/api/v1/queries", json={**body, "confidence": 0.95}, headers=h).get_json()
    acc = first["accuracy"]["a"]
    assert set(acc) >= {"confidence", "method", "intervals", "public_range", "not_informative"}
    assert first["accuracy_note"] == ACCURACY_NOTE and STATE not in first
    again = client.post("/api/v1/queries", json={**body, "confidence": 0.99}, headers=h).get_json()
    assert again["cached"] and again["epsilon_spent"] == 0 and again["rows"] == first["rows"]
    assert again["accuracy"]["a"]["confidence"] == 0.99 and STATE not in again


# -- the console ----------------------------------------------------------------------------------
@pytest.mark.parametrize("lang, badge", [("en", "not informative"), ("zh-CN", "信息量不足")])
def test_console_shows_lower_upper_badge_and_note(demo, lang, badge):
    from sandbox.web import create_app
    from tests.test_console import client_for, post, text

    sb, creds = demo
    app = create_app(sb, {"TESTING": True})
    c = client_for(app, "researcher", lang=lang)
    aid = creds["researcher"]["approval_id"]
    resp = post(c, "/query", {"sql": "SELECT district, MEDIAN(income) AS m FROM residents GROUP BY district",
                              "approval_id": str(aid), "epsilon": "0.01", "confidence": "0.95"},
                page=f"/query?approval={aid}")
    assert resp.status_code == 303
    page = text(c.get(resp.headers["Location"]))
    assert re.search(r'<span class="acc"[^>]*>\[[-0-9.,e+]+, [-0-9.,e+]+\]</span>', page)
    assert "± " not in page.split('id="result"')[1]
    assert 'class="badge warn not-informative"' in page and badge in page
    assert 'id="interval-note"' in page
    # the same query at another confidence: cached, free, the page shows the new level
    again = post(c, "/query", {"sql": "SELECT district, MEDIAN(income) AS m FROM residents GROUP BY district",
                               "approval_id": str(aid), "epsilon": "0.01", "confidence": "0.9"},
                 page=f"/query?approval={aid}")
    location = again.headers["Location"]
    assert "cached=1" in location and "confidence=0.9" in location
    page = text(c.get(location))
    assert 'id="cached-badge"' in page and "90%" in page
