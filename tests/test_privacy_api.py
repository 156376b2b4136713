"""POST /api/v1/queries/preview and /queries/dummy: free, marked, and never touching data."""

from __future__ import annotations

import datetime as dt

import pyarrow.compute as pc
import pytest

from sandbox.governance import datasets
from sandbox.service.dummy import dummy_table
from tests.conftest import bearer


def post(client, creds, path, body):
    return client.post(path, json={"approval_id": creds["researcher"]["approval_id"], **body},
                       headers=bearer(creds["researcher"]["token"]))


def budget(client, creds):
    return client.get(f"/api/v1/approvals/{creds['researcher']['approval_id']}/budget",
                      headers=bearer(creds["researcher"]["token"])).json


def audit_count(sb, action):
    return sb.conn().execute(
        "SELECT COUNT(*) FROM audit_entries WHERE json_extract(entry, '$.action') = ?", (action,)
    ).fetchone()[0]


def test_preview_gives_cost_and_accuracy_and_spends_nothing(client, creds, demo):
    sb, _ = demo
    before, released = budget(client, creds), audit_count(sb, "query.released")
    r = post(client, creds, "/api/v1/queries/preview",
             {"sql": "SELECT district, COUNT(*) AS n, AVG(income) AS a FROM residents GROUP BY district",
              "epsilon": 0.5})
    assert r.status_code == 200, r.json
    body = r.json
    assert body["preview"] is True and 0 < body["cost"]["epsilon"] <= 0.5
    assert body["columns"]["n"]["half_width"] > 0 and body["columns"]["a"]["half_width"] is None
    assert body["affordable"] is True and body["within_per_query_cap"] is True
    assert budget(client, creds)["epsilon"]["spent"] == before["epsilon"]["spent"]
    assert audit_count(sb, "query.released") == released


def test_target_accuracy_is_met_by_the_real_release(client, creds):
    sql = "SELECT district, COUNT(*) AS n FROM residents GROUP BY district"
    pv = post(client, creds, "/api/v1/queries/preview",
              {"sql": sql, "accuracy": {"column": "n", "half_width": 50, "confidence": 0.9}}).json
    assert pv["confidence"] == 0.9 and pv["columns"]["n"]["half_width"] <= 50
    real = post(client, creds, "/api/v1/queries", {"sql": sql, "epsilon": pv["epsilon"], "confidence": 0.9})
    assert real.status_code == 200, real.json
    assert real.json["epsilon_spent"] == pytest.approx(pv["cost"]["epsilon"], rel=1e-12)
    for lo, hi in real.json["accuracy"]["n"]["intervals"]:
        assert (hi - lo) / 2 <= 50 + 1e-9


def test_average_target_needs_expected_rows(client, creds):
    sql = "SELECT AVG(age) AS a FROM residents"
    r = post(client, creds, "/api/v1/queries/preview", {"sql": sql, "accuracy": {"column": "a", "half_width": 1}})
    assert r.status_code == 400 and r.json["error"]["code"] == "accuracy_unavailable"
    r = post(client, creds, "/api/v1/queries/preview",
             {"sql": sql, "accuracy": {"column": "a", "half_width": 1}, "expected_rows": 3000})
    assert r.status_code == 200 and r.json["columns"]["a"]["half_width"] <= 1


@pytest.mark.parametrize("body,code", [
    ({"sql": "SELECT name FROM residents"}, None),
    ({"sql": "SELECT COUNT(*) FROM residents", "accuracy": {"half_width": 3}}, "bad_accuracy"),
    ({"sql": "SELECT COUNT(*) FROM residents", "expected_rows": -1}, "bad_expected_rows"),
    ({"sql": "SELECT COUNT(*) FROM residents", "epsilon": 50}, "bad_epsilon"),
])
def test_preview_errors_have_the_error_shape(client, creds, body, code):
    r = post(client, creds, "/api/v1/queries/preview", body)
    assert r.status_code == 400
    assert set(r.json["error"]) >= {"code", "message"}
    if code:
        assert r.json["error"]["code"] == code


def test_preview_refusal_is_logged_like_a_query(client, creds, demo):
    sb, _ = demo
    refused = audit_count(sb, "query.refused")
    post(client, creds, "/api/v1/queries/preview", {"sql": "SELECT id_number FROM residents"})
    assert audit_count(sb, "query.refused") == refused + 1


def test_dummy_run_is_free_marked_and_never_reads_the_data(client, creds, demo, monkeypatch):
    sb, _ = demo

    def forbidden(_version):
        raise AssertionError("a dummy run read private data")

    monkeypatch.setattr(sb.tables, "get", forbidden)
    before = budget(client, creds)["epsilon"]["spent"]
    r = post(client, creds, "/api/v1/queries/dummy",
             {"sql": "SELECT department, COUNT(*), AVG(cost) FROM clinic_visits GROUP BY department"})
    assert r.status_code == 200, r.json
    body = r.json
    assert body["dummy"] is True and body["receipt"]["dummy"] is True and body["epsilon_spent"] == 0
    assert len(body["rows"]) == 8 and "dummy run" in body["notes"][0]
    # the same accuracy shape as a real release: [lower, upper], public range, flags, note
    acc = body["accuracy"]
    assert set(acc) == {body["columns"][1], body["columns"][2]}
    for col in acc.values():
        assert len(col["intervals"]) == len(col["not_informative"]) == 8
        assert all(isinstance(f, bool) for f in col["not_informative"])
        assert len(col["public_range"]) == 2
    assert "bias that bounding introduces" in body["accuracy_note"]
    assert budget(client, creds)["epsilon"]["spent"] == before
    assert audit_count(sb, "query.dummy") == 1


def test_dummy_table_follows_the_public_schema_only(demo):
    sb, _ = demo
    for v in datasets.latest_versions(sb.conn()):
        table = dummy_table(v.policy)
        assert table.equals(dummy_table(v.policy))  # deterministic: seeded by the name only
        for col in v.policy.columns.values():
            values = table.column(col.name)
            if col.public_values:
                assert set(values.to_pylist()) <= set(col.public_values)
            bounds = col.bounds
            if bounds and col.type in ("int", "float"):
                assert bounds[0] <= pc.min(values).as_py() and pc.max(values).as_py() <= bounds[1]
            if bounds and col.type == "date":
                assert isinstance(values[0].as_py(), dt.date)
                assert bounds[0] <= pc.min(values).as_py() <= pc.max(values).as_py() <= bounds[1]
        unit = table.column(v.policy.privacy_unit)
        per_unit = pc.max(pc.value_counts(unit).field("counts")).as_py()
        assert per_unit <= (1 if v.policy.one_row_per_unit else 20)
