"""Researcher self-service (issue 14; 第十五条): a new researcher goes from the public open list
to a released result in the console alone — registers, applies, follows the application, gets a
token — in both languages; tokens with names, last use and revocation; requests for more budget
or an extension; registration that an admin can close."""

from __future__ import annotations

import re

import pytest

from sandbox.governance import self_service
from sandbox.store.workspace import transaction
from sandbox.web import create_app
from tests.test_console import post, run_query, text, token
from tests.test_workflow_support import audit_entries, bearer, world_copy


@pytest.fixture
def world(demo_template, tmp_path_factory, tmp_path):
    return world_copy(demo_template, tmp_path_factory, tmp_path)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_new_researcher_goes_from_the_catalog_to_a_result_in_the_console(world, lang):
    zh = lang == "zh-CN"
    app = create_app(world.sb, {"TESTING": True})
    c = app.test_client()
    c.set_cookie("sandbox_lang", lang)
    page = text(c.get("/catalog/residents"))
    assert 'id="apply-link"' in page and ("注册" if zh else "Register") in page
    # register
    form = text(c.get("/register"))
    r = c.post("/register?next=/apply/residents", data={
        "csrf_token": token(form), "username": "newbie", "password": "a long passphrase",
        "password_again": "a long passphrase", "display_name": "Shandong University"})
    assert r.status_code == 303 and "/login" in r.headers["Location"]
    login_page = text(c.get(r.headers["Location"]))
    r = c.post(r.headers["Location"], data={"csrf_token": token(login_page), "username": "newbie",
                                            "password": "a long passphrase"})
    assert r.status_code == 302 and r.headers["Location"] == "/apply/residents"
    # apply from the catalog: scenario, purpose, columns, the commitment
    page = text(c.get("/apply/residents"))
    assert 'id="commitment-text"' in page and "id_number" not in page  # identifiers are never offered
    # a free dummy run on the public schema, before applying
    tried = post(c, "/apply/residents", {"action": "dummy", "sql": "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex"})
    assert tried.status_code == 200 and 'id="trial-result"' in text(tried)
    assert ("未消耗预算" if zh else "no budget spent") in text(tried)
    r = post(c, "/apply/residents", {"scenario": "income by district", "purpose": "a thesis on income",
                                     "columns": ["district", "income"], "commitment": "1"})
    assert r.status_code == 303 and r.headers["Location"] == "/my/applications"
    mine = text(c.get("/my/applications"))
    app_id = int(re.search(r'id="application-(\d+)"', mine).group(1))
    assert ("待审核" if zh else "pending") in mine and ("期限" if zh else "Due") in mine
    # the owner approves (their own tool; the researcher never leaves the console)
    r = app.test_client().post(f"/api/v1/applications/{app_id}/decision", headers=bearer(world.tokens["owner"]), json={
        "decision": "approve", "reason": "fine", "epsilon_total": 3, "delta_total": 1e-6, "epsilon_per_query": 1,
        "expires": "2999-01-01"})
    assert r.status_code == 200, r.json
    approval = r.json["approval_id"]
    mine = text(c.get("/my/applications"))
    assert f"/query?approval={approval}" in mine
    # a token, named; shown once
    r = post(c, "/my/tokens", {"name": "notebook"})
    new_token = re.search(r'id="new-token-value">([^<]+)<', text(r)).group(1)
    assert new_token.startswith("sbx_") and new_token not in text(c.get("/my/tokens"))
    # a query in the console, and one with the token
    released = run_query(c, approval, "SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    assert released.status_code == 303, text(released)[:300]
    api = app.test_client().post("/api/v1/queries", headers=bearer(new_token),
                                 json={"approval_id": approval, "sql": "SELECT COUNT(*) FROM residents", "epsilon": 0.5})
    assert api.status_code == 200, api.json
    assert ("尚未使用" if zh else "not used yet") not in text(c.get("/my/tokens")).split('id="tokens"')[1].split("notebook")[1][:300]


def test_tokens_are_named_listed_with_last_use_and_revoked(world):
    client = create_app(world.sb, {"TESTING": True}).test_client()
    me = bearer(world.tokens["researcher"])
    r = client.post("/api/v1/tokens", headers=me, json={"name": "ci job"})
    assert r.status_code == 201 and r.json["token"].startswith("sbx_")
    new = bearer(r.json["token"])
    listed = {t["name"]: t for t in client.get("/api/v1/tokens", headers=new).json["tokens"]}
    assert listed["ci job"]["active"] and listed["ci job"]["last_used_at"]  # used just now, to list
    assert "token" not in listed["ci job"]
    # another user's token reads like a missing one
    assert client.post(f"/api/v1/tokens/{listed['ci job']['token_id']}/revoke",
                       headers=bearer(world.tokens["researcher2"])).status_code == 404
    r = client.post(f"/api/v1/tokens/{listed['ci job']['token_id']}/revoke", headers=me)
    assert r.json == {"token_id": listed["ci job"]["token_id"], "active": False}
    assert client.get("/api/v1/tokens", headers=new).status_code == 401
    assert [e["details"]["name"] for e in audit_entries(world.sb, "user.token_revoked")] == ["ci job"]
    assert client.get("/api/v1/tokens").status_code == 401


def test_more_budget_or_an_extension_is_an_amendment_decided_by_the_same_owners(world):
    client = create_app(world.sb, {"TESTING": True}).test_client()
    me = bearer(world.tokens["researcher"])
    r = client.post(f"/api/v1/approvals/{world.own.approval}/requests", headers=me,
                    json={"kind": "budget", "reason": "two more tables for chapter 3"})
    assert r.status_code == 201, r.json
    seen = client.get(f"/api/v1/applications/{r.json['application_id']}", headers=bearer(world.tokens["owner"])).json
    assert seen["purpose"].startswith(f"Request for more budget for approval {world.own.approval}")
    assert seen["datasets"] == ["residents"] and seen["status"] == "pending"
    assert seen["amends"]["approval_id"] == world.own.approval  # issue 14: it amends, never duplicates
    assert client.post(f"/api/v1/approvals/{world.other.approval}/requests", headers=me,
                       json={"kind": "budget", "reason": "x"}).status_code == 404


def test_registration_can_be_closed_by_an_admin(world):
    with transaction(world.sb.conn()):
        self_service.SETTING_GROUP.set(world.sb.conn(), "self_registration", 0)
    c = create_app(world.sb, {"TESTING": True}).test_client()
    form = text(c.get("/register"))
    r = c.post("/register", data={"csrf_token": token(form), "username": "late", "password": "a long passphrase",
                                  "password_again": "a long passphrase"})
    assert r.status_code == 400 and "registration is closed" in text(r)


def test_a_dummy_run_before_any_approval_uses_the_public_schema_only(world):
    client = create_app(world.sb, {"TESTING": True}).test_client()
    newcomer = bearer(world.tokens["researcher2"])  # holds no approval on residents
    body = {"datasets": ["residents"], "sql": "SELECT district, AVG(income) AS mean FROM residents GROUP BY district"}
    r = client.post("/api/v1/queries/dummy-public", headers=newcomer, json=body)
    assert r.status_code == 200, r.json
    assert r.json["dummy"] is True and r.json["epsilon_spent"] == 0 and r.json["columns"] == ["district", "mean"]
    entry = audit_entries(world.sb, "query.dummy")[-1]
    assert entry["details"]["public_schema"] is True and entry["details"]["approval_id"] is None
    # the same guard: identifiers are refused, and nothing is charged or suspended for it
    refused = client.post("/api/v1/queries/dummy-public", headers=newcomer,
                          json={**body, "sql": "SELECT name FROM residents"})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "identifier_column"
    assert client.post("/api/v1/queries/dummy-public", json=body).status_code == 401
    hidden = client.post("/api/v1/queries/dummy-public", headers=newcomer, json={**body, "datasets": ["nothing"]})
    assert hidden.status_code == 400 and hidden.json["error"]["code"] == "unknown_dataset"
