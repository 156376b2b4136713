"""Red team, round 2 (issue 12, "The red team again"): fresh variants of the attack classes.

The goal of each attack: learn one person's exact record, or get an answer for free or
unlogged, through something the caller can observe other than the noisy release (status,
error code, charge, audit entries, notes, rows, latency), or crash, hang, overspend or
escape the approved scope. Every attack tried is kept here:

* defended: a normal test asserting the defence (refused before any charge with the same
  code on D and D′, or the same outcome class, charge and audit actions on both);
* still open: ``xfail(strict=True, reason=<finding>)``, so it flips when fixed (none open
  now: the DECIMAL oracle, the 2^53 key and the 4,301-digit id were found here and fixed).

D is the demo data; each D′ is D plus one person (``tests/neighbours.py``, reused not
edited): ``extreme`` (values beyond every bound; its text is cut to 300 characters here so
the pair also registers under a per-column text-length limit), ``bounds`` (at every bound)
and ``nulls``. Triggers such as ``income > 1e300`` or ``age > 100`` match only the extra
person of ``extreme``, so a difference between D and D′ is an oracle on one person.
"""

from __future__ import annotations

import json
import math
import shutil
import threading

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from neighbours import (
    EPSILON,
    Env,
    assert_same,
    build_pair,
    close_pair,
    outcome,
)

from sandbox.demo.setup import setup_demo
from sandbox.errors import EngineFailure
from sandbox.governance.workflow import SETTING_GROUP as WORKFLOW_SETTINGS
from sandbox.service.operations import SandboxAdmin
from sandbox.service.pipeline import QueryFailed, QueryRequest
from sandbox.store.rate_limits import SETTING_GROUP as RATE_SETTINGS
from sandbox.store.users import find_user
from sandbox.store.workspace import transaction
from sandbox.web import create_app
from tests.conftest import DEMO_ROWS, bearer

VARIANTS = ("extreme", "bounds", "nulls")


def _short_text(table: pa.Table, limit: int = 300) -> pa.Table:
    """``table`` with every text value cut to ``limit`` characters (same schema)."""
    cols = {}
    for name in table.schema.names:
        col = table[name]
        if pa.types.is_string(col.type):
            col = pc.utf8_slice_codeunits(col, 0, limit)
        cols[name] = col
    return pa.table(cols).cast(table.schema)


@pytest.fixture(scope="module")
def pair(demo_template, tmp_path_factory):
    built = build_pair(demo_template, tmp_path_factory.mktemp("red-team"), VARIANTS, DEMO_ROWS, _short_text)
    yield built
    close_pair(built)


# -- 1. implicit casts and type mixes -------------------------------------------------------------
IMPLICIT_CASTS = [
    # text next to numbers / booleans in CASE, COALESCE, NULLIF, LEAST, IF, CASE x WHEN, IN
    "SELECT COUNT(*) FROM residents WHERE CASE WHEN income > 1e300 THEN 1 ELSE 'x' END = 1",
    "SELECT COUNT(*) FROM residents WHERE CASE WHEN income > 1e300 THEN 'x' ELSE 1 END = 1",
    "SELECT COUNT(*) FROM residents WHERE COALESCE(CASE WHEN income > 1e300 THEN age END, 'x') = 1",
    "SELECT COUNT(*) FROM residents WHERE NULLIF(age, 'x') = 1",
    "SELECT COUNT(*) FROM residents WHERE LEAST(age, 'x') = 1",
    "SELECT COUNT(*) FROM residents WHERE IF(income > 1e300, true, 'maybe')",
    "SELECT COUNT(*) FROM residents WHERE CASE WHEN income > 1e300 THEN true ELSE 'maybe' END",
    "SELECT COUNT(*) FROM residents WHERE CASE age WHEN 'x' THEN true ELSE false END",
    "SELECT COUNT(*) FROM residents WHERE age IN ('1', 2)",
    "SELECT COUNT(*) FROM residents WHERE CASE WHEN income > 1e300 THEN [age, 'x'] IS NOT NULL ELSE false END",
    # text next to dates: subqueries, CTE columns, non-ISO date spellings
    "SELECT COUNT(*) FROM clinic_visits WHERE visit_date IN (SELECT 'garbage')",
    "WITH t AS (SELECT 'garbage' AS s, visit_date FROM clinic_visits) SELECT COUNT(*) FROM t WHERE visit_date = s",
    "WITH t AS (SELECT 'garbage' AS s, visit_date, cost FROM clinic_visits) SELECT COUNT(*) FROM t "
    "WHERE CASE WHEN cost > 1e300 THEN visit_date = s ELSE false END",
    "SELECT COUNT(*) FROM clinic_visits WHERE visit_date = '20240101'",
    "SELECT COUNT(*) FROM clinic_visits WHERE CASE WHEN cost > 1e300 THEN visit_date = '2024-W01-1' ELSE false END",
    "SELECT COUNT(*) FROM clinic_visits WHERE CASE WHEN cost > 1e300 THEN visit_date > CAST('x' AS DATE) "
    "ELSE false END",
    "SELECT COUNT(*) FROM clinic_visits WHERE CASE WHEN cost > 1e300 THEN visit_date = CAST(department AS DATE) "
    "ELSE false END",
    "SELECT COUNT(*) FROM clinic_visits WHERE CASE WHEN cost > 1e300 THEN visit_date = DATE '2024-02-30' "
    "ELSE false END",
    # date-typed group keys through CTEs and functions (dates Python cannot hold in D′)
    "WITH t AS (SELECT visit_date AS d FROM clinic_visits) SELECT d, COUNT(*) FROM t GROUP BY d",
    "SELECT LEAST(visit_date, visit_date) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT NULLIF(visit_date, DATE '2024-01-01') AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    "SELECT TRY_CAST(visit_date AS DATE) AS k, COUNT(*) FROM clinic_visits GROUP BY k",
    # HAVING on text/date keys against other families
    "SELECT visit_date AS d, COUNT(*) FROM clinic_visits GROUP BY d HAVING d > '2024-01-01'",
    "SELECT visit_date AS d, COUNT(*) FROM clinic_visits GROUP BY d HAVING d > DATE '2024-01-01'",
    "SELECT visit_date AS d, COUNT(*) FROM clinic_visits GROUP BY d HAVING d > 5",
    "SELECT age, COUNT(*) FROM residents GROUP BY age HAVING age > 'x'",
    # join keys of other types
    "SELECT COUNT(*) FROM residents r JOIN clinic_visits v ON r.age = v.cost",
    "SELECT COUNT(*) FROM residents r JOIN clinic_visits v ON r.person_id = CAST(v.person_id AS VARCHAR)",
    "SELECT r.age, SUM(v.cost) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id "
    "WHERE CASE WHEN r.income > 1e300 THEN v.visit_date = 'garbage' ELSE false END GROUP BY r.age",
]


