"""Totality on Spark (issue 16; issue 12 finding 1; docs/guard.md "Total expressions").

Spark's ANSI mode and cast rules differ from DuckDB's, so the totality cases are run on
Spark separately: each accepted case of the totality fixture files runs on the
adversarial tables (BIGINT extremes, NaN/±inf, dates at ±5,000,000 years, long and
non-ASCII text, NULLs) without an error, and gives the same outcome class on the ordinary
tables D and their neighbour D′ (D plus one extreme person). Plus the lockdown itself:
ANSI off, no file paths as tables, no unknown functions.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from spark_support import needs_spark, spark_engine  # noqa: F401
from test_guard_support import CATALOG, SCENARIOS, cases
from test_guard_totality import ADVERSARIAL, D_PRIME, D

from query_guard import plan
from sandbox.engine.spark import LOCKED_CONF
from sandbox.engine.spark_sql import SparkUnsupported, spark_sql
from sandbox.errors import EngineFailure

pytestmark = [pytest.mark.spark, needs_spark]

RULES = ("total_expressions", "safe_arithmetic", "type_bounds")
ACCEPTED = [c for rule in RULES for c in cases(rule) if c.outcome == "accept"]


@pytest.fixture(scope="module")
def tables(spark_engine, tmp_path_factory):  # noqa: F811
    """Each table set as Spark views ``<set>_<table>``."""
    folder = tmp_path_factory.mktemp("spark-total")
    for label, data in (("adv", ADVERSARIAL), ("d", D), ("dp", D_PRIME)):
        for name, table in data.items():
            path = folder / f"{label}_{name}.parquet"
            pq.write_table(table, path)
            spark_engine.register(f"{label}_{name}", f"parquet:{path}")
    return spark_engine


def sql_for(case, label: str) -> str:
    p = plan(case.sql, SCENARIOS[case.expect.get("scenario", "default")], CATALOG)
    tree = p.engine_query.copy()
    from sqlglot import exp

    for table in tree.find_all(exp.Table):
        if table.name in ("residents", "clinic_visits"):
            table.set("this", exp.to_identifier(f"{label}_{table.name}"))
    return spark_sql(tree, frozenset({"visit_date"}))


def test_the_session_is_locked_down(spark_engine):  # noqa: F811
    info = spark_engine.self_check()
    assert info["spark.sql.ansi.enabled"] == "false"
    assert {k: info[k] for k in LOCKED_CONF} == LOCKED_CONF
    with pytest.raises(EngineFailure):  # a file path as a table: runSQLOnFiles is off
        spark_engine.execute("SELECT COUNT(*) FROM parquet.`/etc/passwd`")


def test_functions_the_guard_did_not_make_are_refused():
    from sqlglot import parse_one

    for text in ("SELECT read_files('/etc') FROM t", "SELECT my_udf(x) FROM t", "SELECT reflect('java.lang.Runtime', 'x')"):
        with pytest.raises(SparkUnsupported):
            spark_sql(parse_one(text, read="duckdb"))


def test_there_are_totality_cases():
    assert len(ACCEPTED) > 40


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_accepted_case_runs_on_adversarial_tables_and_neighbours_agree(tables, case):
    tables.execute(sql_for(case, "adv"))  # raises EngineFailure on any Spark error
    d = tables.execute(sql_for(case, "d"))
    dp = tables.execute(sql_for(case, "dp"))
    assert d.column_names == dp.column_names  # same outcome class: both ran


def test_huge_round_scales_are_clamped():
    """ROUND(x, 1000000) took ~20 s per query on Spark (a BigDecimal of that scale): a time
    channel. Past ±400 digits no DOUBLE or BIGINT changes, so the scale is clamped."""
    p = plan("SELECT COUNT(*) FROM residents WHERE ROUND(income, 1000000) > 0 AND ROUND(age, -99999) = 0",
             SCENARIOS["default"], CATALOG)
    text = spark_sql(p.engine_query)
    assert "1000000" not in text and "99999" not in text
    assert ", 400)" in text and ", -400)" in text
