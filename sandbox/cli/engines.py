"""``sandbox engines list|check`` and ``sandbox engines add-spark NAME SOURCE --policy P``.

``list`` shows each engine's connection (from ``<workspace>/engines.toml`` (the ``--data-dir`` folder), see
``sandbox.engine.routing``) and which datasets use it, without starting anything; ``check``
starts each engine, runs its lockdown self-check and a trivial query, and exits 1 if one
is unhealthy.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.cli.options import DATA_DIR, json_flag
from sandbox.clock import utc_now
from sandbox.engine.embedded import Engine
from sandbox.engine.routing import declared_engine, engine_of, load_config
from sandbox.engine.spark import SparkEngine
from sandbox.engine.spark_datasets import register_spark_dataset
from sandbox.errors import SandboxError
from sandbox.governance import datasets
from sandbox.governance.policy import load_policy
from sandbox.store.workspace import Workspace, transaction


@click.group("engines")
def engines_group() -> None:
    """Show and check the query engines (DuckDB, Spark)."""


def _open(data_dir: Path | None):
    ws = Workspace.open(data_dir)
    return ws, load_config(ws.root)


@engines_group.command("list")
@DATA_DIR
@json_flag("Print JSON.")
def engines_list(data_dir: Path | None, as_json: bool) -> None:
    """Each engine, its connection and the datasets it answers for."""

    try:
        ws, config = _open(data_dir)
        versions = datasets.latest_versions(ws.connect(), include_unpublished=True)
    except SandboxError as err:
        raise click.ClickException(err.message) from None
    rows = [
        {"engine": "duckdb", "connection": "embedded (in process)", "default": config.default == "duckdb",
         "datasets": sorted(v.name for v in versions if engine_of(v, config.default) == "duckdb")},
        {"engine": "spark", "connection": config.spark.master, "default": config.default == "spark",
         "datasets": sorted(v.name for v in versions if engine_of(v, config.default) == "spark")},
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        mark = " (default)" if r["default"] else ""
        click.echo(f"{r['engine']}{mark}: {r['connection']}; datasets: {', '.join(r['datasets']) or '-'}")


@engines_group.command("check")
@DATA_DIR
@click.option("--engine", "only", type=click.Choice(["duckdb", "spark"]), default=None, help="Check one engine.")
@json_flag("Print JSON.")
def engines_check(data_dir: Path | None, only: str | None, as_json: bool) -> None:
    """Start each engine, verify its lockdown and run SELECT 1; exit 1 if one fails."""

    try:
        _ws, config = _open(data_dir)
    except SandboxError as err:
        raise click.ClickException(err.message) from None
    results = []
    if only in (None, "duckdb"):
        try:
            Engine().execute("SELECT 1 AS ok", {})
            results.append({"engine": "duckdb", "ok": True, "detail": "locked down; SELECT 1 ran"})
        except Exception as exc:  # report, never crash the check
            results.append({"engine": "duckdb", "ok": False, "detail": type(exc).__name__})
    if only in (None, "spark"):
        spark = SparkEngine(config.spark)
        try:
            info = spark.self_check()
            spark.execute("SELECT 1 AS ok", timeout_seconds=config.spark.timeout_seconds)
            results.append({"engine": "spark", "ok": True,
                            "detail": f"Spark {info['version']} at {info['master']}; locked down; SELECT 1 ran"})
        except Exception as exc:
            results.append({"engine": "spark", "ok": False, "detail": f"{type(exc).__name__}: {exc}"[:300]})
        finally:
            spark.stop()
    if as_json:
        click.echo(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for r in results:
            click.echo(f"{r['engine']}: {'ok' if r['ok'] else 'FAILED'} ({r['detail']})")
    if not all(r["ok"] for r in results):
        raise SystemExit(1)


@engines_group.command("add-spark")
@DATA_DIR
@click.argument("name")
@click.argument("source")
@click.option("--policy", "policy_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def engines_add_spark(data_dir: Path | None, name: str, source: str, policy_path: Path) -> None:
    """Register SOURCE (parquet:PATH, orc:PATH or table:DB.NAME) held on Spark as dataset
    NAME: the same checks as ``datasets add``; the data stays on the cluster."""

    try:
        ws, config = _open(data_dir)
        conn = ws.connect()

        if declared_engine(load_policy(policy_path), config.default) != "spark":
            raise click.ClickException(f"{policy_path}: the dataset is not declared for Spark: set engine = "
                                       "\"spark\" under [dataset] (or the workspace default in engines.toml)")
        spark = SparkEngine(config.spark)
        try:
            with transaction(conn):
                v = register_spark_dataset(conn, spark, name, source, policy_path.read_text(encoding="utf-8"),
                                           now=utc_now, policy_path=str(policy_path))
        finally:
            spark.stop()
    except SandboxError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"registered {v.name} version {v.version} on Spark ({v.row_count:,} rows, "
               f"{v.unit_count:,} persons); publish it as with datasets add")