@pytest.mark.parametrize("sql", IMPLICIT_CASTS)
def test_implicit_cast_is_refused_or_identical(pair, sql):
    assert_same(pair, sql)


# -- 2. functions and argument extremes -----------------------------------------------------------
def _gate(trigger: str, expr: str, table: str = "residents") -> str:
    return f"SELECT COUNT(*) FROM {table} WHERE CASE WHEN {trigger} THEN {expr} ELSE false END"


FUNCTIONS = [_gate("income > 1e300", e) for e in [
    "SUBSTRING(district, 1000000, 1000000) = 'x'", "SUBSTRING(district, -1000000, 1000000) = 'x'",
    "SUBSTRING(district, 1, -1000000) = 'x'", "ROUND(income, 1000000) > 0", "ROUND(income, -1000000) > 0",
    "POWER(income, 1e308) > 0", "POWER(-income, 0.5) > 0", "SQRT(-income) > 0", "income % 0.0 > 0",
    "-9223372036854775808 % -1 = 0", "district LIKE '" + "%" * 60 + "_'", "district ILIKE '%Ω%'",
    "district LIKE '\\'", "district LIKE '[a-'", "district SIMILAR TO '('", "district GLOB '['",
    "length(upper(lower(trim(district || district || district)))) > 5", "TRIM(BOTH '区' FROM district) = 'x'",
    "TRIM(district, district) = 'x'", "CAST(income AS DECIMAL(38,38)) > 0", "CAST(income AS DECIMAL(1,0)) > 0",
    "CAST(income AS DECIMAL(38,0)) * CAST(income AS DECIMAL(38,0)) > 0",
    "CAST(income AS DECIMAL(38,10)) + CAST(income AS DECIMAL(38,10)) > 0",
    "TRY_CAST(district AS INTEGER) > 0", "CAST(CAST(income AS VARCHAR) AS DECIMAL(5,2)) > 0",
    "CAST(age AS BOOLEAN)", "CAST(income AS BOOLEAN)", "CAST(CAST(income AS BOOLEAN) AS INT) = 1",
    "CAST(income AS FLOAT) * CAST(income AS FLOAT) > 0", "FLOOR(CAST(income AS DECIMAL(18,2))) > 0",
    "CEIL(income * 1e308) > 0", "CAST(CEIL(income) AS BIGINT) > 0", "CONCAT(income, district, age) = 'x'",
    "1e308 * 10 > 0", "9223372036854775807 + 1 > 0",
    "CAST(9223372036854775807 AS BIGINT) + CAST(1 AS BIGINT) > 0",
    "170141183460469231731687303715884105727 + 1 > 0", "99999999999999999999999999999999999999.5 * 10 > 0",
    " * ".join(["0.5"] * 40) + " > 0", "CAST(0.5 AS DECIMAL(38,37)) * CAST(5 AS DECIMAL(38, 37)) > 0",
    "CAST(99 AS DECIMAL(38,36)) > 0", "CAST(99 AS DECIMAL(2,1)) > 0",
    "COALESCE(CAST(age AS DECIMAL(38,0)), CAST(1 AS DECIMAL(38,37))) > 0",
    "LEAST(CAST(age AS DECIMAL(38,0)), CAST(1 AS DECIMAL(38,37))) > 0",
    "CAST(age AS DECIMAL(18,0)) IN (CAST(1 AS DECIMAL(18,17)))",
    "age IN (0.00000000000000000000000000000000000001)", "age > 170141183460469231731687303715884105727",
    "CAST(age AS TINYINT) IN (1.5)", "CAST(1 AS DECIMAL(4,3)) = age",
]] + [_gate("age > 100", e) for e in [
    "ROUND(age, -19) > 0", "ROUND(CAST(age AS DECIMAL(38,0)) * 1e30, -37) > 0",
    "CAST(age AS BIGINT) // -1 * -9223372036854775808 > 0", "CAST(age AS TINYINT) + CAST(age AS TINYINT) > 0",
    "ABS(CAST(-age AS TINYINT)) > 0", "-CAST(age AS BIGINT) > 0", "-(-9223372036854775807 - 1) > 0",
    "CAST(age AS VARCHAR(1)) = '1'", "CAST(age AS TINYINT) = 1000", "COALESCE(CAST(age AS TINYINT), 1000) > 0",
    "LEAST(CAST(age AS TINYINT), 9223372036854775807) > 0", "CAST(age AS DECIMAL(38,0)) = 1.5",
    "CAST(age AS DECIMAL(18,0)) = 9223372036854775808", "CAST(age AS DECIMAL(18,0)) = 99999999999999999999",
    "age = 9223372036854775808", "CAST(age AS INT) = 9223372036854775808",
]] + [_gate("cost > 1e300", e, "clinic_visits") for e in [
    "EXTRACT(WEEK FROM visit_date) > 0", "week(visit_date) * quarter(visit_date) * dayofyear(visit_date) > 0",
    "date_part('dow', visit_date) > 0", "date_trunc('quarter', visit_date) > DATE '2020-01-01'",
    "date_trunc('day', visit_date) = visit_date", "length(CAST(visit_date AS VARCHAR)) > 0",
    "CONCAT(visit_date, department) = 'x'", "(visit_date - DATE '0001-01-01') // 0 > 0",
    "(visit_date - visit_date) % 7 = 0", "POWER(visit_date - DATE '2023-01-01', 1e6) > 0",
]] + [
    "SELECT COUNT(*) FROM residents WHERE SUBSTRING(district, age, 2) = 'x'",
]


