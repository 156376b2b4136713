"""Red team, round 3 (issue 12, "The red team again"): new variants and new attack classes.

Goal of every attack, as a researcher: learn one person's exact record, or get an answer
for free or unlogged, through anything observable other than the noisy release (status,
error code, charge, audit entries, notes, rows, column names, latency, the cache, alerts,
suspension), or crash / hang the server, spend budget without a log entry, release
without a charge, overspend, or escape the scope. Rounds 1 and 2 (tests/test_red_team.py,
tests/test_neighbouring_datasets.py) are not repeated here.

Each attack tried is kept: defended ones as normal tests asserting the defence; open ones
as ``xfail(strict=True, reason="FINDING: ...")`` so they flip when fixed.

D is the demo data; D′ is D plus one person (``tests/neighbours.py``, reused unedited):
``extreme`` (values beyond every bound: income 1.8e308, age 2^62, costs ±inf/NaN, dates
at ±infinity) and ``nulls``. A trigger such as ``income > 1e300`` matches only the extra
person of ``extreme``, so any difference between D and D′ is an oracle on one person.
"""

from __future__ import annotations

import json
import math
import threading
import time

import pytest
from neighbours import (
    EPSILON,
    Env,
    Outcome,
    assert_same,
    build_pair,
    close_pair,
    outcome,
)

from audit_log.replay import compare_with_ledger, replay
from sandbox.engine.embedded import EngineLimits
from sandbox.governance import suspensions
from sandbox.service.dummy import run_dummy
from sandbox.service.operations import SandboxAdmin
from sandbox.service.pipeline import QueryFailed, QueryRequest
from sandbox.service.preview import PreviewRequest, preview_query
from sandbox.store.users import find_user
from tests.conftest import DEMO_ROWS

VARIANTS = ("extreme", "nulls")


@pytest.fixture(scope="module")
def pair(demo_template, tmp_path_factory):
    built = build_pair(demo_template, tmp_path_factory.mktemp("red-team-3"), VARIANTS, DEMO_ROWS)
    yield built
    close_pair(built)


# -- 1. errors inside aggregates, clamping, fixed point and histograms ------------------------------
AGGREGATE_INTERNALS = [
    # fixed-point sums at the clamp edges; inf - inf = NaN inside the clamp; sums of squares
    "SELECT SUM(income - income) FROM residents",
    "SELECT SUM(-income), AVG(-income) FROM residents",
    "SELECT STDDEV(cost), VARIANCE(cost) FROM clinic_visits",
    "SELECT department, STDDEV(cost - cost) FROM clinic_visits GROUP BY department",
    "SELECT SUM(cost * 0.000001) FROM clinic_visits",
    "SELECT SUM(age * 1e-300) FROM residents",
    "SELECT VARIANCE(age * 100000000), STDDEV(age * 100000000) FROM residents",
    "SELECT AVG(income / 1e-300) FROM residents",
    "SELECT SUM(CASE WHEN income > 1e300 THEN income ELSE 0 END) FROM residents",
    "SELECT AVG(CASE WHEN age > 100 THEN -age ELSE age END) FROM residents",
    # quantiles: NaN/inf values, degenerate and negative ranges, all-NULL input
    "SELECT MEDIAN(cost - cost) FROM clinic_visits",
    "SELECT MEDIAN(age * 0) FROM residents",
    "SELECT QUANTILE_CONT(-income, 0.5) FROM residents",
    "SELECT QUANTILE_CONT(CASE WHEN income > 1e300 THEN income END, 0.5) FROM residents",
    "SELECT department, MEDIAN(cost) FROM clinic_visits GROUP BY department",
    "SELECT QUANTILE_CONT(cost, [0.0, 0.25, 0.5, 0.75, 1.0]) FROM clinic_visits",
    "SELECT MEDIAN(visit_date - DATE '2023-01-01') FROM clinic_visits",
    "SELECT MEDIAN(year(visit_date)) FROM clinic_visits",
    # COUNT DISTINCT of the unit on joins and filtered rows; distinct over odd text
    "SELECT COUNT(DISTINCT v.person_id) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id",
    "SELECT COUNT(DISTINCT person_id) FROM clinic_visits WHERE department LIKE '%\\_%'",
    "SELECT department, COUNT(DISTINCT person_id) FROM clinic_visits GROUP BY department",
    "SELECT COUNT(DISTINCT person_id) FROM clinic_visits WHERE visit_date > DATE '9999-12-31'",
    # aggregates over LEFT JOIN NULL extension (people with no visits) and extreme right rows
    "SELECT r.district, SUM(v.cost) FROM residents r LEFT JOIN clinic_visits v ON r.person_id = v.person_id "
    "GROUP BY r.district",
    "SELECT r.district, AVG(v.cost), COUNT(*) FROM residents r LEFT JOIN clinic_visits v "
    "ON r.person_id = v.person_id AND v.cost > 1e300 GROUP BY r.district",
    "SELECT MEDIAN(v.cost) FROM residents r LEFT JOIN clinic_visits v ON r.person_id = v.person_id",
    "SELECT v.department, SUM(r.income) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id "
    "GROUP BY v.department",
    "SELECT SUM(r.age + v.cost) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id",
]


