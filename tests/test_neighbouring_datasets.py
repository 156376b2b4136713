"""Neighbouring-dataset differential tests (issue 12, "Must show").

D is the demo workspace; each D′ is D plus ONE person (``tests/neighbours.py``): one
``residents`` row and more ``clinic_visits`` rows than the contribution caps allow, with
values beyond every bound (age 2**62, income and cost ±1.8e308, ±inf, NaN, -0.0), dates at
and outside the declared range down to dates Python cannot represent (years 0, 10000,
±5.4 million, DuckDB's ±infinity), very long non-ASCII text, quotes, backslashes, NUL and
emoji, the largest int64 as privacy unit (variant ``extreme``); or NULL in every nullable
column with the remaining visits at the bounds (variant ``nulls``).

Every request is sent through ``Sandbox.run_query`` to D and to each D′ and reduced to
what may not depend on the data (DESIGN.md, "The walk of one query", first invariant):
status, error code, the (ε, δ) charged, the audit actions appended, the column names.
These must be identical. The released figures differ, of course, and are not compared.

1. every accepted guard fixture (``tests/fixtures/guard/*.sql``);
2. hypothesis-generated accepted-looking queries from a small grammar, adversarial literals;
3. adversarial queries meant to raise inside the engine or in post-processing only when
   the extra person matches: refused before the data on both alike, or identical.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from neighbours import (
    Outcome,
    Pair,
    build_pair,
    close_pair,
    outcome,
)
from test_guard_support import all_cases

from tests.conftest import DEMO_ROWS

VARIANTS = ("extreme", "nulls")
#: Outcome classes seen on D, by test (printed at the end with NEIGHBOURS_STATS=1 and -s).
STATS: Counter[tuple[str, str]] = Counter()


@pytest.fixture(scope="module")
def pair(demo_template, tmp_path_factory) -> Pair:
    """D and the D′ variants, each with fresh approvals (so caches never cross tests' cases)."""
    built = build_pair(demo_template, tmp_path_factory.mktemp("neighbours"), VARIANTS, DEMO_ROWS)
    yield built
    if os.environ.get("NEIGHBOURS_STATS"):
        for (test, cls), n in sorted(STATS.items()):
            print(f"{test:>12} {cls:<40} {n}")
    close_pair(built)


def compare(pair: Pair, sql: str, scenario: str = "default", kind: str = "") -> Outcome:
    """Run ``sql`` on D and every D′; fail with both outcomes if any differs."""
    on_d = outcome(pair.d, sql, scenario)
    STATS[kind, f"{on_d.status}/{on_d.code}" + (" (cached)" if on_d.cached else "")] += 1
    diffs = []
    for env in pair.neighbours:
        other = outcome(env, sql, scenario)
        if other != on_d:
            diffs.append(f"{env.name}: {other.short()}")
    assert not diffs, f"outcome differs for {sql!r}\n  D: {on_d.short()}\n  " + "\n  ".join(diffs)
    assert on_d.status != "error", f"{sql!r}: an unexpected exception escaped: {on_d.short()}"
    return on_d


# -- 1. every accepted guard fixture --------------------------------------------------------------
ACCEPTED = [case for case in all_cases() if case.outcome == "accept"]
SCENARIO_NAMES = ("default", "narrow")  # the approvals ``build_env`` grants
#: Accepted fixtures that are charged and then fail on every dataset alike (no oracle,
#: but a charge for nothing; reported, not fixed here: privacy/ is another owner's).
#: Accepted by the guard, refused by the service before the charge (the same on D and D′):
#: derived outputs the release cannot compute (``privacy.check_plan``).
REFUSED_BEFORE_CHARGE = {
    "SELECT COUNT(*) * 5 AS c, POWER(SUM(age), 2), 3 AS three, PI() FROM residents": "unsupported_expression",
}


def test_the_neighbours_differ_by_one_person_only(pair):
    assert compare(pair, "SELECT COUNT(*) FROM residents WHERE age >= 0").status == "released"
    for env in pair.neighbours:
        rows = {name: env.sb.conn().execute(
            "SELECT row_count, unit_count FROM dataset_versions v JOIN datasets s ON s.id = v.dataset_id "
            "WHERE s.name = ? ORDER BY v.id DESC LIMIT 1", (name,)).fetchone() for name in
            ("residents", "clinic_visits")}
        base = {name: pair.d.sb.conn().execute(
            "SELECT row_count, unit_count FROM dataset_versions v JOIN datasets s ON s.id = v.dataset_id "
            "WHERE s.name = ? ORDER BY v.id DESC LIMIT 1", (name,)).fetchone() for name in
            ("residents", "clinic_visits")}
        assert rows["residents"][1] == base["residents"][1] + 1
        assert rows["residents"][0] == base["residents"][0] + 1
        assert rows["clinic_visits"][1] == base["clinic_visits"][1] + 1
        assert rows["clinic_visits"][0] - base["clinic_visits"][0] > 30  # beyond the 3 × 10 caps


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda case: case.id)
def test_accepted_guard_fixture_has_one_outcome_on_neighbours(pair, case):
    scenario = case.expect.get("scenario", "default")
    if scenario not in SCENARIO_NAMES:
        pytest.skip(f"fixture targets scenario {scenario!r}, which no approval here has")
    result = compare(pair, case.sql, scenario, "fixture")
    # An accepted fixture reaches the data and is released (else the comparison proves little).
    code = REFUSED_BEFORE_CHARGE.get(case.sql)
    if code is not None:
        assert (result.status, result.code, result.epsilon) == ("refused", code, 0), result.short()
        return
    assert result.status == "released", f"{case.id}: accepted by the guard but {result.short()}"