@pytest.mark.parametrize("sql", FUNCTIONS)
def test_function_extreme_is_refused_or_identical(pair, sql):
    assert_same(pair, sql)


# -- 3. was a FINDING (fixed): DECIMAL(w, s) type mixes raised per row -----------------------------
#: DuckDB compares DECIMALs of different scales (or a DECIMAL with a BIGINT column, or with
#: a 39-digit literal) in a common DECIMAL type, and clamps an aggregated DECIMAL with
#: ``LEAST(GREATEST(v, lo), hi)`` in the DECIMAL's own type. A value that does not fit
#: (e.g. 20 or age 37 in DECIMAL(38,37), which holds |x| < 10) raises a ConversionException
#: *per row*: DuckDB's constant folding leaves the failing cast for run time, so the
#: empty-table check passes and the query is charged. Whether it then fails depends on
#: whether a row reaches the expression.
DECIMAL_ORACLES = [
    _gate("income > 1e300", "CAST(1 AS DECIMAL(38,37)) = age"),
    _gate("income > 1e300", "CAST(1 AS DECIMAL(38,37)) < age"),
    _gate("income > 1e300", "CAST(1 AS DECIMAL(38,37)) IN (age)"),
    _gate("income > 1e300", "age IN (CAST(1 AS DECIMAL(38,37)), 2)"),
    _gate("age > 100", "CAST(1 AS DECIMAL(38,37)) = age"),
    _gate("income > 1e300", "CAST(1 AS DECIMAL(38,37)) = length(district)"),
    _gate("cost > 1e300", "CAST(1 AS DECIMAL(38,37)) = year(visit_date)", "clinic_visits"),
    _gate("income > 1e300", "CAST(income AS DECIMAL(38,37)) = age"),
    _gate("income > 1e300", "CAST(age AS DECIMAL(38,0)) > 170141183460469231731687303715884105727"),
    _gate("income > 1e300", "CAST(age AS DECIMAL(38,0)) IN (CAST(1 AS DECIMAL(38,37)), 1)"),
    _gate("income > 1e300", "NULLIF(CAST(age AS DECIMAL(38,0)), CAST(1 AS DECIMAL(38,37))) > 0"),
    _gate("income > 1e300", "CAST(age AS DECIMAL(38,0)) BETWEEN CAST(1 AS DECIMAL(38,37)) AND 5"),
    _gate("income > 1e300", "CAST(age AS DECIMAL(38,0)) = CAST(1 AS DECIMAL(38,37))"),
    _gate("age > 100", "CAST(age AS DECIMAL(38,0)) = 1.0000000000000000000000000000000000005"),
    _gate("age > 100", "CAST(age AS DECIMAL(38,2)) = CAST(age AS DECIMAL(38,30))"),
    "SELECT COUNT(*) FROM residents WHERE CAST(CASE WHEN income > 1e300 THEN 1 ELSE 50 END AS DECIMAL(38,37)) < 20",
    "SELECT SUM(CASE WHEN income > 1e300 AND CAST(1 AS DECIMAL(38,37)) = age THEN 1 ELSE 0 END) FROM residents",
    # aggregates: the clamp LEAST(GREATEST(v, lo), hi) is evaluated in DECIMAL(38,37)
    "SELECT SUM(CAST(CASE WHEN income > 1e300 THEN 1 ELSE 50 END AS DECIMAL(38,37))) FROM residents",
    "SELECT MEDIAN(CAST(CASE WHEN income > 1e300 THEN 1 ELSE 50 END AS DECIMAL(38,37))) FROM residents",
    "SELECT AVG(CAST(CASE WHEN age > 100 THEN 1 ELSE income + 10 END AS DECIMAL(38,37))) FROM residents",
    "SELECT STDDEV(CAST(CASE WHEN age > 100 THEN 1 ELSE income + 10 END AS DECIMAL(38,37))) FROM residents",
]
#: Fixed in query_guard/rules/safe_arithmetic.py: a DECIMAL cast is rounded, then used as DOUBLE.


