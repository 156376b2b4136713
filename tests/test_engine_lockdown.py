"""Even SQL that bypassed the guard cannot touch files, extensions or settings (SECURITY)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sandbox.engine.embedded import Engine
from sandbox.errors import EngineFailure

HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM '/etc/passwd'",
    "COPY (SELECT 1) TO '/tmp/sandbox-escape.csv'",
    "ATTACH '/tmp/sandbox-escape.db' AS x",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "SET memory_limit = '100GB'",
    "SELECT * FROM read_parquet('https://example.org/x.parquet')",
    "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "SELECT * FROM glob('/etc/*')",
    "EXPORT DATABASE '/tmp/sandbox-export'",
    "SELECT getenv('HOME')",
]


@pytest.fixture(scope="module")
def engine():
    return Engine()


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_sql_fails_generically(engine, sql, tmp_path):
    with pytest.raises(EngineFailure) as info:
        engine.execute(sql, {"t": pa.table({"a": [1]})})
    assert info.value.message == "the query could not be executed by the engine"


def test_settings_stay_locked(engine):
    engine.self_check()
    rows = dict(engine._con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', 'temp_directory', "
        "'allowed_directories', 'lock_configuration')").fetchall())
    assert rows["enable_external_access"] == "false"
    assert rows["lock_configuration"] == "true"
    assert rows["temp_directory"] == ""
    assert rows["allowed_directories"] == "[]"


def test_engine_error_never_echoes_data(engine):
    secret = "370102199001011234"
    with pytest.raises(EngineFailure) as info:
        engine.execute("SELECT CAST(s AS INTEGER) FROM t", {"t": pa.table({"s": [secret]})})
    assert secret not in str(info.value)


def test_python_variables_are_not_scannable(engine):
    secret_table = pa.table({"x": [1]})  # noqa: F841 - the point is that SQL cannot see it
    with pytest.raises(EngineFailure):
        engine.execute("SELECT * FROM secret_table", {})


def test_registered_tables_do_not_outlive_the_query(engine):
    engine.execute("SELECT COUNT(*) FROM t", {"t": pa.table({"a": [1, 2]})})
    with pytest.raises(EngineFailure):
        engine.execute("SELECT COUNT(*) FROM t", {})
