"""Empirical privacy loss and interval coverage on neighbouring datasets.

D is the demo's ``clinic_visits``; D′ adds one person with 12 visits, each costing the
upper bound 5000 — after bounding (L∞ = 10 rows) the worst neighbour for both COUNT(*)
and SUM(cost). For each query we draw many releases on D and on D′, bin them, and for
every bin compute a one-sided Clopper–Pearson lower confidence bound on ln(P_D / P_D′)
(and the reverse), Bonferroni-corrected over bins and directions at an overall 99%
level. If the mechanism were not ε-DP, some bin's bound would exceed ε; we assert none
does. A power check shows the same estimator *does* flag a mechanism whose noise is
calibrated for half the true sensitivity (ε really 2, claimed 1).

Trial counts: 150 releases per dataset and query through ``Sandbox.run_query`` (the
whole walk: guard, engine, noise, ledger, audit); 10,000 per dataset through
``privacy.release`` on the engine's exact statistics, whose 10,000 intervals must hold
the truth 93.5–96.5% of the time (binomial sd ≈ 0.22%; OpenDP's discrete accuracy is
exact up to the rounding of the half-width to the integer grid).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pyarrow as pa
import pytest

from privacy import calibrate, release
from sandbox.demo.setup import policy_text
from sandbox.governance import dataset_caps, datasets
from sandbox.service.operations import SandboxAdmin
from sandbox.service.pipeline import QueryRequest
from sandbox.store.users import find_user
from tests.test_privacy_ledger import new_approval

pytestmark = pytest.mark.statistical

COUNT_SQL = "SELECT COUNT(*) FROM clinic_visits"
SUM_SQL = "SELECT SUM(cost) FROM clinic_visits"
EXTRA_ROWS = 12  # the added person's visits (bounded to L∞ = 10)


# -- the estimator ---------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])


def _tail_ge(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    logf = _log_factorials(n)
    i = np.arange(k, n + 1)
    return float(np.exp(logf[n] - logf[i] - logf[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)).sum())


def cp_lower(k: int, n: int, a: float) -> float:
    """One-sided Clopper–Pearson lower bound: the smallest p with P(X ≥ k; p) ≥ a."""
    if k == 0:
        return 0.0
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _tail_ge(k, n, mid) < a else (lo, mid)
    return lo


def cp_upper(k: int, n: int, a: float) -> float:
    return 1.0 - cp_lower(n - k, n, a)


def loss_lower_bound(a: list[float], b: list[float], edges: list[float], level: float = 0.01) -> float:
    """Largest lower confidence bound on |ln(P_a(bin) / P_b(bin))| over the bins."""
    bins = np.digitize(a, edges), np.digitize(b, edges)
    n_bins = len(edges) + 1
    per = level / (2 * n_bins) / 2  # Bonferroni: bins × directions, two bounds each
    best = 0.0
    for j in range(n_bins):
        ka, kb = int((bins[0] == j).sum()), int((bins[1] == j).sum())
        for (k1, n1), (k2, n2) in (((ka, len(a)), (kb, len(b))), ((kb, len(b)), (ka, len(a)))):
            low, high = cp_lower(k1, n1, per), cp_upper(k2, n2, per)
            if low > 0 and high > 0:
                best = max(best, math.log(low / high))
    return best


# -- neighbouring datasets -------------------------------------------------------------
def add_person(sb) -> None:
    """Register D′ = D + one person with EXTRA_ROWS visits at the cost bound."""
    conn = sb.conn()
    v = datasets.get_version(conn, "clinic_visits")
    table = sb.tables.get(v).drop(["__rowid"])
    person = int(max(table.column("person_id").to_pylist())) + 1
    extra = pa.table({
        "person_id": pa.array([person] * EXTRA_ROWS, pa.int64()),
        "visit_date": table.column("visit_date").slice(0, EXTRA_ROWS).combine_chunks(),
        "department": pa.array(["内科"] * EXTRA_ROWS, pa.string()),
        "cost": pa.array([5000.0] * EXTRA_ROWS, pa.float64()),
    }).select(table.column_names).cast(table.schema)
    admin = SandboxAdmin(sb)
    owner = find_user(conn, "owner")
    admin.add_dataset("clinic_visits", pa.concat_tables([table, extra]), policy_text("clinic_visits"),
                      actor=owner)
    admin.publish(owner, "clinic_visits", "statistical test: D′", regulator=find_user(conn, "regulator"))  # issue 14


def service_releases(sb, sql: str, n: int, tag: float) -> tuple[list[float], float, list]:
    """n releases through the service; ε varies in the 12th digit so the cache never answers."""
    user = find_user(sb.conn(), "researcher")
    aid = new_approval(sb, epsilon_total=1e4, per_query=1.0)
    # 150 releases at ε ≈ 1 on D and on D′ (one dataset, two versions) pass the default
    # collusion cap (ε 20); the owner raises it to the largest cap allowed
    dataset_caps.set_cap(sb, find_user(sb.conn(), "owner"), "clinic_visits",
                         {"epsilon_total": 1000.0, "delta_total": 0.01, "reason": "statistical test"})
    values, claimed, intervals = [], 0.0, []
    for i in range(n):
        r = sb.run_query(user, QueryRequest(aid, sql, 1.0 - (i + tag) * 1e-12))
        values.append(float(r["rows"][0][0]))
        claimed = max(claimed, r["epsilon_spent"])
        intervals.append(r["accuracy"][r["columns"][0]]["intervals"][0])
    return values, claimed, intervals


def exact_stats(sb, sql: str):
    import query_guard

    conn = sb.conn()
    versions = datasets.latest_versions(conn)
    plan = query_guard.plan(sql, new_scenario(), datasets.build_catalog(versions))
    exact = sb.engine.execute(plan.engine_sql(), {v.name: sb.tables.get(v) for v in versions}).to_pydict()
    return plan, exact


def new_scenario():
    from query_guard import Scenario

    return Scenario(datasets=frozenset({"residents", "clinic_visits"}))


# -- the tests -----------------------------------------------------------------------
@pytest.mark.parametrize("sql,sensitivity", [(COUNT_SQL, 10), (SUM_SQL, 10 * 5000)])
def test_empirical_loss_through_the_service_within_claimed_epsilon(demo, sql, sensitivity):
    sb, _ = demo
    _, exact = exact_stats(sb, sql)
    truth_d = float(list(exact.values())[-1][0])
    a, claimed_a, ivs = service_releases(sb, sql, 150, 0)
    add_person(sb)
    b, claimed_b, _ = service_releases(sb, sql, 150, 0.5)
    claimed = max(claimed_a, claimed_b)
    assert claimed <= 1.0
    # D′ really is the neighbour: the releases moved by the sensitivity. The tolerance is
    # 4.5 standard errors of the difference of the two sample means (a false failure has
    # probability < 1e-5 whichever noise family the accountant chose).
    se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    assert abs(np.mean(b) - np.mean(a) - sensitivity) < 4.5 * se
    fp = 1 if sql == COUNT_SQL else 128  # SUM(cost) is fixed point ×128 (cost ≤ 5000)
    truth = truth_d / fp
    scale = sensitivity / claimed
    centre = truth + sensitivity / 2
    edges = [centre + scale * k for k in range(-4, 5)]
    assert loss_lower_bound(a, b, edges) <= claimed
    hits = sum(lo <= truth <= hi for lo, hi in ivs)
    # 150 releases: a false failure (≤ 127 hits at 95 % coverage) has probability < 1e-6; the
    # 10,000-release check below is the sharp one
    assert hits >= 128


def _direct(plan, exact, n, epsilon=1.0):
    noise = calibrate(plan, epsilon)  # data-independent: calibrate once, release n times
    out, ivs = [], []
    for _ in range(n):
        rel = release(plan, exact, epsilon=epsilon, noise=noise)
        out.append(float(rel.rows[0][0]))
        ivs.append(rel.intervals[rel.columns[0]][0])
    return out, ivs


def _neighbour(exact, column, delta):
    out = dict(exact)
    out[column] = [int(exact[column][0]) + delta]
    return out


@pytest.mark.parametrize("sql,per_row", [(COUNT_SQL, 1), (SUM_SQL, 5000 * 128)])
def test_empirical_loss_of_the_release_within_epsilon_and_coverage(demo, sql, per_row):
    sb, _ = demo
    plan, exact = exact_stats(sb, sql)
    column = next(c for c in exact if c.startswith("__m0"))
    neighbour = _neighbour(exact, column, 10 * per_row)
    a, ivs = _direct(plan, exact, 10_000)
    b, _ = _direct(plan, neighbour, 10_000)
    unit = 1 if sql == COUNT_SQL else 128
    truth = int(exact[column][0]) / unit
    scale, width = 10 * per_row / unit, 10 * per_row / unit
    edges = [truth + width / 2 + scale * k / 2 for k in range(-12, 13)]
    assert loss_lower_bound(a, b, edges) <= 1.0
    # all 10,000 intervals: binomial sd ≈ 0.22 %, so 93.5–96.5 % is ±6.8 sd around 95 %
    # (a false failure has probability < 1e-7 for any true coverage in 94.7–95.3 %)
    hits = sum(lo <= truth <= hi for lo, hi in ivs)
    assert 9350 <= hits <= 9650, hits


def test_the_estimator_detects_a_miscalibrated_mechanism(demo):
    """Power check: a plan claiming L∞ = 5 while the neighbour adds 10 rows is really
    2-DP; the estimator must show a loss above the claimed 1."""
    sb, _ = demo
    plan, exact = exact_stats(sb, COUNT_SQL)
    from dataclasses import replace

    wrong = replace(plan, measurements=tuple(replace(m, max_rows_per_partition=5) for m in plan.measurements))
    column = next(c for c in exact if c.startswith("__m0"))
    a, _ = _direct(wrong, exact, 10_000)
    b, _ = _direct(wrong, _neighbour(exact, column, 10), 10_000)
    truth = int(exact[column][0])
    edges = [truth + 5 + 2.5 * k for k in range(-12, 13)]
    assert loss_lower_bound(a, b, edges) > 1.0