@pytest.mark.parametrize("sql", DECIMAL_ORACLES)
def test_decimal_type_mix_is_no_oracle(pair, sql):
    assert_same(pair, sql)


def _unique_resident(residents: pa.Table) -> tuple[str, float]:
    """A WHERE condition on quasi-identifiers that matches exactly one resident of D (aged
    10+, income 10+, so it does not fit DECIMAL(38,37)) and that resident's income."""
    qis = ("district", "age", "sex", "education", "employment")
    rows = residents.select([*qis, "income"]).to_pylist()
    counts: dict[tuple, int] = {}
    for r in rows:
        key = tuple(r[c] for c in qis)
        counts[key] = counts.get(key, 0) + 1
    for r in rows:
        key = tuple(r[c] for c in qis)
        if counts[key] == 1 and (r["age"] or 0) >= 10 and (r["income"] or 0) > 1000:
            cond = (f"district = '{r['district']}' AND age = {r['age']} AND sex = '{r['sex']}' AND "
                    f"education = '{r['education']}' AND employment = '{r['employment']}'")
            return cond, float(r["income"])
    raise AssertionError("no unique resident in the demo data")


def _income_probe(cond: str, threshold: float) -> str:
    return (f"SELECT COUNT(*) FROM residents WHERE CAST(CASE WHEN {cond} AND income > {threshold!r} "
            "THEN 1 END AS DECIMAL(38,37)) < 20")


def test_decimal_oracle_cannot_learn_one_residents_income(pair):
    cond, income = _unique_resident(pair.tables[0])
    below = outcome(pair.d, _income_probe(cond, income - 1.0), epsilon=0.001)
    above = outcome(pair.d, _income_probe(cond, income + 1.0), epsilon=0.001)
    assert (below.status, below.code) == (above.status, above.code), (below.short(), above.short())


# -- 4. aggregates, derived outputs and post-processing -------------------------------------------
AGGREGATES_AND_POST = [
    "SELECT district, POWER(SUM(income), 3) FROM residents GROUP BY district",
    "SELECT district, SUM(income) * 1e308 FROM residents GROUP BY district",
    "SELECT district, SUM(income) * 1e308 * 1e308 / 0 FROM residents GROUP BY district",
    "SELECT district, AVG(LEAST(GREATEST(income, 0), 1000)) FROM residents GROUP BY district",
    "SELECT district, SUM(income) / (COUNT(*) - COUNT(*)) FROM residents GROUP BY district",
    "SELECT district, COUNT(*) / 0 FROM residents GROUP BY district",
    "SELECT district, -COUNT(*) * 1e308 * 1e308 FROM residents GROUP BY district",
    "SELECT district, COUNT(*) * 9223372036854775807 * 9223372036854775807 FROM residents GROUP BY district",
    "SELECT district, COUNT(*) * 99999999999999999999999999999999999999 * 99999999999999999999999999999999999999 "
    "FROM residents GROUP BY district",
    "SELECT district, SUM(CAST(income AS DECIMAL(38,0))) FROM residents GROUP BY district",
    "SELECT district, AVG(income * 1e308) FROM residents GROUP BY district",
    "SELECT district, VARIANCE(income * 1e200) FROM residents GROUP BY district",
    "SELECT SUM(POWER(income, 10)) FROM residents",
    "SELECT MEDIAN(income) / (COUNT(*) - COUNT(*)) FROM residents",
    "SELECT SUM(CAST(CASE WHEN age > 100 THEN 1 END AS TINYINT)) FROM residents",
    "SELECT SUM(LEAST(GREATEST(CAST(CASE WHEN age > 100 THEN 1 END AS DECIMAL(38,37)), 0), 5)) FROM residents",
    "SELECT district, SUM(CAST(CASE WHEN age > 100 THEN 5 END AS DECIMAL(2,1))) FROM residents GROUP BY district",
    # HAVING / ORDER BY / LIMIT on noisy values
    "SELECT district, COUNT(*) AS c FROM residents GROUP BY district HAVING c > 1e308 * 10",
    "SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY CAST(COUNT(*) AS VARCHAR)",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING SUM(income) > 0",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING district LIKE '%区'",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING SUBSTRING(district, 1, 1) = '历'",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING COUNT(*) // 0 > 1",
    "SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY COUNT(*) % 0",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING CAST(COUNT(*) AS DECIMAL(38,37)) > 1",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING COUNT(*) = CAST(1 AS DECIMAL(38,37))",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING COUNT(*) IN (CAST(1 AS DECIMAL(38,37)))",
    "SELECT district, COUNT(*) FROM residents GROUP BY district ORDER BY CAST(COUNT(*) AS DECIMAL(38,37)) = 1 "
    "LIMIT 1",
    "SELECT district, COUNT(*) FROM residents GROUP BY district HAVING POWER(COUNT(*), 1e308) > 0 "
    "ORDER BY ROUND(COUNT(*), 1000000) LIMIT 10000",
    "SELECT age, COUNT(*) FROM residents GROUP BY age HAVING age = CAST(1 AS DECIMAL(38,37))",
    "SELECT district, COUNT(*) FROM residents GROUP BY district LIMIT 10001",
    "SELECT district, COUNT(*) FROM residents GROUP BY district LIMIT -1",
    "SELECT district, COUNT(*) FROM residents GROUP BY district LIMIT 1 OFFSET 1",
    "SELECT district, QUANTILE_CONT(income, [0.1, 0.5, 0.9]) AS q FROM residents GROUP BY district HAVING q > 5",
    "SELECT district, QUANTILE_CONT(income, [0.1, 0.5, 0.9]) AS q FROM residents GROUP BY district ORDER BY q",
]