@pytest.mark.parametrize("sql", AGGREGATE_INTERNALS)
def test_aggregate_internals_are_identical(pair, sql):
    assert_same(pair, sql)


# -- 2. group keys: dates far out of range, odd text, huge / NaN keys, partition selection -----------
GROUP_KEYS = [
    "SELECT year(visit_date) AS y, COUNT(*) FROM clinic_visits GROUP BY y",
    "SELECT month(visit_date) AS m, SUM(cost) FROM clinic_visits GROUP BY m",
    "SELECT dayofweek(visit_date) AS w, COUNT(*) FROM clinic_visits GROUP BY w",
    "SELECT date_trunc('month', visit_date) AS m, COUNT(*) FROM clinic_visits GROUP BY m",
    "SELECT date_trunc('year', visit_date) AS y, COUNT(*) FROM clinic_visits GROUP BY y",
    "SELECT CAST(visit_date AS VARCHAR) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT visit_date - DATE '2023-01-01' AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT upper(department) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT trim(department) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT SUBSTRING(department, 1, 1) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT department || '\x00' AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT length(department) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT department = '内科' AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT cost AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT cost - cost AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT CAST(cost AS BIGINT) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT CAST(age AS VARCHAR) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT age * 1e300 * 1e300 AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CASE WHEN age > 100 THEN 'x' ELSE 'y' END AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CASE WHEN income > 0 THEN CAST('nan' AS DOUBLE) ELSE 1 END AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CASE WHEN income > 0 THEN 1e308 * 10 ELSE -0.0 END AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT district AS k, age AS a, COUNT(*) FROM residents GROUP BY k, a",
    "SELECT district, department, COUNT(*) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id "
    "GROUP BY district, department",
    "SELECT v.department, r.age, COUNT(*) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id "
    "GROUP BY v.department, r.age",
    # HAVING / ORDER BY over private keys and odd key values (post-processing on released keys)
    "SELECT CAST(cost AS VARCHAR) AS k, COUNT(*) FROM clinic_visits GROUP BY k HAVING k LIKE '%inf%' "
    "ORDER BY k DESC LIMIT 3",
    "SELECT cost AS k, COUNT(*) AS c FROM clinic_visits GROUP BY k HAVING k / c > 1 ORDER BY k / 0",
]


@pytest.mark.parametrize("sql", GROUP_KEYS)
def test_group_key_extremes_are_identical(pair, sql):
    assert_same(pair, sql)


