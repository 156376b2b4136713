"""Registering a dataset the bureau already holds on Spark (a Parquet/ORC path or a table).

The data stays where it is: the version row records ``spark:<source>`` instead of a
workspace file, and queries read it through a temporary view (``sandbox.engine.routing``).
Registration runs the same checks as for a local file — the policy against the schema,
identifiers in column names, the privacy unit present on every row, one row per person
when declared, the risk scan (第十二条) — over the rows read through Spark.

Limit (docs/decisions/0015): those checks run in this process over the rows Spark
returns, so registration needs the dataset to fit in the registering process's memory
(queries do not). Computing the scan inside Spark is future work.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3

import pyarrow as pa

from sandbox.clock import Clock, iso
from sandbox.engine.routing import SPARK_PREFIX
from sandbox.engine.spark import SparkEngine
from sandbox.governance import risk_scan
from sandbox.governance.datasets import DatasetVersion, conformed, get_version
from sandbox.governance.policy import PolicyError, parse_policy


def read_source(engine: SparkEngine, source: str) -> pa.Table:
    """Every row of ``source`` as Arrow, through Spark (without the engine's row id)."""
    view = "__register_" + secrets.token_hex(4)
    engine.register(view, source)
    return engine.session.table(view).drop("__rowid").toArrow()


def register_spark_dataset(conn: sqlite3.Connection, engine: SparkEngine, name: str, source: str,
                           policy_text: str, *, now: Clock, policy_path: str = "<policy>") -> DatasetVersion:
    """Check and record a new, unpublished version read from ``source`` on Spark."""
    policy = parse_policy(policy_text, policy_path)
    if policy.name != name:
        raise PolicyError(f"{policy_path}: dataset.name is {policy.name!r} but the dataset is being added as {name!r}")
    table = read_source(engine, source)
    table, units = conformed(table, policy, policy_path)
    owner = conn.execute("SELECT id, role FROM users WHERE username = ?", (policy.owner,)).fetchone()
    if owner is None or owner["role"] != "owner":
        raise PolicyError(f"{policy_path}: dataset.owner {policy.owner!r} is not a user with the owner role")
    report = risk_scan.scan(table, {c.name: c.sensitivity for c in policy.columns.values()},
                            privacy_unit=policy.privacy_unit, dataset=name)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    content_hash = "sha256:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    existing = conn.execute("SELECT id, owner_id FROM datasets WHERE name = ?", (name,)).fetchone()
    if existing is None:
        cur = conn.execute(
            "INSERT INTO datasets (name, title, owner_id, tier, created_at, org_id) VALUES (?,?,?,?,?,"
            "(SELECT org_id FROM users WHERE id = ?))",
            (name, policy.title, owner["id"], policy.tier, iso(now()), owner["id"]))
        dataset_id, version = int(cur.lastrowid), 1  # type: ignore[arg-type]
    else:
        if existing["owner_id"] != owner["id"]:
            raise PolicyError(f"{policy_path}: dataset {name!r} belongs to another owner")
        dataset_id = int(existing["id"])
        version = 1 + conn.execute("SELECT COALESCE(MAX(version), 0) FROM dataset_versions WHERE dataset_id = ?",
                                   (dataset_id,)).fetchone()[0]
    cur = conn.execute(
        "INSERT INTO dataset_versions (dataset_id, version, policy_toml, content_hash, file_name, "
        "row_count, unit_count, encrypted, wrapped_key, bounding_seed, created_at, risk_report) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (dataset_id, version, policy_text, content_hash, SPARK_PREFIX + source, table.num_rows, units,
         0, None, secrets.token_hex(16), iso(now()), json.dumps(report, ensure_ascii=False)))
    return get_version(conn, name, version_id=int(cur.lastrowid))  # type: ignore[arg-type]