@pytest.mark.parametrize("sql", AGGREGATES_AND_POST)
def test_aggregate_or_post_processing_is_refused_or_identical(pair, sql):
    assert_same(pair, sql)


# -- 5. partition selection (private group keys), quantiles, COUNT DISTINCT, joins -----------------
PARTITIONS_QUANTILES_JOINS = [
    "SELECT CAST(income AS BIGINT) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT ROUND(income, -5) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CAST(income AS DECIMAL(38,0)) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CAST(income * 0 + 9007199254740993 AS DECIMAL(38,0)) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT income AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CAST(income AS VARCHAR) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CAST(income AS BOOLEAN) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CAST(income * 0 AS DECIMAL(38,37)) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CAST(income > 1e300 AS VARCHAR) || district AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CASE WHEN income > 1e300 THEN 1e308 * 10 ELSE income * 0 END AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CASE WHEN income > 1e300 THEN CAST('nan' AS DOUBLE) ELSE income * 0 END AS k, COUNT(*) FROM residents "
    "GROUP BY k",
    "SELECT CAST(income AS BIGINT) AS k, CAST(age AS BIGINT) AS k2, COUNT(*) FROM residents GROUP BY k, k2",
    "SELECT CASE WHEN income > 1e300 THEN CAST(income * 0 + 9007199254740993 AS BIGINT) ELSE 1 END AS k, COUNT(*) "
    "FROM residents GROUP BY k",
    "SELECT MEDIAN(income) FROM residents",
    "SELECT QUANTILE_CONT(income, 0.0) FROM residents",
    "SELECT QUANTILE_CONT(income, 1.0) FROM residents",
    "SELECT QUANTILE_CONT(income, 1.5) FROM residents",
    "SELECT QUANTILE_CONT(income, -0.5) FROM residents",
    "SELECT QUANTILE_CONT(income, [0.1, 0.9]) FROM residents",
    "SELECT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY income) FROM residents",
    "SELECT MEDIAN(CASE WHEN income > 1e300 THEN 1e308 ELSE 0 END) FROM residents",
    "SELECT MEDIAN(visit_date) FROM clinic_visits",
    "SELECT MEDIAN(district) FROM residents",
    "SELECT QUANTILE_CONT(income, age) FROM residents",
    "SELECT MEDIAN(CAST(CASE WHEN age > 100 THEN 1 END AS DECIMAL(38,37))) FROM residents",
    "SELECT QUANTILE_CONT(CAST(CASE WHEN age > 100 THEN 5 END AS DECIMAL(38,37)), 0.9) FROM residents",
    "SELECT COUNT(DISTINCT CAST(income AS VARCHAR)) FROM residents",
    "SELECT COUNT(DISTINCT district || CAST(age AS VARCHAR)) FROM residents",
    "SELECT COUNT(DISTINCT person_id) FROM clinic_visits",
    "SELECT COUNT(DISTINCT visit_date) FROM clinic_visits",
    "SELECT SUM(DISTINCT income) FROM residents",
    "SELECT AVG(DISTINCT age) FROM residents",
    "SELECT COUNT(DISTINCT income) FROM residents WHERE income > 1e300",
    "SELECT COUNT(*) FROM residents r LEFT JOIN clinic_visits v ON r.person_id = v.person_id",
    "SELECT COUNT(*) FROM residents r JOIN residents r2 ON r.person_id = r2.person_id",
    "SELECT COUNT(*) FROM residents r JOIN clinic_visits v USING (person_id)",
    "SELECT COUNT(*) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id AND r.income > 1e300",
    "SELECT COUNT(*) FROM residents r JOIN (SELECT person_id FROM clinic_visits WHERE cost > 1e300) v "
    "ON r.person_id = v.person_id",
    "SELECT r.district, COUNT(DISTINCT r.person_id) FROM residents r JOIN clinic_visits v "
    "ON r.person_id = v.person_id WHERE v.cost > 1e300 GROUP BY r.district",
    "SELECT v.department, AVG(r.income) FROM residents r JOIN clinic_visits v ON r.person_id = v.person_id "
    "GROUP BY v.department",
    "SELECT CAST(r.income AS BIGINT) AS k, COUNT(*) FROM residents r JOIN clinic_visits v "
    "ON r.person_id = v.person_id GROUP BY k",
]


@pytest.mark.parametrize("sql", PARTITIONS_QUANTILES_JOINS)
def test_partition_quantile_distinct_join_is_refused_or_identical(pair, sql):
    assert_same(pair, sql)


#: Accepted, charged, then failing on every dataset alike: no oracle (the same on D and D′),
#: but a charge for nothing, and "post-processing never raises" does not hold.
#: Were charged and then failed on every dataset (fixed: integers beyond ±(2^53 − 1) are
#: released as text; DECIMAL casts are used as DOUBLE).
CHARGED_FOR_NOTHING = [
    # a released integer group key ≥ 2^53: audit_log canonical JSON (RFC 8785 I-JSON) refused it
    # in the query.released entry (EntryError) → query_failed after the charge
    "SELECT CAST(income * 0 + 9007199254740993 AS BIGINT) AS k, COUNT(*) FROM residents GROUP BY k",
    "SELECT CAST(age * 0 + 9007199254740993 AS BIGINT) AS k, COUNT(*) FROM residents GROUP BY k",
    # the DECIMAL clamp again, on every dataset (incomes below 10 exist)
    "SELECT MEDIAN(CAST(income AS DECIMAL(38,37))) FROM residents",
]


