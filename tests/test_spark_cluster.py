"""Spark beyond local mode, through the API (issue 16, "Must show"): a standalone master
and one worker on 127.0.0.1 started from the installed pyspark, the demo datasets
registered on it as Spark datasets (Parquet paths), the demo queries run through the
HTTP API; and the timeout that cancels a Spark job with the charge standing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from spark_support import TEST_CONF, needs_spark, spark_engine  # noqa: F401

from sandbox.engine.routing import SparkExecutor
from sandbox.engine.spark import SparkEngine, SparkSettings
from sandbox.engine.spark_datasets import register_spark_dataset
from sandbox.errors import EngineFailure
from sandbox.governance import datasets
from sandbox.store.workspace import transaction
from sandbox.web import create_app
from tests.conftest import bearer

pytestmark = [pytest.mark.spark, pytest.mark.slow, needs_spark]

DEMO_QUERIES = [
    "SELECT COUNT(*) FROM residents",
    "SELECT district, COUNT(*) FROM residents GROUP BY district",
    "SELECT district, AVG(income) FROM residents GROUP BY district",
    "SELECT department, AVG(cost) FROM clinic_visits GROUP BY department",
    "SELECT department, MEDIAN(cost) FROM clinic_visits GROUP BY department",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_class() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


def move_to_spark(sb, folder: Path, engine: SparkEngine) -> None:
    """Register each demo dataset again as a Spark dataset (its rows as a Parquet file),
    publish it, and let the sandbox's Spark executor use ``engine``."""
    conn = sb.conn()
    for v in datasets.latest_versions(conn):
        path = folder / f"{v.name}.parquet"
        pq.write_table(sb.tables.get(v).drop_columns(["__rowid"]), path)
        with transaction(conn):
            new = register_spark_dataset(conn, engine, v.name, f"parquet:{path}", v.policy.source_text,
                                         now=sb.now)
            owner = conn.execute("SELECT id FROM users WHERE username = ?", (v.policy.owner,)).fetchone()[0]
            datasets.publish(conn, new.version_id, owner, "moved to Spark", now=sb.now)
    sb.engines._spark = SparkExecutor(engine)


def run_demo_queries(client, creds) -> list[dict]:
    out = []
    for sql in DEMO_QUERIES:
        r = client.post("/api/v1/queries", json={"approval_id": creds["researcher"]["approval_id"], "sql": sql,
                                                 "epsilon": 0.1},
                        headers=bearer(creds["researcher"]["token"]))
        assert r.status_code == 200, (sql, r.json)
        assert r.json["engine"] == "spark"
        assert r.json["rows"]
        out.append(r.json)
    return out


@pytest.fixture
def cluster(spark_engine, tmp_path):  # noqa: F811
    """A standalone master and one worker on 127.0.0.1 (stopped afterwards)."""
    spark_engine.stop()  # one SparkContext per JVM: the local session restarts lazily later
    port = free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(tmp_path),
           "SPARK_WORKER_DIR": str(tmp_path / "work"),
           "PYSPARK_PYTHON": sys.executable}
    logs = [open(tmp_path / name, "w") for name in ("master.log", "worker.log")]  # noqa: SIM115
    master = subprocess.Popen(
        [spark_class(), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
         "--webui-port", str(free_port())], env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    url = f"spark://127.0.0.1:{port}"
    worker = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(1)
        worker = subprocess.Popen(
            [spark_class(), "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1",
             "--cores", "2", "--memory", "1g", "--webui-port", str(free_port())],
            env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        yield url
    finally:
        for proc in (worker, master):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        for log in logs:
            log.close()


def test_demo_queries_through_the_api_on_a_standalone_cluster(cluster, demo, tmp_path):
    sb, creds = demo
    engine = SparkEngine(SparkSettings(master=cluster, conf={**TEST_CONF, "spark.cores.max": "2",
                                                              "spark.executor.memory": "768m"}))
    try:
        move_to_spark(sb, tmp_path, engine)
        assert engine.session.sparkContext.master == cluster
        client = create_app(sb, {"TESTING": True}).test_client()
        released = run_demo_queries(client, creds)
        assert all(r["epsilon_spent"] > 0 for r in released)
    finally:
        engine.stop()


def test_timeout_cancels_the_spark_job(spark_engine):  # noqa: F811
    slow = "SELECT COUNT(*) FROM range(100000000) a CROSS JOIN range(100000) b WHERE a.id % 7 = b.id % 5"
    started = time.monotonic()
    with pytest.raises(EngineFailure) as info:
        spark_engine.execute(slow, timeout_seconds=3)
    assert info.value.code == "query_timeout"
    assert time.monotonic() - started < 60
    tracker = spark_engine.session.sparkContext.statusTracker()
    deadline = time.monotonic() + 30
    while tracker.getActiveJobsIds() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not tracker.getActiveJobsIds()  # the job group was cancelled, not left running


def test_a_spark_timeout_keeps_the_charge(spark_engine, demo, tmp_path):  # noqa: F811
    """Charge first: the query is charged and logged before Spark reads anything; a timeout
    is the one generic failure and the charge stands."""
    sb, creds = demo
    move_to_spark(sb, tmp_path, spark_engine)
    client = create_app(sb, {"TESTING": True}).test_client()
    approval = creds["researcher"]["approval_id"]
    token = bearer(creds["researcher"]["token"])
    before = client.get(f"/api/v1/approvals/{approval}/budget", headers=token).json
    original = spark_engine.settings
    spark_engine.settings = SparkSettings(master=original.master, conf=original.conf, timeout_seconds=0.001)
    try:
        r = client.post("/api/v1/queries", json={"approval_id": approval, "epsilon": 0.1,
                                                 "sql": "SELECT district, COUNT(*) FROM residents GROUP BY district"},
                        headers=token)
    finally:
        spark_engine.settings = original
    assert r.status_code >= 400 and r.json["error"]["code"] == "query_failed", r.json
    after = client.get(f"/api/v1/approvals/{approval}/budget", headers=token).json
    assert after != before  # charged
    failed = sb.conn().execute("SELECT COUNT(*) FROM audit_entries WHERE json_extract(entry, '$.action') = "
                               "'query.failed'").fetchone()[0]
    assert failed == 1