# -- 2. hypothesis: accepted-looking queries ------------------------------------------------------
HUGE = ["9223372036854775807", "-9223372036854775808", "99999999999999999999999", "1e308",
        "-1e308", "-0.0", "0.0", "1e-320", "4611686018427387904", "NULL"]
NUMBERS = st.one_of(st.integers(-1000, 600000).map(str), st.sampled_from(["0.5", "100", "500000", "5000",
                                                                         "4999.99", *HUGE]))
TEXTS = st.sampled_from(["''", "'历下区'", "'商河县'", "'男'", "'女'", "'内科'", "'x'", "'not-a-date'",
                         "'2024-02-30'", "'%'", "'_'", "'%区'", "'O''Brien'", "'\\'", "'😀'", "NULL",
                         "'" + "济" * 500 + "'"])
DATES = st.sampled_from(["DATE '2024-01-01'", "DATE '2023-01-01'", "DATE '2024-12-31'",
                         "DATE '0001-01-01'", "DATE '9999-12-31'", "DATE '2024-02-29'", "NULL"])
PATTERNS = st.sampled_from(["'%'", "'%区'", "'历%'", "'_'", "'%\\%'", "'%''%'", "''", "'%😀%'"])

TABLES = {
    "residents": {"num": ["age", "income"], "text": ["district", "sex", "education", "employment"],
                  "date": [], "public": ["district", "sex", "education", "employment"],
                  "private": ["age", "ROUND(income / 100000)", "substr(district, 1, 1)",
                              "CASE WHEN age > 60 THEN 'old' ELSE 'young' END"]},
    "clinic_visits": {"num": ["cost"], "text": ["department"], "date": ["visit_date"],
                      "public": ["department"],
                      "private": ["year(visit_date)", "month(visit_date)", "CAST(cost / 1000 AS INT)",
                                  "date_trunc('month', visit_date)"]},
}
CMP = st.sampled_from(["=", "<>", "<", "<=", ">", ">="])