# -- 3. the empty-table pre-check and the materialised keep column -------------------------------
EMPTY_AND_KEEP = [
    # things that behave differently on zero rows than on some rows (aggregates of nothing,
    # CASE on an aggregate-free constant, division by the row count)
    "SELECT COUNT(*) FROM clinic_visits WHERE 1 / (cost - cost) > 0",
    "SELECT SUM(1 / (age - age)) FROM residents",
    "SELECT COUNT(*) FROM residents WHERE CAST(district AS DECIMAL(3,1)) > 1",
    "SELECT COUNT(*) FROM residents WHERE TRY_CAST(CAST(age AS VARCHAR) AS DATE) IS NOT NULL",
    "SELECT COUNT(*) FROM clinic_visits WHERE CAST(CAST(visit_date AS VARCHAR) AS DATE) > DATE '2024-01-01'",
    "SELECT COUNT(*) FROM clinic_visits WHERE CAST(visit_date AS TIMESTAMP) IS NOT NULL",
    "SELECT COUNT(*) FROM clinic_visits WHERE date_trunc('day', visit_date) IS NULL",
    "SELECT COUNT(*) FROM clinic_visits WHERE CAST(cost AS INTEGER) > 0",
    "SELECT COUNT(*) FROM clinic_visits WHERE CAST(cost AS HUGEINT) > 0",
    "SELECT COUNT(*) FROM residents WHERE CAST(age AS INTEGER) * CAST(age AS INTEGER) > 0",
    "SELECT COUNT(*) FROM residents WHERE CAST(age AS SMALLINT) > 0",
    "SELECT COUNT(*) FROM residents WHERE CAST(income AS UBIGINT) > 0",
    "SELECT COUNT(*) FROM residents WHERE CAST(income AS USMALLINT) > 0",
    # keep column: groupings whose key expression differs only on D′'s extreme rows
    "SELECT year(visit_date) AS y, department, COUNT(*) FROM clinic_visits GROUP BY y, department",
    "SELECT CASE WHEN cost > 1e300 THEN 'hi' ELSE 'lo' END AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT CASE WHEN cost > 1e300 THEN visit_date END AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT department, COUNT(*) FROM clinic_visits WHERE cost > 1e300 GROUP BY department",
    "SELECT department, SUM(cost) FROM clinic_visits WHERE visit_date IS NULL GROUP BY department",
]


@pytest.mark.parametrize("sql", EMPTY_AND_KEEP)
def test_empty_check_and_keep_column_are_identical(pair, sql):
    assert_same(pair, sql)


# -- 4. timing: one row made to cost seconds ------------------------------------------------------
#: A text literal of 18,000 characters named in a CTE and concatenated 40 × 40 times through
#: two more CTEs: 3 nodes in the researcher's text per level, but inlining copies the literal
#: into every reference, so the engine SQL is ~29 MB and one row's string is 28.8 M
#: characters. DuckDB folds the constant once (data-independent), but under ``CASE WHEN
#: <trigger> THEN b || district`` only rows matching the trigger build it, and ``LIKE`` with
#: a 99-character pattern of ``a_`` pairs after ``%`` costs O(length × pattern), ~100 ms per
#: million characters: ~3 s for the ONE matching row, nothing for the others.
BOMB_LITERAL, BOMB_FANOUT = 18_000, 40
BOMB_PATTERN = "%" + "a_" * 48 + "b%"


def like_bomb(trigger: str, tag: str = "") -> str:
    lit = "a" * BOMB_LITERAL
    lvl1 = "concat(" + ",".join(["s"] * BOMB_FANOUT) + ")"
    lvl2 = "concat(" + ",".join(["a"] * BOMB_FANOUT) + ")"
    cols = "income, district, age, sex, education, employment"
    return (f"WITH t AS (SELECT '{lit}' AS s, {cols} FROM residents), "
            f"u AS (SELECT {lvl1} AS a, {cols} FROM t), "
            f"v AS (SELECT {lvl2} AS b, {cols} FROM u) "
            f"SELECT COUNT(*) FROM v WHERE CASE WHEN {trigger} THEN b || district ELSE '{tag}' END "
            f"LIKE '{BOMB_PATTERN}'")


def _timed(env: Env, sql: str) -> tuple[Outcome, float]:
    start = time.perf_counter()
    out = outcome(env, sql, epsilon=0.001)
    return out, time.perf_counter() - start


def test_like_bomb_is_refused_before_any_charge(pair):
    """Was the building block of the timing findings below (the guard's limits on text,
    nodes and pattern all held, and one matching row built 28.8 M characters). Now the
    guard bounds the characters a row expression builds (``MAX_TEXT_CHARS``) and LIKE's
    steps per row (``MAX_LIKE_STEPS``): refused, free, the same on D and D′."""
    assert len(like_bomb("income > 1e300")) < 20_000 and len(BOMB_PATTERN) <= 100
    on_d = outcome(pair.d, like_bomb("income > 1e300", "accepted"), epsilon=0.001)
    on_x = outcome(pair.extreme, like_bomb("income > 1e300", "accepted"), epsilon=0.001)
    assert (on_d.status, on_d.code, on_d.epsilon) == ("refused", "too_complex", 0), on_d.short()
    assert on_x == on_d, (on_d.short(), on_x.short())


