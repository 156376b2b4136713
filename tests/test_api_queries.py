"""The walk of one query through the HTTP API (issue: foundation)."""

from __future__ import annotations

import pytest

from tests.conftest import bearer

FOUNDATION_QUERIES = [
    ("SELECT COUNT(*) FROM residents", 1),
    ("SELECT district, COUNT(*) FROM residents GROUP BY district", 12),
    ("SELECT district, AVG(income) FROM residents GROUP BY district", 12),
    ("SELECT COUNT(*) FROM clinic_visits", 1),
    ("SELECT department, COUNT(*) FROM clinic_visits GROUP BY department", 8),
    ("SELECT department, AVG(cost) FROM clinic_visits GROUP BY department", 8),
]


def budget(client, creds):
    r = client.get(f"/api/v1/approvals/{creds['researcher']['approval_id']}/budget",
                   headers=bearer(creds["researcher"]["token"]))
    assert r.status_code == 200, r.json
    return r.json


def post(client, creds, body, token=None):
    return client.post("/api/v1/queries", json=body, headers=bearer(token or creds["researcher"]["token"]))


def audit_count(demo, action):
    sb, _ = demo
    return sb.conn().execute(
        "SELECT COUNT(*) FROM audit_entries WHERE json_extract(entry, '$.action') = ?", (action,)
    ).fetchone()[0]


@pytest.mark.parametrize("sql,groups", FOUNDATION_QUERIES)
def test_query_releases_noisy_table_and_charges_exactly(client, creds, demo, sql, groups):
    before = budget(client, creds)
    released_before = audit_count(demo, "query.released")
    r = post(client, creds, {"approval_id": creds["researcher"]["approval_id"], "sql": sql, "epsilon": 0.5})
    assert r.status_code == 200, r.json
    body = r.json
    assert set(body) >= {"query_id", "columns", "rows", "accuracy", "epsilon_spent", "budget", "receipt"}
    assert len(body["rows"]) == groups
    assert 0 < body["epsilon_spent"] <= 0.5
    after = budget(client, creds)
    assert after["epsilon"]["spent"] == pytest.approx(before["epsilon"]["spent"] + body["epsilon_spent"], abs=1e-12)
    assert body["budget"]["epsilon"]["spent"] == pytest.approx(after["epsilon"]["spent"])
    assert audit_count(demo, "query.released") == released_before + 1
    measure_cols = [c for c in body["columns"] if c in body["accuracy"]]
    assert measure_cols, "every aggregate carries its accuracy"
    for c in measure_cols:
        intervals = body["accuracy"][c]["intervals"]
        assert len(intervals) == groups and all(lo <= hi for lo, hi in intervals)


