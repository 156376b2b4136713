"""The plan fingerprint (release-cache key) ignores formatting, keyword case, comments and
alias names, but not anything that changes what is measured; plus the guard's doctests
and the post-processing evaluator."""

from __future__ import annotations

import doctest
import importlib

import duckdb
import pytest
from sqlglot import parse_one
from test_guard_support import CATALOG, SCENARIOS

from query_guard import evaluate, plan


def fp(sql: str) -> str:
    return plan(sql, SCENARIOS["default"], CATALOG).fingerprint


SAME = [
    (
        "SELECT district, AVG(income) FROM residents GROUP BY district",
        "select   DISTRICT ,\n avg( income )  from RESIDENTS group by district -- comment",
        "SELECT r.district AS d, AVG(r.income) AS mean_income FROM residents AS r GROUP BY d",
        "SELECT district, AVG(income) /* x */ FROM residents GROUP BY 1",
    ),
    (
        "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department HAVING COUNT(*) > 5",
        "SELECT department AS dep, COUNT(*) AS n FROM clinic_visits v GROUP BY dep HAVING n > 5",
    ),
]

DIFFERENT = [
    "SELECT district, AVG(income) FROM residents GROUP BY district",
    "SELECT district, AVG(age) FROM residents GROUP BY district",
    "SELECT district, SUM(income) FROM residents GROUP BY district",
    "SELECT sex, AVG(income) FROM residents GROUP BY sex",
    "SELECT district, AVG(income) FROM residents WHERE age > 18 GROUP BY district",
    "SELECT district, AVG(income) FROM residents GROUP BY district LIMIT 3",
    "SELECT district, AVG(income) FROM residents GROUP BY district ORDER BY 2",
    "SELECT district, VAR_POP(income) FROM residents GROUP BY district",
    "SELECT district, VAR_SAMP(income) FROM residents GROUP BY district",
]


@pytest.mark.parametrize("group", SAME)
def test_equivalent_spellings_share_a_fingerprint(group):
    assert len({fp(sql) for sql in group}) == 1


def test_different_measurements_differ():
    prints = [fp(sql) for sql in DIFFERENT]
    assert len(set(prints)) == len(prints)


def test_fingerprint_hides_the_seed():
    p = plan("SELECT COUNT(*) FROM clinic_visits", SCENARIOS["default"], CATALOG)
    assert "test-seed-v1" in p.engine_sql()
    assert len(p.fingerprint) == 64 and int(p.fingerprint, 16) >= 0


def test_engine_sql_has_no_researcher_comments():
    p = plan(
        "SELECT COUNT(*) /* hello */ FROM residents WHERE /* a */ age > 1 -- tail",
        SCENARIOS["default"],
        CATALOG,
    )
    assert "/*" not in p.engine_sql() and "--" not in p.engine_sql()


@pytest.mark.parametrize(
    "name", ["query_guard.evaluate", "query_guard.positions", "query_guard.rules.clamp_values"]
)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(
    ("expr", "env", "value"),
    [
        ("m0 / m1", {"m0": 10, "m1": 4}, 2.5),
        ("m0 / m1", {"m0": 10, "m1": 0}, float("inf")),  # DuckDB 2: IEEE division
        ("m0 * 5", {"m0": None}, None),
        ("ROUND(m0, 1)", {"m0": 2.25}, 2.3),
        ('"n" > 50 AND "d" <> \'x\'', {"n": 51, "d": "y"}, True),
        ("TRY_CAST(g AS INT) * -1", {"g": "7"}, -7),
        ("CASE WHEN m0 % 0 = 1 THEN 1 ELSE 2 END", {"m0": 3.0}, 2),  # DOUBLE % 0 is NaN
        ("year(d)", {"d": "2024-03-01"}, 2024),
    ],
)
def test_evaluate_post_processing(expr, env, value):
    assert evaluate(parse_one(expr, read="duckdb"), env) == value


@pytest.mark.parametrize(
    ("expr", "env"),
    [
        ("m0 % 0", {"m0": 3}),  # integer modulo by zero
        ("m0 // 0", {"m0": 3.0}),
        ("m0 * 2", {"m0": 2**62}),  # BIGINT overflow
        ("CAST(m0 AS TINYINT)", {"m0": 127.5}),
        ("CAST(m0 AS DECIMAL(3, 0))", {"m0": 999.5}),
    ],
)
def test_evaluate_raises_where_duckdb_does(expr, env):
    """TRY (post-processing) makes these NULL; the guard's domains give up on them."""
    with pytest.raises((ArithmeticError, ValueError)):
        evaluate(parse_one(expr, read="duckdb"), env)


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("CAST(2.5 AS INT)", 3),  # a DECIMAL literal: half away from zero
        ("CAST(-2.5 AS INT)", -3),
        ("CAST(CAST(2.5 AS DOUBLE) AS INT)", 2),  # a DOUBLE: half to even
        ("CAST(5 / 2 AS INT)", 2),
        ("CAST(7 / 2 AS INT)", 4),
        ("CAST(5 * 0.5 AS INT)", 3),  # BIGINT * DECIMAL is a DECIMAL
        ("CAST('2.5' AS INT)", 3),
        ("CAST('-0.5' AS INT)", -1),
        ("ROUND(-2.5)", -3.0),
        ("ROUND(15, -1)", 20),
        ("SQRT(-1) > 1e308", True),  # NaN is above every number …
        ("SQRT(-1) = SQRT(-1)", True),  # … and equal to itself
        ("GREATEST(SQRT(-1), 1) > 1", True),
        ("SUBSTRING('hello', 2, 3)", "ell"),
        ("SUBSTRING('hello', 0, 2)", "h"),
        ("SUBSTRING('hello', -3, 2)", "ll"),
        ("SUBSTRING('hello', 3, -2)", "he"),
        ("SUBSTRING('hello', -10, 3)", ""),
        ("7 // -2", -3),
        ("-7 % 3", -1),
    ],
)
def test_evaluate_matches_duckdb(expr, value):
    """Each value is what DuckDB 2 returns."""
    assert evaluate(parse_one(expr, read="duckdb"), {}) == value
    assert duckdb.connect().execute(f"SELECT {expr}").fetchone()[0] == value


def test_everything_that_shapes_the_release_is_in_the_fingerprint():
    """Two plans whose releases would differ never share a cache key: the histogram layout
    of a quantile included (a release read off other bins is another release)."""
    import dataclasses

    from query_guard.fingerprint import fingerprint

    p = plan("SELECT QUANTILE_CONT(cost, 0.5) FROM clinic_visits", SCENARIOS["default"], CATALOG)

    def again(**change):
        ms = [dataclasses.replace(m, **change) for m in p.measurements]
        return fingerprint(p.engine_query, [], p.datasets, p.group_keys, ms, p.outputs, p.having,
                           p.order_by, p.limit)

    same = again()
    assert again(bin_layout="linear") != same
    assert again(bins=64) != same
    assert again(upper=1.0) != same