def test_one_row_cannot_cost_seconds(pair):
    """Was a FINDING: ~3 s more on D′ (one matching person) than on D."""
    _out_d, t_d = _timed(pair.d, like_bomb("income > 1e300", "t1"))
    _out_x, t_x = _timed(pair.extreme, like_bomb("income > 1e300", "t1"))
    assert t_x - t_d < 0.5, f"D {t_d:.2f} s, D′ {t_x:.2f} s"


def test_time_limit_is_not_an_outcome_oracle(pair):
    """Was a FINDING: at a 2 s engine limit the bomb was released on D and failed on D′."""
    saved = {env.name: env.sb.engine.limits for env in (pair.d, pair.extreme)}
    try:
        for env in (pair.d, pair.extreme):
            env.sb.engine.limits = EngineLimits(timeout_seconds=2.0)
        on_d = outcome(pair.d, like_bomb("income > 1e300", "t2"), epsilon=0.001)
        on_x = outcome(pair.extreme, like_bomb("income > 1e300", "t2"), epsilon=0.001)
    finally:
        for env in (pair.d, pair.extreme):
            env.sb.engine.limits = saved[env.name]
    assert on_d.status != "failed", on_d.short()
    assert (on_x.status, on_x.code) == (on_d.status, on_d.code), (on_d.short(), on_x.short())


def _unique_resident(env: Env) -> tuple[str, float]:
    """A condition on quasi-identifiers matching exactly one resident of D, and their income."""
    qis = ("district", "age", "sex", "education", "employment")
    rows = env.sb.tables.get(next(v for v in _versions(env) if v.name == "residents")).select(
        [*qis, "income"]).to_pylist()
    counts: dict[tuple, int] = {}
    for r in rows:
        counts[tuple(r[c] for c in qis)] = counts.get(tuple(r[c] for c in qis), 0) + 1
    for r in rows:
        if counts[tuple(r[c] for c in qis)] == 1 and (r["income"] or 0) > 1000:
            cond = " AND ".join(f"{c} = {r[c]!r}" if c == "age" else f"{c} = '{r[c]}'" for c in qis)
            return cond, float(r["income"])
    raise AssertionError("no unique resident")


def _versions(env: Env):
    from sandbox.governance import datasets
    return datasets.latest_versions(env.sb.conn())


def test_timing_cannot_learn_one_residents_income(pair):
    cond, income = _unique_resident(pair.d)
    _below, t_below = _timed(pair.d, like_bomb(f"{cond} AND income > {income - 1.0!r}", "i1"))
    _above, t_above = _timed(pair.d, like_bomb(f"{cond} AND income > {income + 1.0!r}", "i2"))
    assert (_below.status, _below.code) == (_above.status, _above.code), (_below.short(), _above.short())
    assert abs(t_below - t_above) < 0.5, f"income below: {t_below:.2f} s, above: {t_above:.2f} s"


# -- 5. the release cache ---------------------------------------------------------------------
def test_cache_confidence_change_is_the_same_noise_for_free(pair):
    """Same query, another confidence: the cached release (free, the same noisy values, new
    intervals), never fresh noise for free (averaging). Until issue 13 the cache key held the
    confidence and this was a new charge with fresh noise; now DESIGN.md's 'confidence change:
    same noise' holds (sandbox/service/accuracy.py)."""
    env, aid = pair.d, pair.d.approvals["default"]
    sql = "SELECT district, COUNT(*) FROM residents WHERE age > 33 GROUP BY district"
    first = env.sb.run_query(env.researcher, QueryRequest(aid, sql, 0.01, 0.95))
    again = env.sb.run_query(env.researcher, QueryRequest(aid, sql, 0.01, 0.95))
    assert again["cached"] and again["epsilon_spent"] == 0 and again["rows"] == first["rows"]
    other = env.sb.run_query(env.researcher, QueryRequest(aid, sql, 0.01, 0.9))
    assert other["cached"] and other["epsilon_spent"] == 0 and other["rows"] == first["rows"]
    col = first["columns"][1]
    assert other["accuracy"][col]["confidence"] == 0.9
    assert other["accuracy"][col]["intervals"] != first["accuracy"][col]["intervals"]


