"""The OpenAPI document matches the routes actually registered, and real responses match
its schemas (issue 8: "an OpenAPI 3 document … that matches the implementation")."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from sandbox.web.api.openapi import openapi_path
from tests.conftest import bearer

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _doc(client) -> dict:
    r = client.get("/api/v1/openapi.json")
    assert r.status_code == 200
    return r.json


def _validator(doc: dict, schema_name: str) -> Draft202012Validator:
    """A validator for one component schema, resolving ``#/components/...`` refs in the document."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "$ref": f"#/components/schemas/{schema_name}",
    }
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _response_schema(doc: dict, method: str, path: str, status: int) -> str:
    responses = doc["paths"][path][method]["responses"]
    entry = responses.get(str(status)) or responses["default"]
    return entry["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


def assert_matches(doc: dict, method: str, path: str, response) -> None:
    name = _response_schema(doc, method, path, response.status_code)
    errors = sorted(_validator(doc, name).iter_errors(response.json), key=str)
    assert not errors, (
        f"{method.upper()} {path} {response.status_code} vs {name}: {errors[0].message} at {list(errors[0].path)}"
    )


def test_document_lists_exactly_the_registered_routes(client):
    doc = _doc(client)
    assert doc["openapi"].startswith("3.1")
    app = client.application
    registered = {
        (method.lower(), openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") or rule.rule == "/healthz"
        for method in rule.methods - IGNORED_METHODS
    }
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "the OpenAPI document lists routes that do not exist"


def test_document_is_well_formed(client):
    doc = _doc(client)
    for name in doc["components"]["schemas"]:
        _validator(doc, name)  # check_schema raises on a bad schema
    for path, item in doc["paths"].items():
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == {s[1:-1] for s in path.split("/") if s.startswith("{")}, path
            assert "default" in op["responses"] or path == "/healthz", (method, path)
    ops = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ops) == len(set(ops)), "operationIds are unique"


@pytest.mark.parametrize(
    "path,schema",
    [
        ("/api/v1/queries", "QueryRequest"),
        ("/api/v1/queries/preview", "PreviewRequest"),
        ("/api/v1/applications", "ApplicationRequest"),
        ("/api/v1/applications/{application_id}/decision", "DecisionRequest"),
        ("/api/v1/suspensions", "SuspensionRequest"),
    ],
)
def test_request_bodies_are_described(client, path, schema):
    doc = _doc(client)
    body = doc["paths"][path]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["$ref"].endswith("/" + schema)


def test_the_document_is_public_and_cacheable_json(client):
    r = client.get("/api/v1/openapi.json")  # no token
    assert r.status_code == 200 and r.mimetype == "application/json"


def test_real_responses_match_the_schemas(client, creds):
    doc = _doc(client)
    h = bearer(creds["researcher"]["token"])
    approval = creds["researcher"]["approval_id"]
    ok = client.post(
        "/api/v1/queries",
        headers=h,
        json={
            "approval_id": approval,
            "sql": "SELECT district, AVG(income) FROM residents GROUP BY district",
            "epsilon": 0.5,
        },
    )
    assert ok.status_code == 200
    assert_matches(doc, "post", "/api/v1/queries", ok)
    cached = client.post(
        "/api/v1/queries",
        headers=h,
        json={
            "approval_id": approval,
            "sql": "SELECT district, AVG(income) FROM residents GROUP BY district",
            "epsilon": 0.5,
        },
    )
    assert cached.json["cached"] is True
    assert_matches(doc, "post", "/api/v1/queries", cached)

    refused = client.post(
        "/api/v1/queries",
        headers=h,
        json={"approval_id": approval, "sql": "SELECT name FROM residents"},
    )
    assert refused.status_code == 400
    assert_matches(doc, "post", "/api/v1/queries", refused)
    syntax = client.post(
        "/api/v1/queries",
        headers=h,
        json={"approval_id": approval, "sql": "SELECT COUNT(* FROM residents"},
    )
    assert syntax.status_code == 400 and "position" in syntax.json["error"]
    assert_matches(doc, "post", "/api/v1/queries", syntax)

    for i in range(10):  # spend the rest of the budget (10 in the demo), then one more
        client.post(
            "/api/v1/queries",
            headers=h,
            json={
                "approval_id": approval,
                "epsilon": 1.0,
                "sql": f"SELECT COUNT(*) FROM residents WHERE age > {i}",
            },
        )
    over = client.post(
        "/api/v1/queries",
        headers=h,
        json={
            "approval_id": approval,
            "epsilon": 1.0,
            "sql": "SELECT COUNT(*) FROM residents WHERE age > 77",
        },
    )
    assert over.status_code == 409 and over.json["error"]["code"] == "budget_exceeded"
    assert_matches(doc, "post", "/api/v1/queries", over)

    unauth = client.post("/api/v1/queries", json={"approval_id": approval, "sql": "SELECT 1"})
    assert unauth.status_code == 401
    assert_matches(doc, "post", "/api/v1/queries", unauth)

    budget = client.get(f"/api/v1/approvals/{approval}/budget", headers=h)
    assert_matches(doc, "get", "/api/v1/approvals/{approval_id}/budget", budget)
    datasets = client.get("/api/v1/datasets", headers=h)
    assert_matches(doc, "get", "/api/v1/datasets", datasets)
    preview = client.post(
        "/api/v1/queries/preview",
        headers=h,
        json={"approval_id": approval, "sql": "SELECT COUNT(*) FROM residents"},
    )
    assert_matches(doc, "post", "/api/v1/queries/preview", preview)
    assert_matches(doc, "get", "/healthz", client.get("/healthz"))


def test_workflow_responses_match_the_schemas(client, creds):
    doc = _doc(client)
    researcher, owner = bearer(creds["researcher"]["token"]), bearer(creds["owner"]["token"])
    body = {
        "datasets": ["residents"],
        "scenario": "district income study",
        "purpose": "testing the schema",
        "commitment_accepted": True,
    }
    assert not list(_validator(doc, "ApplicationRequest").iter_errors(body))
    created = client.post("/api/v1/applications", headers=researcher, json=body)
    assert created.status_code == 201, created.json
    assert_matches(doc, "post", "/api/v1/applications", created)
    decision = {
        "decision": "approve",
        "reason": "fine",
        "epsilon_total": 2,
        "delta_total": 1e-6,
        "epsilon_per_query": 1,
        "expires": "2099-01-01",
    }
    assert not list(_validator(doc, "DecisionRequest").iter_errors(decision))
    decided = client.post(
        f"/api/v1/applications/{created.json['application_id']}/decision",
        headers=owner,
        json=decision,
    )
    assert decided.status_code == 200, decided.json
    assert_matches(doc, "post", "/api/v1/applications/{application_id}/decision", decided)
    suspension = {"approval_id": decided.json["approval_id"], "reason": "schema test"}
    assert not list(_validator(doc, "SuspensionRequest").iter_errors(suspension))
    suspended = client.post("/api/v1/suspensions", headers=owner, json=suspension)
    assert suspended.status_code == 201, suspended.json
    assert_matches(doc, "post", "/api/v1/suspensions", suspended)
    bad = client.post("/api/v1/suspensions", headers=owner, json={"reason": "no target"})
    assert bad.status_code >= 400
    assert_matches(doc, "post", "/api/v1/suspensions", bad)