@pytest.mark.parametrize("sql", CHARGED_FOR_NOTHING)
def test_accepted_query_is_not_charged_for_a_certain_failure(pair, sql):
    assert_same(pair, sql)


# -- 6. malformed requests over HTTP --------------------------------------------------------------
@pytest.fixture(scope="module")
def http(demo_template, tmp_path_factory):
    root = tmp_path_factory.mktemp("red-team-http") / "ws"
    shutil.copytree(demo_template, root)
    sb, creds = setup_demo(root, rows=DEMO_ROWS, url="http://127.0.0.1:0", say=lambda _m: None)
    conn = sb.conn()
    with transaction(conn):
        WORKFLOW_SETTINGS.set(conn, "auto_suspend_refusals", 0)
        RATE_SETTINGS.set(conn, "rate_limit_per_token", 0)
        RATE_SETTINGS.set(conn, "rate_limit_per_address", 0)
    client = create_app(sb, {"TESTING": True}).test_client()
    yield sb, creds, client
    sb.close()


ENDPOINTS = ("/api/v1/queries", "/api/v1/queries/preview", "/api/v1/queries/dummy")
GOOD_SQL = "SELECT COUNT(*) FROM residents"
BIG = "1" + "0" * 400  # a 401-digit integer
#: (label, field, raw JSON value): each makes one field of a valid body malformed.
BAD_FIELDS = [
    ("eps-nan", "epsilon", "NaN"), ("eps-inf", "epsilon", "Infinity"), ("eps-neginf", "epsilon", "-Infinity"),
    ("eps-1e999", "epsilon", "1e999"), ("eps-big", "epsilon", BIG), ("eps-1e-300", "epsilon", "1e-300"),
    ("eps-subnormal", "epsilon", "5e-324"), ("eps-neg0", "epsilon", "-0.0"), ("eps-true", "epsilon", "true"),
    ("eps-str", "epsilon", '"0.5"'), ("eps-list", "epsilon", "[0.5]"), ("eps-obj", "epsilon", '{"v": 0.5}'),
    ("conf-nan", "confidence", "NaN"), ("conf-big", "confidence", BIG), ("conf-null", "confidence", "null"),
    ("conf-1", "confidence", "1"), ("conf-obj", "confidence", "{}"),
    ("appr-big", "approval_id", BIG), ("appr-2^63", "approval_id", str(2**63)),
    ("appr-neg", "approval_id", str(-(2**63) - 1)), ("appr-1e999", "approval_id", "1e999"),
    ("appr-nan", "approval_id", "NaN"), ("appr-float", "approval_id", "1.5"), ("appr-true", "approval_id", "true"),
    ("appr-list", "approval_id", "[1]"), ("appr-obj", "approval_id", '{"id": 1}'),
    ("appr-surrogate", "approval_id", '"\\ud800"'), ("appr-long", "approval_id", json.dumps("9" * 100_000)),
    ("appr-nul", "approval_id", '"1\\u0000"'), ("appr-null", "approval_id", "null"),
    ("appr-4300-digits", "approval_id", json.dumps("9" * 4300)),
    ("sql-surrogate", "sql", json.dumps("SELECT COUNT(*) FROM residents -- \ud800")),
    ("sql-surrogate-literal", "sql", json.dumps("SELECT COUNT(*) FROM residents WHERE district = '\udfff'")),
    ("sql-nul", "sql", json.dumps("SELECT COUNT(*) FROM residents\x00; DROP TABLE x")),
    ("sql-long", "sql", json.dumps("SELECT COUNT(*) FROM residents --" + "x" * 100_001)),
    ("sql-20001", "sql", json.dumps("SELECT COUNT(*) FROM residents --" + "x" * 20_001)),
    ("sql-blank", "sql", '"   "'), ("sql-obj", "sql", '{"q": "SELECT 1"}'), ("sql-list", "sql", '["SELECT 1"]'),
    ("sql-num", "sql", "1"), ("sql-null", "sql", "null"),
    ("sql-deep-parens", "sql", json.dumps("SELECT COUNT(*) FROM residents WHERE " + "(" * 5000 + "1=1"
                                          + ")" * 5000)),
]
#: Was a FINDING (fixed in sandbox/store/fields.py ident): an id of more than 4300 digits as a
#: *string* made ``int()`` raise (Python's int_max_str_digits): an unlogged 500.
BAD_FIELDS = [pytest.param(*b, id=b[0]) for b in BAD_FIELDS]
#: Odd but legal SQL text: accepted and released like any query (never a 5xx).
ODD_SQL = [
    "SELECT COUNT(*) FROM residents WHERE district = '\x00'",
    "SELECT COUNT(*) FROM residents WHERE district = '\u202e区'",
    "SELECT COUNT(*) FROM residents WHERE district = '\ufeff历下区' -- \u2028 \U0001F600",
]
PREVIEW_FIELDS = [
    ("rows-big", "expected_rows", BIG), ("rows-nan", "expected_rows", "NaN"), ("rows-1e999", "expected_rows", "1e999"),
    ("rows-0", "expected_rows", "0"), ("rows-float", "expected_rows", "1.5"), ("rows-true", "expected_rows", "true"),
    ("rows-str", "expected_rows", '"5"'), ("acc-nan", "accuracy", '{"column": "COUNT(*)", "half_width": NaN}'),
    ("acc-inf", "accuracy", '{"column": "COUNT(*)", "half_width": 1e999}'),
    ("acc-zero", "accuracy", '{"column": "COUNT(*)", "half_width": 0}'),
    ("acc-tiny", "accuracy", '{"column": "COUNT(*)", "half_width": -5e-324}'),
    ("acc-big", "accuracy", '{"column": "COUNT(*)", "half_width": ' + BIG + '}'),
    ("acc-conf", "accuracy", '{"column": "COUNT(*)", "half_width": 1, "confidence": NaN}'),
    ("acc-col-num", "accuracy", '{"column": 5, "half_width": 1}'),
    ("acc-col-surrogate", "accuracy", '{"column": "\\ud800", "half_width": 1}'),
    ("acc-list", "accuracy", "[]"), ("acc-str", "accuracy", '"x"'),
]
DUMMY_FIELDS = [("dummy-false", "dummy", "false"), ("dummy-1", "dummy", "1"), ("dummy-str", "dummy", '"true"')]


