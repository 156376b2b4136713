"""``sandbox engines list|check`` (issue 16, "Operations")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from spark_support import needs_spark

from sandbox.cli.main import cli


def test_engines_list_shows_connections_and_datasets(demo):
    sb, _ = demo
    (sb.ws.root / "engines.toml").write_text('[spark]\nmaster = "spark://10.1.2.3:7077"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["engines", "list", "--json", "--data-dir", str(sb.ws.root)])
    assert result.exit_code == 0, result.output
    rows = {r["engine"]: r for r in json.loads(result.output)}
    assert rows["duckdb"]["default"] and rows["duckdb"]["connection"].startswith("embedded")
    assert "residents" in rows["duckdb"]["datasets"] and "clinic_visits" in rows["duckdb"]["datasets"]
    assert rows["spark"]["connection"] == "spark://10.1.2.3:7077" and rows["spark"]["datasets"] == []


def test_an_unknown_default_engine_is_refused(demo):
    sb, _ = demo
    (sb.ws.root / "engines.toml").write_text('[engines]\ndefault = "hadoop"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["engines", "list", "--data-dir", str(sb.ws.root)])
    assert result.exit_code != 0


def test_engines_check_duckdb(demo):
    sb, _ = demo
    result = CliRunner().invoke(cli, ["engines", "check", "--engine", "duckdb", "--data-dir", str(sb.ws.root)])
    assert result.exit_code == 0, result.output
    assert "duckdb: ok" in result.output


@pytest.mark.spark
@pytest.mark.slow
@needs_spark
def test_engines_check_spark_in_its_own_process(demo):
    """A real ``sandbox engines check`` (its own JVM); a master nobody listens on fails."""
    sb, _ = demo
    env = {**os.environ, "SANDBOX_SPARK_MASTER": "local[1]"}
    ok = subprocess.run([sys.executable, "-m", "sandbox.cli", "engines", "check", "--engine", "spark", "--json",
                         "--data-dir", str(sb.ws.root)], env=env, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    (row,) = json.loads(ok.stdout)
    assert row["ok"] and "locked down" in row["detail"]