def num_expr(table: str, depth: int):
    cols = TABLES[table]
    leaves = [st.sampled_from(cols["num"]), NUMBERS, st.sampled_from([f"length({c})" for c in cols["text"]])]
    if cols["date"]:
        leaves.append(st.sampled_from([f"{f}({c})" for f in ("year", "month", "dayofweek", "dayofyear")
                                       for c in cols["date"]]))
        leaves.append(st.sampled_from([f"({c} - DATE '2023-01-01')" for c in cols["date"]]))
    leaf = st.one_of(*leaves)
    if depth <= 0:
        return leaf
    sub = num_expr(table, depth - 1)
    return st.one_of(
        leaf,
        st.tuples(sub, st.sampled_from(["+", "-", "*", "/", "//", "%"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["ABS", "FLOOR", "CEIL", "SQRT", "ROUND", "-"]), sub).map(
            lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["LEAST", "GREATEST", "COALESCE", "NULLIF"]), sub, sub).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(sub, st.sampled_from(["DOUBLE", "INT", "BIGINT", "TINYINT", "DECIMAL(18, 2)", "FLOAT"])).map(
            lambda t: f"CAST({t[0]} AS {t[1]})"),
        st.tuples(predicate(table, depth - 1), sub, sub).map(
            lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"),
    )


def text_expr(table: str):
    col = st.sampled_from(TABLES[table]["text"])
    return st.one_of(
        col,
        st.tuples(st.sampled_from(["upper", "lower", "trim"]), col).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(col, st.integers(-3, 5), st.integers(0, 4)).map(lambda t: f"substr({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(col, TEXTS).map(lambda t: f"({t[0]} || {t[1]})"),
        st.tuples(col, TEXTS).map(lambda t: f"COALESCE({t[0]}, {t[1]})"),
    )


def predicate(table: str, depth: int):
    cols = TABLES[table]
    num = num_expr(table, 0) if depth <= 0 else num_expr(table, depth - 1)
    text = text_expr(table)
    atoms = [
        st.tuples(num, CMP, NUMBERS).map(" ".join),
        st.tuples(num, CMP, num).map(" ".join),
        st.tuples(text, st.sampled_from(["=", "<>"]), TEXTS).map(" ".join),
        st.tuples(text, st.lists(TEXTS, min_size=1, max_size=4)).map(lambda t: f"{t[0]} IN ({', '.join(t[1])})"),
        st.tuples(num, NUMBERS, NUMBERS).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
        st.tuples(text, st.sampled_from(["LIKE", "ILIKE", "NOT LIKE"]), PATTERNS).map(" ".join),
        st.tuples(st.sampled_from(cols["num"] + cols["text"] + cols["date"]),
                  st.sampled_from(["IS NULL", "IS NOT NULL"])).map(" ".join),
    ]
    if cols["date"]:
        atoms.append(st.tuples(st.sampled_from(cols["date"]), CMP, DATES).map(" ".join))
        atoms.append(st.tuples(st.sampled_from(cols["date"]), DATES, DATES).map(
            lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"))
    atom = st.one_of(*atoms)
    if depth <= 0:
        return atom
    sub = predicate(table, depth - 1)
    return st.one_of(
        atom,
        sub.map(lambda p: f"NOT ({p})"),
        st.tuples(sub, st.sampled_from(["AND", "OR"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(sub, sub, sub).map(lambda t: f"CASE WHEN {t[0]} THEN {t[1]} ELSE {t[2]} END"),
    )


def aggregate(table: str):
    num = num_expr(table, 1)
    clamped = num.map(lambda e: f"LEAST(GREATEST({e}, 0), 1000)")
    return st.one_of(
        st.just("COUNT(*)"),
        num.map(lambda e: f"COUNT({e})"),
        st.tuples(st.sampled_from(["SUM", "AVG"]), st.one_of(st.sampled_from(TABLES[table]["num"]), clamped,
                                                              num)).map(lambda t: f"{t[0]}({t[1]})"),
        st.sampled_from(TABLES[table]["num"] + TABLES[table]["text"]).map(lambda c: f"COUNT(DISTINCT {c})"),
    )


@st.composite
def queries(draw) -> str:
    table = draw(st.sampled_from(sorted(TABLES)))
    aggs = draw(st.lists(aggregate(table), min_size=1, max_size=2))
    key = draw(st.one_of(st.none(), st.sampled_from(TABLES[table]["public"]),
                         st.sampled_from(TABLES[table]["private"])))
    select = ([key] if key else []) + aggs
    sql = f"SELECT {', '.join(select)} FROM {table}"
    if draw(st.booleans()):
        sql += f" WHERE {draw(predicate(table, 2))}"
    if key:
        sql += f" GROUP BY {key}"
        if draw(st.booleans()):
            sql += f" HAVING {aggs[0]} {draw(CMP)} {draw(NUMBERS)}"
    if draw(st.booleans()):
        sql += f" ORDER BY {draw(st.sampled_from(aggs))} {draw(st.sampled_from(['ASC', 'DESC']))}"
    if draw(st.booleans()):
        sql += f" LIMIT {draw(st.sampled_from(['0', '1', '5', '100', '9223372036854775807']))}"
    return sql


GENERATED = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.function_scoped_fixture])


@GENERATED
@given(sql=queries())
def test_generated_query_has_one_outcome_on_neighbours(pair, sql):
    compare(pair, sql, kind="generated")


# -- 3. adversarial: raise only when the extra person matches -------------------------------------
#: Conditions true (or NULL-driven) only for the extra person of some D′ variant.
TRIGGERS = {
    "residents": ["age > 100", "age < 0", "income > 1e300", "income > 2000000", "length(district) > 100",
                  "district NOT IN ('历下区', '市中区', '槐荫区', '天桥区', '历城区', '长清区', '章丘区', "
                  "'济阳区', '莱芜区', '钢城区', '平阴县', '商河县')",
                  "sex LIKE '%\\%'", "employment = ''", "age IS NULL", "income IS NULL", "district IS NULL",
                  "age = 100 AND income = 500000"],
    "clinic_visits": ["cost > 1e300", "cost < 0", "cost <> cost", "cost > 20000", "visit_date < DATE '2023-01-01'",
                      "visit_date > DATE '9000-01-01'", "visit_date IS NULL", "cost IS NULL",
                      "department IS NULL", "length(department) > 100", "department = ''"],
}
#: Expressions that would raise (overflow, bad cast, domain error, huge string) if evaluated
#: on the extra person's values without the guard's rewriting.
RAISERS = {
    "residents": ["age * age * age", "age + 9223372036854775807", "(-age - age) // -1", "ABS(-age - age)",
                  "(-age - age) % -1", "CAST(age AS INT)", "CAST(age AS TINYINT)", "CAST(income AS BIGINT)",
                  "CAST(income AS DECIMAL(4, 1))", "CAST(income AS FLOAT)", "income * 1e308",
                  "POW(income, 2)", "POW(age, age)", "POW(10, income)", "SQRT(income - 1e300)",
                  "SQRT(100 - age)", "age / (age - 4611686018427387904)", "income / (income - income)",
                  "CAST(district AS INT)", "CAST(district AS DATE) - DATE '2000-01-01'",
                  "CAST(sex AS BOOLEAN)::INT", "length(district || district || district || district)",
                  "CAST(age AS DECIMAL(38, 0)) * CAST(age AS DECIMAL(38, 0)) * CAST(age AS DECIMAL(38, 0))",
                  "CAST(age AS FLOAT) * CAST(age AS FLOAT) * CAST(age AS FLOAT)",
                  "CAST(CAST(income AS VARCHAR) AS DATE) - DATE '2000-01-01'", "ROUND(income) * ROUND(income)",
                  "CAST(substr(district, 1, 4) AS INT)", "CAST('garbage' AS INT)", "1 / 0", "1 // 0"],
    "clinic_visits": ["CAST(cost AS INT)", "CAST(cost AS BIGINT)", "cost * 1e308", "CEIL(cost)",
                      "SQRT(cost)", "POW(cost, cost)", "cost / (cost - cost)",
                      "(visit_date - DATE '0001-01-01') * 100000000000000",
                      "(visit_date - DATE '0001-01-01') * (visit_date - DATE '0001-01-01') "
                      "* (visit_date - DATE '0001-01-01')",
                      "year(visit_date) * 1e308 * 10", "CAST(CAST(visit_date AS VARCHAR) AS INT)",
                      "CAST(department AS INT)", "CAST(department AS DATE) - visit_date",
                      "CAST(CAST(cost AS VARCHAR) AS DECIMAL(4, 0))",
                      "date_trunc('week', visit_date) - DATE '2023-01-01'",
                      "length(department || department || department)", "CAST(cost AS FLOAT) * 1e38"],
}
POSITIONS = {
    "where": "SELECT COUNT(*) FROM {t} WHERE CASE WHEN {trig} THEN ({r}) > 0 ELSE false END",
    "where_coalesce": "SELECT COUNT(*) FROM {t} WHERE COALESCE(CASE WHEN {trig} THEN {r} END, 0) <> 0",
    "sum_clamped": "SELECT SUM(LEAST(GREATEST(CASE WHEN {trig} THEN {r} ELSE 0 END, 0), 10)) FROM {t}",
    "avg": "SELECT AVG(CASE WHEN {trig} THEN {r} ELSE 0 END) FROM {t}",
    "count_expr": "SELECT COUNT(CASE WHEN {trig} THEN {r} END) FROM {t}",
    "group_key": ("SELECT CASE WHEN {trig} THEN CAST({r} AS VARCHAR) ELSE 'a' END AS k, COUNT(*) FROM {t} "
                  "GROUP BY k"),
    "median": "SELECT MEDIAN(LEAST(GREATEST(CASE WHEN {trig} THEN {r} ELSE 0 END, 0), 10)) FROM {t}",
}

#: Hand-written cases: post-processing on noisy values, and the extreme values bare.
HANDWRITTEN = [
    "SELECT COUNT(*) FROM clinic_visits WHERE CASE WHEN cost > 4999 THEN visit_date = 'garbage' ELSE false END",
    "SELECT COUNT(*) FROM residents WHERE CASE WHEN income > 499999 THEN age = 'x' ELSE false END",
    "SELECT COUNT(*) FROM residents WHERE income IN (1, 'x')",
    "SELECT COUNT(*) FROM residents WHERE age BETWEEN 'a' AND 'b'",
    "SELECT COUNT(*) FROM residents WHERE COALESCE(age, 'x') = 'x'",
    "SELECT AVG(cost) FROM clinic_visits",
    "SELECT SUM(cost) FROM clinic_visits",
    "SELECT MEDIAN(cost) FROM clinic_visits",
    "SELECT QUANTILE_CONT(cost, 0.9) FROM clinic_visits",
    "SELECT VARIANCE(income) FROM residents",
    "SELECT STDDEV(cost) FROM clinic_visits",
    "SELECT MEDIAN(income) FROM residents",
    "SELECT AVG(CAST(income AS BIGINT)) FROM residents",
    "SELECT SUM(age * age * age) FROM residents",
    "SELECT AVG(-age - age) FROM residents",
    "SELECT SUM(ABS(-age - age)) FROM residents",
    "SELECT VARIANCE(CAST(age AS FLOAT) * CAST(age AS FLOAT) * CAST(age AS FLOAT)) FROM residents",
    "SELECT age, COUNT(*) FROM residents GROUP BY age",
    "SELECT length(district), COUNT(*) FROM residents GROUP BY length(district)",
    "SELECT substr(district, 1, 2), COUNT(*) FROM residents GROUP BY substr(district, 1, 2)",
    "SELECT CAST(income AS BIGINT), COUNT(*) FROM residents GROUP BY CAST(income AS BIGINT)",
    "SELECT visit_date, COUNT(*) FROM clinic_visits GROUP BY visit_date",
    "SELECT year(visit_date), COUNT(*) FROM clinic_visits GROUP BY year(visit_date)",
    "SELECT department, AVG(cost) FROM clinic_visits GROUP BY department",
    "SELECT upper(department), COUNT(*) FROM clinic_visits GROUP BY upper(department)",
    "SELECT r.district, COUNT(*), AVG(v.cost) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id "
    "GROUP BY r.district",
    "SELECT r.age, SUM(v.cost) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id GROUP BY r.age",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING COUNT(*) / (COUNT(*) - COUNT(*)) > 0",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING CAST(AVG(income) AS TINYINT) > 0",
    "SELECT district, SUM(income) FROM residents GROUP BY district HAVING SUM(income) * 1e300 * 1e300 > 0",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING POW(COUNT(*), COUNT(*)) > 0",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING SQRT(COUNT(*) - 250) > 0",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING CAST(COUNT(*) AS VARCHAR)::DATE IS NULL",
    "SELECT district, AVG(income) FROM residents GROUP BY district HAVING CAST(AVG(income) AS DECIMAL(3, 0)) > 0",
    "SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY 1 / (COUNT(*) - 250)",
    "SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY CAST(COUNT(*) AS DATE)",
    "SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY CAST(COUNT(*) AS BIGINT) * "
    "9223372036854775807",
    "SELECT district, COUNT(*) * 1e300 * 1e300 FROM residents GROUP BY district",
    "SELECT district, COUNT(*) / (COUNT(*) - COUNT(*)) FROM residents GROUP BY district",
    "SELECT age, COUNT(*) FROM residents GROUP BY age HAVING COUNT(*) > 1e308 ORDER BY COUNT(*) DESC LIMIT 1",
    "SELECT COUNT(*) FROM residents LIMIT 0",
    # date keys: D′[extreme] holds dates Python cannot represent (years 0, 10000, 275760)
    "SELECT CAST(visit_date AS VARCHAR), COUNT(*) FROM clinic_visits GROUP BY CAST(visit_date AS VARCHAR)",
    "SELECT visit_date - DATE '2023-01-01', COUNT(*) FROM clinic_visits GROUP BY visit_date - DATE '2023-01-01'",
    "SELECT date_trunc('year', visit_date) AS y, COUNT(*) FROM clinic_visits GROUP BY y",
    "SELECT date_trunc('month', visit_date), COUNT(*) FROM clinic_visits GROUP BY date_trunc('month', visit_date)",
    "SELECT CASE WHEN cost > 1e300 THEN visit_date ELSE DATE '2024-01-01' END AS k, COUNT(*) FROM clinic_visits "
    "GROUP BY k",
    "SELECT COALESCE(visit_date, DATE '2024-01-01') AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT CAST(CAST(visit_date AS VARCHAR) AS DATE) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT IF(cost > 1e300, visit_date, NULL) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT MEDIAN(visit_date - DATE '2023-01-01') FROM clinic_visits",
    "SELECT COUNT(*) FROM clinic_visits WHERE date_trunc('week', visit_date) > DATE '2020-01-01'",
    "SELECT COUNT(*) FROM clinic_visits WHERE CASE WHEN cost > 1e300 THEN date_trunc('month', visit_date) > "
    "DATE '2020-01-01' ELSE false END",
    "SELECT AVG(year(date_trunc('year', visit_date))) FROM clinic_visits",
    "SELECT COUNT(*) FROM clinic_visits WHERE year(visit_date) * year(visit_date) * year(visit_date) * "
    "year(visit_date) > 0",
    "SELECT COUNT(*) FROM clinic_visits WHERE CAST(visit_date AS VARCHAR) = 'infinity'",
    "SELECT COUNT(*) FROM clinic_visits WHERE CAST(CAST(visit_date AS VARCHAR) AS DATE) > DATE '2020-01-01'",
    "SELECT COUNT(*) FROM residents -- \ud800",
    "SELECT COUNT(*) FROM residents WHERE district = '\ud800'",
]


def adversarial_cases() -> list[str]:
    """Each raiser once in the WHERE position with a matching trigger, plus the hand-written."""
    out = []
    for table, raisers in RAISERS.items():
        triggers = TRIGGERS[table]
        for i, raiser in enumerate(raisers):
            out.append(POSITIONS["where"].format(t=table, trig=triggers[i % len(triggers)], r=raiser))
    return out + HANDWRITTEN


@pytest.mark.parametrize("sql", adversarial_cases())
def test_adversarial_query_is_refused_or_identical_on_neighbours(pair, sql):
    compare(pair, sql, kind="adversarial")


@st.composite
def adversarial(draw) -> str:
    table = draw(st.sampled_from(sorted(RAISERS)))
    template = POSITIONS[draw(st.sampled_from(sorted(POSITIONS)))]
    return template.format(t=table, trig=draw(st.sampled_from(TRIGGERS[table])),
                           r=draw(st.sampled_from(RAISERS[table])))


@GENERATED
@given(sql=adversarial())
def test_generated_adversarial_query_is_refused_or_identical_on_neighbours(pair, sql):
    compare(pair, sql, kind="gen-adv")


# -- accepted by the guard, never a failure after the charge ----------------------------------------
#: Once found as charged failures on every dataset alike (not an oracle, but a charge for
#: nothing): now decided before the data is read. Degenerate quantile bounds are released as
#: the one possible value; derived outputs the release cannot compute are refused, free.
DECIDED_BEFORE_CHARGE = {
    "SELECT MEDIAN(0 * age) FROM residents": "degenerate bounds [0, 0]",
    "SELECT MEDIAN(LEAST(GREATEST(age, 5), 5)) FROM residents": "degenerate bounds [5, 5]",
    "SELECT MEDIAN(LEAST(GREATEST(CASE WHEN age > 100 THEN 1 / 0 ELSE 0 END, 0), 10)) FROM residents":
        "bounds of a NULL-or-0 expression",
    "SELECT district, SQRT(COUNT(*) - 250) FROM residents GROUP BY district": "SQRT of a noisy count",
    "SELECT district, CAST(COUNT(*) AS TINYINT) FROM residents GROUP BY district": "CAST of a noisy count",
    "SELECT district, CAST(SUM(income) AS DATE) FROM residents GROUP BY district": "CAST of a noisy sum",
}


@pytest.mark.parametrize("sql", [pytest.param(sql, id=why) for sql, why in DECIDED_BEFORE_CHARGE.items()])
def test_accepted_query_never_fails_after_its_charge(pair, sql):
    result = compare(pair, sql, kind="decided-before-charge")
    assert result.status == "released" or (result.status == "refused" and result.epsilon == 0), result.short()