def _body(approval_id: int, field: str, raw: str) -> bytes:
    parts = {"approval_id": str(approval_id), "sql": json.dumps(GOOD_SQL), "epsilon": "0.01"}
    parts[field] = raw
    return ("{" + ", ".join(f'"{k}": {v}' for k, v in parts.items()) + "}").encode("utf-8", "surrogatepass")


def _ledger(sb) -> tuple[float, int]:
    row = sb.conn().execute("SELECT COALESCE(SUM(epsilon), 0), COUNT(*) FROM ledger").fetchone()
    return float(row[0]), int(row[1])


def _actions_after(sb, seq: int) -> list[str]:
    return [r[0] for r in sb.conn().execute(
        "SELECT json_extract(entry, '$.action') FROM audit_entries WHERE seq > ? ORDER BY seq", (seq,))]


def _last_seq(sb) -> int:
    return sb.conn().execute("SELECT COALESCE(MAX(seq), 0) FROM audit_entries").fetchone()[0]


def _post_refused(http, path: str, data: bytes, content_type: str = "application/json") -> dict:
    """POST ``data``; assert a 4xx JSON error, nothing charged; return the error object."""
    sb, creds, client = http
    before, seq = _ledger(sb), _last_seq(sb)
    resp = client.post(path, data=data, headers={**bearer(creds["researcher"]["token"]),
                                                 "Content-Type": content_type})
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:300])
    body = resp.get_json()
    assert body and isinstance(body.get("error"), dict) and body["error"].get("code"), body
    assert _ledger(sb) == before, "a malformed request was charged"
    assert "query.started" not in _actions_after(sb, seq)
    return body["error"]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(("label", "field", "raw"), BAD_FIELDS)
def test_malformed_field_is_a_4xx_never_charged(http, path, label, field, raw):
    sb, creds, _client = http
    seq = _last_seq(sb)
    err = _post_refused(http, path, _body(creds["researcher"]["approval_id"], field, raw))
    if field != "approval_id" and err["code"] not in ("missing_sql", "invalid_json"):
        # the approval was valid: the refusal is logged like any other (issue 12, finding 4)
        assert "query.refused" in _actions_after(sb, seq), (label, err)


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("sql", ODD_SQL)
def test_odd_but_legal_sql_text_is_served(http, path, sql):
    sb, creds, client = http
    resp = client.post(path, json={"approval_id": creds["researcher"]["approval_id"], "sql": sql,
                                   "epsilon": 0.01}, headers=bearer(creds["researcher"]["token"]))
    assert resp.status_code == 200, (resp.status_code, resp.get_data(as_text=True)[:300])


@pytest.mark.parametrize(("label", "field", "raw"), PREVIEW_FIELDS, ids=[b[0] for b in PREVIEW_FIELDS])
def test_malformed_preview_field_is_a_4xx(http, label, field, raw):
    _post_refused(http, "/api/v1/queries/preview", _body(http[1]["researcher"]["approval_id"], field, raw))


@pytest.mark.parametrize(("label", "field", "raw"), DUMMY_FIELDS, ids=[b[0] for b in DUMMY_FIELDS])
def test_malformed_dummy_field_is_a_4xx(http, label, field, raw):
    _post_refused(http, "/api/v1/queries/dummy", _body(http[1]["researcher"]["approval_id"], field, raw))


