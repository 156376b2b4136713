"""Equivalence (issue 16, "Must show"): every accepted guard fixture gives the same exact
pre-noise aggregates on DuckDB and on Spark local mode over the same data.

No noise is involved: this compares the engines' exact results (the test-only harness is
the comparison itself; the service never returns them). Both sides rank rows for the
bounding pass with ``spark_sql.portable_hash`` (DuckDB's native HASH has no Spark twin,
see docs/decisions/0015); plans without a bounding pass run DuckDB's production SQL as is.
"""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest
from spark_support import needs_spark, spark_engine  # noqa: F401
from test_guard_support import CATALOG, SCENARIOS, all_cases, with_rowid
from test_guard_totality import ordinary

from query_guard import plan
from sandbox.engine.spark_sql import spark_sql, with_portable_hashes

pytestmark = [pytest.mark.spark, needs_spark]

ACCEPTED = [c for c in all_cases() if c.outcome == "accept"]
DATES = frozenset({"visit_date"})


@pytest.fixture(scope="module")
def both(spark_engine, tmp_path_factory):  # noqa: F811
    """The same tables in DuckDB (Arrow, row index) and Spark (Parquet, row index)."""
    data = ordinary()
    folder = tmp_path_factory.mktemp("spark-eq")
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    for name, table in data.items():
        pq.write_table(table, folder / f"{name}.parquet")
        spark_engine.register(name, f"parquet:{folder / name}.parquet")
        con.register(name, with_rowid(table))
    return con, spark_engine


def normal(result: dict[str, list]) -> list[tuple]:
    """Rows as sorted tuples; histogram maps (DuckDB: dict or pairs; Spark: pairs) sorted."""
    def cell(v):
        if isinstance(v, dict):
            return tuple(sorted(v.items()))
        if isinstance(v, list):
            return tuple(sorted(tuple(x) if isinstance(x, list) else x for x in v))
        return v

    names = sorted(result)
    return [tuple(names)] + sorted((tuple(cell(result[n][i]) for n in names)
                                    for i in range(len(result[names[0]]) if names else 0)), key=repr)


def test_there_are_many_accepted_fixtures():
    assert len(ACCEPTED) > 150


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_same_exact_aggregates_on_duckdb_and_spark(both, case):
    con, spark = both
    p = plan(case.sql, SCENARIOS[case.expect.get("scenario", "default")], CATALOG)
    duck_sql = with_portable_hashes(p.engine_query, "duckdb").sql("duckdb")
    if p.materialisation is None:
        assert duck_sql == p.engine_sql("duckdb")  # production SQL, unchanged
    duck = con.sql(duck_sql).to_arrow_table().to_pydict()
    sparked = spark.execute(spark_sql(p.engine_query, DATES)).to_pydict()
    assert normal(sparked) == normal(duck), case.sql