def test_cache_does_not_cross_approvals_for_free(pair):
    """The same query under a second approval is charged to that approval (no free answer)."""
    env = pair.d
    sql = "SELECT COUNT(*) FROM residents WHERE age > 41"
    a = env.sb.run_query(env.researcher, QueryRequest(env.approvals["default"], sql, 0.01))
    b = env.sb.run_query(env.researcher, QueryRequest(env.approvals["narrow"], sql, 0.01))
    assert not a["cached"] and not b["cached"] and b["epsilon_spent"] == pytest.approx(0.01)


def test_a_failed_query_is_not_cached_but_retry_is_charged(pair):
    """A charged failure is not served from the cache: a retry is charged again (the outcome
    of the first is known to the caller already, so 'cached or not' reveals nothing new)."""
    env, aid = pair.d, pair.d.approvals["default"]
    sql = "SELECT COUNT(*) FROM residents WHERE age > 57"
    calls = {"n": 0}
    real = env.sb.executor.run

    def flaky(req):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker crashed")
        return real(req)

    env.sb.executor.run = flaky
    try:
        with pytest.raises(QueryFailed):
            env.sb.run_query(env.researcher, QueryRequest(aid, sql, 0.01))
        second = env.sb.run_query(env.researcher, QueryRequest(aid, sql, 0.01))
    finally:
        del env.sb.executor.run
    assert not second["cached"] and second["epsilon_spent"] == pytest.approx(0.01)


# -- 6. preview and dummy never read the data ------------------------------------------------------
PREVIEW_DUMMY_SQL = [
    "SELECT district, AVG(income) FROM residents WHERE income > 1e300 GROUP BY district",
    "SELECT CAST(cost AS VARCHAR) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT department, MEDIAN(cost) FROM clinic_visits GROUP BY department HAVING COUNT(*) > 3",
]


@pytest.mark.parametrize("sql", PREVIEW_DUMMY_SQL)
def test_preview_and_dummy_never_read_real_data(pair, sql, monkeypatch):
    shapes = []
    for env in (pair.d, *pair.neighbours):
        def no_data(*_a, **_k):
            raise AssertionError("real data read by a preview or dummy run")

        monkeypatch.setattr(env.sb.tables, "get", no_data)
        monkeypatch.setattr(env.sb.executor, "run", no_data)
        aid = env.approvals["default"]
        pv = preview_query(env.sb, env.researcher, PreviewRequest(aid, sql, 0.05))
        dm = run_dummy(env.sb, env.researcher, QueryRequest(aid, sql, 0.05))
        json.dumps(dm, allow_nan=False)
        # (row counts and HAVING notes follow the noise; everything else is fixed by the plan)
        shapes.append((json.dumps(pv["columns"], sort_keys=True), pv["epsilon"],
                       dm["columns"], dm["notes"][0], dm["would_cost"]))
        monkeypatch.undo()
    assert all(s == shapes[0] for s in shapes), shapes


# -- 7. concurrency: a suspension and a cap change while a query runs ------------------------------
def _blocking_executor(env: Env):
    started, release = threading.Event(), threading.Event()
    real = env.sb.executor.run

    def run(req):
        started.set()
        release.wait(30)
        return real(req)

    env.sb.executor.run = run
    return started, release


