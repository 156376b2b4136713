"""Oversight fixes of issue 14: the transparency page counts releases and ε per dataset from the
queries that read it (not the approval's totals); the regulator's audit filter by dataset
includes refusals and failures."""

from __future__ import annotations

import pytest

from sandbox.web import create_app
from sandbox.web.console import queries as console_queries
from tests.test_workflow_support import bearer, demo_copy


@pytest.fixture
def env(demo_template, tmp_path):
    sb, creds = demo_copy(demo_template, tmp_path)
    return sb, create_app(sb, {"TESTING": True}).test_client(), creds


def test_transparency_counts_per_dataset_from_the_queries_that_read_it(env):
    sb, client, creds = env
    me, approval = bearer(creds["researcher"]["token"]), creds["researcher"]["approval_id"]
    q = client.post("/api/v1/queries", headers=me, json={
        "approval_id": approval, "sql": "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department",
        "epsilon": 0.5})
    assert q.status_code == 200, q.json
    page = {d["dataset"]: d for d in client.get("/api/v1/transparency").json["datasets"]}
    (visits,) = [p for p in page["clinic_visits"]["projects"] if p["approval_id"] == approval]
    (residents,) = [p for p in page["residents"]["projects"] if p["approval_id"] == approval]
    assert visits["releases"] == 1 and visits["budget"]["epsilon_spent"] == pytest.approx(q.json["epsilon_spent"])
    assert residents["releases"] == 0 and residents["budget"]["epsilon_spent"] == 0
    assert residents["budget"]["approval_epsilon_spent"] == pytest.approx(q.json["epsilon_spent"])


def test_audit_filter_by_dataset_includes_refusals(env):
    sb, client, creds = env
    me, approval = bearer(creds["researcher"]["token"]), creds["researcher"]["approval_id"]
    r = client.post("/api/v1/queries", headers=me, json={"approval_id": approval, "sql": "SELECT name FROM residents"})
    assert r.status_code == 400
    entries = console_queries.timeline(sb.conn(), console_queries.TimelineFilter(dataset="residents"))
    assert "query.refused" in {e["action"] for e in entries}
    other = console_queries.timeline(sb.conn(), console_queries.TimelineFilter(dataset="permits"))
    assert "query.refused" not in {e["action"] for e in other}
