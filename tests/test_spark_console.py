"""The console's result view says which engine answered (issue 16, "Operations")."""

from __future__ import annotations

import pytest
from spark_support import needs_spark, spark_engine  # noqa: F401
from test_console import app, client_for, run_query, text  # noqa: F401
from test_spark_cluster import move_to_spark


def shown_engine(app, demo) -> str:  # noqa: F811
    _sb, creds = demo
    c = client_for(app, "researcher", lang="en")
    resp = run_query(c, creds["researcher"]["approval_id"])
    assert resp.status_code == 303
    page = text(c.get(resp.headers["Location"]))
    start = page.index('id="engine-badge">') + len('id="engine-badge">')
    return page[start:page.index("<", start)]


def test_the_result_names_duckdb(app, demo):  # noqa: F811
    assert shown_engine(app, demo) == "engine: DuckDB"


@pytest.mark.spark
@needs_spark
def test_the_result_names_spark(app, demo, spark_engine, tmp_path):  # noqa: F811
    move_to_spark(demo[0], tmp_path, spark_engine)
    assert shown_engine(app, demo) == "engine: Apache Spark"