def test_same_query_again_is_served_from_cache_for_free(client, creds):
    body = {"approval_id": creds["researcher"]["approval_id"], "sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.25}
    first = post(client, creds, body).json
    spent = budget(client, creds)["epsilon"]["spent"]
    body["sql"] = "select   count(*)   from RESIDENTS"
    second = post(client, creds, body).json
    assert second["cached"] is True and second["rows"] == first["rows"]
    assert second["epsilon_spent"] == 0
    assert budget(client, creds)["epsilon"]["spent"] == spent


def test_over_budget_is_refused_without_release_or_charge(client, creds, demo):
    approval = creds["researcher"]["approval_id"]
    for i in range(10):  # ε = 1 each: spends the whole budget of 10
        r = post(client, creds, {"approval_id": approval, "epsilon": 1.0,
                                 "sql": f"SELECT COUNT(*) FROM residents WHERE age > {i}"})
        assert r.status_code == 200, r.json
    spent = budget(client, creds)["epsilon"]["spent"]
    released = audit_count(demo, "query.released")
    r = post(client, creds, {"approval_id": approval, "epsilon": 1.0, "sql": "SELECT COUNT(*) FROM residents WHERE age > 50"})
    assert r.status_code == 409
    assert r.json["error"]["code"] == "budget_exceeded"
    assert budget(client, creds)["epsilon"]["spent"] == spent
    assert audit_count(demo, "query.released") == released


BAD_INPUTS = [
    ("no token", None, {"json": {"approval_id": 1, "sql": "SELECT COUNT(*) FROM residents"}}, 401),
    ("wrong token", "sbx_wrong", {"json": {"approval_id": 1, "sql": "SELECT COUNT(*) FROM residents"}}, 401),
    ("empty body", "researcher", {"data": b"", "content_type": "application/json"}, 400),
    ("invalid json", "researcher", {"data": b"{not json", "content_type": "application/json"}, 400),
    ("json array", "researcher", {"json": [1, 2]}, 400),
    ("unknown approval", "researcher", {"json": {"approval_id": 999, "sql": "SELECT COUNT(*) FROM residents"}}, 404),
    ("another user's approval", "owner", {"json": {"approval_id": "APPROVAL", "sql": "SELECT COUNT(*) FROM residents"}}, 404),
    ("syntax error", "researcher", {"json": {"approval_id": "APPROVAL", "sql": "SELECT COUNT(* FROM residents"}}, 400),
    ("drop table", "researcher", {"json": {"approval_id": "APPROVAL", "sql": "DROP TABLE residents"}}, 400),
    ("identifier column", "researcher", {"json": {"approval_id": "APPROVAL", "sql": "SELECT name FROM residents"}}, 400),
    ("epsilon over cap", "researcher", {"json": {"approval_id": "APPROVAL", "sql": "SELECT COUNT(*) FROM residents", "epsilon": 5}}, 400),
    ("epsilon not a number", "researcher", {"json": {"approval_id": "APPROVAL", "sql": "SELECT COUNT(*) FROM residents", "epsilon": "1"}}, 400),
    ("sql not a string", "researcher", {"json": {"approval_id": "APPROVAL", "sql": 42}}, 400),
]


@pytest.mark.parametrize("case,who,kwargs,status", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_error_shape_and_costs_nothing(client, creds, case, who, kwargs, status):
    before = budget(client, creds)["epsilon"]["spent"]
    headers = {}
    if who in ("researcher", "owner"):
        headers = bearer(creds[who]["token"])
    elif who:
        headers = bearer(who)
    if "json" in kwargs and isinstance(kwargs["json"], dict):
        kwargs = {"json": {k: (creds["researcher"]["approval_id"] if v == "APPROVAL" else v)
                           for k, v in kwargs["json"].items()}}
    r = client.post("/api/v1/queries", headers=headers, **kwargs)
    assert r.status_code == status, (case, r.status_code, r.data[:300])
    err = r.json["error"]
    assert isinstance(err["code"], str) and err["code"]
    assert isinstance(err["message"], str) and err["message"]
    assert budget(client, creds)["epsilon"]["spent"] == before


def test_sql_refusal_names_position(client, creds):
    r = post(client, creds, {"approval_id": creds["researcher"]["approval_id"],
                             "sql": "SELECT COUNT(*)\nFROM residents\nWHERE  id_number = '370102199001011234'"})
    assert r.status_code == 400
    err = r.json["error"]
    assert err["position"] == {"line": 3, "column": 8}
    assert "id_number" in err["message"]


def test_refusals_are_logged(client, creds, demo):
    before = audit_count(demo, "query.refused")
    post(client, creds, {"approval_id": creds["researcher"]["approval_id"], "sql": "DROP TABLE residents"})
    assert audit_count(demo, "query.refused") == before + 1


def test_unknown_endpoint_and_method_use_error_shape(client, creds):
    r = client.get("/api/v1/nope", headers=bearer(creds["researcher"]["token"]))
    assert r.status_code == 404 and "error" in r.json
    r = client.get("/api/v1/queries", headers=bearer(creds["researcher"]["token"]))
    assert r.status_code == 405 and "error" in r.json


def test_datasets_listing_hides_nothing_it_should_show(client, creds):
    r = client.get("/api/v1/datasets", headers=bearer(creds["researcher"]["token"]))
    names = {d["name"] for d in r.json["datasets"]}
    assert names == {"residents", "clinic_visits"}
