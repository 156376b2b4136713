"""Routing a plan to its datasets' engine: refusals are logged, free and data-independent."""

from __future__ import annotations

from sandbox.governance import datasets
from sandbox.store.workspace import transaction
from tests.conftest import bearer


def ask(client, creds, sql):
    token = bearer(creds["researcher"]["token"])
    approval = creds["researcher"]["approval_id"]
    before = client.get(f"/api/v1/approvals/{approval}/budget", headers=token).json
    r = client.post("/api/v1/queries", json={"approval_id": approval, "sql": sql, "epsilon": 0.1}, headers=token)
    after = client.get(f"/api/v1/approvals/{approval}/budget", headers=token).json
    return r, before == after


def refusals(sb, code):
    return sb.conn().execute("SELECT COUNT(*) FROM audit_entries WHERE json_extract(entry, '$.action') = "
                             "'query.refused' AND json_extract(entry, '$.details.code') = ?", (code,)).fetchone()[0]


def test_duckdb_answers_by_default(client, creds):
    r, _ = ask(client, creds, "SELECT COUNT(*) FROM residents")
    assert r.status_code == 200 and r.json["engine"] == "duckdb"


def test_a_query_over_both_engines_is_refused_before_data(client, creds, demo):
    sb, _ = demo
    conn = sb.conn()
    visits = datasets.get_version(conn, "clinic_visits")
    with transaction(conn):  # as if clinic_visits were held on the cluster
        conn.execute("UPDATE dataset_versions SET file_name = 'spark:parquet:/nowhere.parquet' WHERE id = ?",
                     (visits.version_id,))
    sql = ("SELECT r.district, COUNT(*) FROM clinic_visits v JOIN residents r ON v.person_id = r.person_id "
           "GROUP BY r.district")
    r, free = ask(client, creds, sql)
    assert r.status_code == 400 and r.json["error"]["code"] == "engine_mixed", r.json
    assert free and refusals(sb, "engine_mixed") == 1


def test_a_version_held_elsewhere_than_its_policy_says_is_refused(client, creds, demo):
    sb, _ = demo
    conn = sb.conn()
    v = datasets.get_version(conn, "residents")
    text = v.policy.source_text.replace("[dataset]\n", '[dataset]\nengine = "spark"\n', 1)
    assert 'engine = "spark"' in text
    with transaction(conn):
        conn.execute("UPDATE dataset_versions SET policy_toml = ? WHERE id = ?", (text, v.version_id))
    r, free = ask(client, creds, "SELECT COUNT(*) FROM residents")
    assert r.status_code in (400, 422) and r.json["error"]["code"] == "engine_unsupported", r.json
    assert free