def test_suspension_while_a_query_runs_then_refuses_the_next(pair):
    """Decision 0008: a query charged before the suspension completes; the next is refused,
    uncharged and logged; replay agrees with the ledger."""
    env = pair.d
    conn = env.sb.conn()
    owner = find_user(conn, "owner")
    admin = SandboxAdmin(env.sb)
    app_id = admin.apply(env.researcher, {"datasets": ["residents"], "scenario": "rt3 suspend",
                                          "purpose": "red team round 3", "commitment_accepted": True})
    aid = admin.approve(owner, app_id, {"datasets": ["residents"]}, epsilon_total=1.0, delta_total=1e-6,
                        epsilon_per_query=0.5)
    started, release = _blocking_executor(env)
    result: dict = {}

    def worker():
        try:
            result["r"] = env.sb.run_query(env.researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents", 0.1))
        except Exception as err:  # noqa: BLE001
            result["e"] = err

    t = threading.Thread(target=worker)
    try:
        t.start()
        assert started.wait(30)
        suspensions.create(env.sb, owner, {"approval_id": aid, "reason": "red team round 3"})
    finally:
        release.set()
        t.join(60)
        del env.sb.executor.run
    assert "r" in result, result
    seq0 = conn.execute("SELECT MAX(seq) FROM audit_entries").fetchone()[0]
    with pytest.raises(Exception) as err:
        env.sb.run_query(env.researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age > 2", 0.1))
    assert getattr(err.value, "code", "") in ("suspended", "approval_suspended", "not_active"), err.value
    actions = [r[0] for r in conn.execute(
        "SELECT json_extract(entry, '$.action') FROM audit_entries WHERE seq > ?", (seq0,))]
    assert "query.started" not in actions and "query.refused" in actions
    spent = conn.execute("SELECT SUM(epsilon) FROM ledger WHERE approval_id = ?", (aid,)).fetchone()[0]
    assert spent == pytest.approx(0.1)
    _replay_agrees(env)


def _replay_agrees(env: Env) -> dict:
    conn = env.sb.conn()
    entries = [json.loads(r[0]) for r in conn.execute("SELECT entry FROM audit_entries ORDER BY seq")]
    report = replay(entries)
    ledger = {str(r[0]): (float(r[1]), float(r[2])) for r in conn.execute(
        "SELECT approval_id, SUM(epsilon), SUM(delta) FROM ledger GROUP BY approval_id")}
    assert not report["inconsistencies"], report["inconsistencies"]
    assert not compare_with_ledger(report, ledger)
    return report


# -- 8. a crash between the charge and the outcome ---------------------------------------------------
def test_crash_between_charge_and_outcome_is_an_open_start(pair):
    """A BaseException in the engine (KeyboardInterrupt, SystemExit: what a kill looks like to
    the code after the charge) skips ``except Exception``; the charge and the start entry are
    committed, the queries row stays honest (failed / in_progress), replay lists an open start
    and finds no inconsistency."""
    env, aid = pair.d, pair.d.approvals["default"]

    def killed(_req):
        raise KeyboardInterrupt

    env.sb.executor.run = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            env.sb.run_query(env.researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age > 77", 0.01))
    finally:
        del env.sb.executor.run
    conn = env.sb.conn()
    row = conn.execute("SELECT status, error_code, audit_seq FROM queries ORDER BY created_at DESC, rowid DESC "
                       "LIMIT 1").fetchone()
    assert (row[0], row[1]) == ("failed", "in_progress"), tuple(row)
    report = _replay_agrees(env)
    assert report["open_starts"], report["open_starts"]
    # and the same request again is charged again, never served as a release
    again = env.sb.run_query(env.researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age > 77", 0.01))
    assert not again["cached"] and again["epsilon_spent"] == pytest.approx(0.01)


assert EPSILON > 0 and math.isfinite(EPSILON)


def test_row_work_is_bounded_at_the_guard(pair):
    """The bound itself: LIKE over a 1,000-character column with a 50-character pattern
    (50,000 steps a row) is accepted; one more character of text is not; a concatenation
    past 10,000 characters is refused whatever follows."""
    pattern = ("%" + "_a" * 24 + "%")[:50]
    ok = f"SELECT COUNT(*) FROM residents WHERE district LIKE '{pattern}'"
    too_long = f"SELECT COUNT(*) FROM residents WHERE district || 'x' LIKE '{pattern}'"
    concat = "SELECT COUNT(*) FROM residents WHERE " + " || ".join(["district"] * 11) + " = 'x'"
    assert outcome(pair.d, ok, epsilon=0.001).status == "released"
    for sql in (too_long, concat):
        out = outcome(pair.d, sql, epsilon=0.001)
        assert (out.status, out.code, out.epsilon) == ("refused", "too_complex", 0), out.short()
