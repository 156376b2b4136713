"""Shared Spark fixtures (no tests here): one local SparkSession per test session.

Why one: a JVM start takes 10–40 s on two shared cores. Tests needing Spark are marked
``@pytest.mark.spark`` and skip cleanly only when Java or pyspark is absent.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

HAVE_SPARK = shutil.which("java") is not None and importlib.util.find_spec("pyspark") is not None
needs_spark = pytest.mark.skipif(not HAVE_SPARK, reason="Java or pyspark is not installed")

#: Quick settings for tiny tables: one shuffle partition, no whole-stage code generation
#: (its compile time dominates on a few rows), no adaptive re-planning.
TEST_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.adaptive.enabled": "false",
}


@pytest.fixture(scope="session")
def spark_engine():
    from sandbox.engine.spark import SparkEngine, SparkSettings

    engine = SparkEngine(SparkSettings(master="local[2]", conf=TEST_CONF, timeout_seconds=120))
    yield engine
    engine.stop()