RAW_BODIES = [
    ("invalid-utf8", b'{"approval_id": 1, "sql": "SELECT COUNT(*) FROM residents -- \xff\xfe"}', "application/json"),
    ("latin1-declared", b'{"approval_id": 1, "sql": "SELECT 1 -- \xe9"}', "application/json; charset=latin-1"),
    ("nul-bytes", b'{"approval_id": 1, "sql": "SELECT\x00COUNT(*) FROM residents"}', "application/json"),
    ("deep-array", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    ("deep-object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "application/json"),
    ("top-array", b"[1, 2]", "application/json"), ("top-string", b'"x"', "application/json"),
    ("top-number", b"1e999", "application/json"), ("empty", b"", "application/json"),
    ("text-plain", b'{"approval_id": 1, "sql": "SELECT COUNT(*) FROM residents"}', "text/plain"),
    ("form", b"approval_id=1&sql=SELECT+COUNT(*)+FROM+residents", "application/x-www-form-urlencoded"),
    ("multipart", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x"),
    ("bom", b'\xef\xbb\xbf{"approval_id": 1, "sql": "SELECT 1"', "application/json"),
    ("huge-int-literal", b'{"approval_id": ' + b"9" * 5000 + b', "sql": "SELECT 1"}', "application/json"),
    ("truncated", b'{"approval_id": 1, "sql": "SELECT', "application/json"),
]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize(("label", "data", "ctype"), RAW_BODIES, ids=[b[0] for b in RAW_BODIES])
def test_malformed_body_is_a_4xx_never_charged(http, path, label, data, ctype):
    _post_refused(http, path, data, ctype)


def test_duplicate_keys_cannot_smuggle_a_second_value(http):
    """Python's JSON keeps the last duplicate: the check and the use must read the same one."""
    sb, creds, client = http
    aid = creds["researcher"]["approval_id"]
    data = (f'{{"approval_id": {aid}, "sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.01, '
            f'"epsilon": 1e-300}}').encode()
    _post_refused(http, "/api/v1/queries", data)


# -- 7. concurrency: parallel identical and parallel failing queries near the budget -------------
def _small_approval(env: Env, epsilon_total: float, per_query: float) -> int:
    sb = env.sb
    conn = sb.conn()
    owner = find_user(conn, "owner")
    admin = SandboxAdmin(sb)
    app_id = admin.apply(env.researcher, {"datasets": ["residents"], "scenario": "red team small",
                                          "purpose": "red team concurrency", "commitment_accepted": True})
    return admin.approve(owner, app_id, {"datasets": ["residents"]}, epsilon_total=epsilon_total,
                         delta_total=1e-6, epsilon_per_query=per_query)


def _parallel(env: Env, approval_id: int, sqls: list[str], epsilon: float) -> list[str]:
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(sqls))

    def worker(sql: str) -> None:
        barrier.wait()
        try:
            env.sb.run_query(env.researcher, QueryRequest(approval_id, sql, epsilon))
            code = "released"
        except QueryFailed as err:
            code = err.code
        except Exception as err:  # noqa: BLE001 - every outcome is counted
            code = getattr(err, "code", type(err).__name__)
        with lock:
            results.append(code)

    threads = [threading.Thread(target=worker, args=(s,)) for s in sqls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _spent(env: Env, approval_id: int) -> tuple[float, int]:
    row = env.sb.conn().execute("SELECT COALESCE(SUM(epsilon), 0), COUNT(*) FROM ledger WHERE approval_id = ?",
                                (approval_id,)).fetchone()
    return float(row[0]), int(row[1])


def test_parallel_failing_queries_never_overspend(pair, monkeypatch):
    """12 distinct queries that each fail after the charge (the engine raises), ε 0.4 each, on
    an approval of ε 1: at most two are charged; every charge has a start and an outcome entry."""
    env = pair.d
    aid = _small_approval(env, 1.0, 0.4)
    seq = env.sb.conn().execute("SELECT COALESCE(MAX(seq), 0) FROM audit_entries").fetchone()[0]

    def fail(*_a, **_k):
        threading.Event().wait(0.02)
        raise EngineFailure("the query could not be executed by the engine")

    monkeypatch.setattr(env.sb.executor, "run", fail)
    sqls = [f"SELECT COUNT(*) FROM residents WHERE age > {i}" for i in range(12)]
    codes = _parallel(env, aid, sqls, 0.4)
    spent, charges = _spent(env, aid)
    assert spent <= 1.0 + 1e-9 and charges <= 2, (spent, charges, codes)
    assert len(codes) == 12 and "released" not in codes
    actions = [r[0] for r in env.sb.conn().execute(
        "SELECT json_extract(entry, '$.action') FROM audit_entries WHERE seq > ? AND "
        "json_extract(entry, '$.details.approval_id') = ?", (seq, aid))]
    assert actions.count("query.started") == charges
    assert actions.count("query.failed") == charges
    assert actions.count("query.refused") == 12 - charges


def test_parallel_identical_queries_are_charged_once(pair):
    env = pair.d
    aid = _small_approval(env, 1.0, 0.2)
    codes = _parallel(env, aid, ["SELECT COUNT(*) FROM residents WHERE age >= 18"] * 8, 0.2)
    spent, charges = _spent(env, aid)
    assert codes.count("released") == 8, codes
    assert charges == 1 and math.isclose(spent, 0.2), (spent, charges)


def test_parallel_distinct_queries_stop_at_the_budget(pair):
    env = pair.d
    aid = _small_approval(env, 0.5, 0.1)
    codes = _parallel(env, aid, [f"SELECT COUNT(*) FROM residents WHERE age >= {i}" for i in range(10)], 0.1)
    spent, charges = _spent(env, aid)
    assert spent <= 0.5 + 1e-9 and charges == codes.count("released") <= 5, (spent, charges, codes)


def test_a_refusal_costs_nothing_even_at_the_floor(pair):
    """ε at the floor (0.001) is accepted; just below it is refused, uncharged, logged."""
    on_d = outcome(pair.d, "SELECT COUNT(*) FROM residents WHERE age > 3", epsilon=0.001)
    assert on_d.status == "released" and math.isclose(on_d.epsilon, 0.001)
    below = outcome(pair.d, "SELECT COUNT(*) FROM residents WHERE age > 4", epsilon=0.000999)
    own = tuple(a for a in below.actions if a.startswith("query."))  # not the alert pass's (issue 19)
    assert (below.status, below.code, below.epsilon, own) == ("refused", "bad_epsilon", 0, ("query.refused",))


assert EPSILON > 0  # the neighbours' default ε is what every comparison above charges
