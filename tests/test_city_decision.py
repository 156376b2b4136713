"""第十条: 与开放主体意见不一致的,由市大数据主管部门确定;重大、疑难的,组织专家论证后确定 (issue 14).

A regulator proposes a tier raise, the owner declines: the *city* bureau decides, after an expert
review if it wants one. The attacks: a district regulator settling the dispute itself, the owner
declining again after the city decided, a decision on a proposal nobody declined.
"""

from __future__ import annotations

import pytest

from sandbox.web import create_app
from tests.test_workflow_support import audit_entries, bearer, world_copy


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    client = create_app(w.sb, {"TESTING": True}).test_client()
    tok = {k: bearer(t) for k, t in w.tokens.items()}
    assert client.post("/api/v1/organisations", headers=tok["admin"], json={
        "name": "历下区卫生健康局", "kind": "district_bureau", "district": "历下区"}).status_code == 201
    assert client.put("/api/v1/users/owner/organisation", headers=tok["admin"],
                      json={"organisation": "历下区卫生健康局"}).status_code == 200
    r = client.post("/api/v1/users", headers=tok["admin"],
                    json={"username": "reg_lixia", "role": "regulator", "password": "reg_lixia-password"})
    tok["reg_lixia"] = bearer(r.json["token"])
    client.put("/api/v1/users/reg_lixia/organisation", headers=tok["admin"],
               json={"organisation": "历下区卫生健康局", "jurisdiction": "历下区"})
    return w.sb, client, tok


def _declined(client, tok, proposer="reg_lixia") -> int:
    r = client.post("/api/v1/datasets/residents/tier", headers=tok[proposer],
                    json={"tier": "unconditional", "basis": "open by default (第八条)"})
    assert r.status_code == 202 and r.json["status"] == "proposed", r.json
    rid = r.json["review_id"]
    a = client.post(f"/api/v1/reviews/{rid}/answer", headers=tok["owner"],
                    json={"accept": False, "reasons": "identifying: not assessed"})
    assert a.json["status"] == "declined"
    return rid


def test_the_city_bureau_decides_a_dispute_after_expert_review(env):
    sb, client, tok = env
    rid = _declined(client, tok)
    # nothing to decide before the owner has answered
    assert client.post(f"/api/v1/reviews/{rid}/expert-review", headers=tok["reg_lixia"], json={
        "experts": "panel of three", "opinion": "k ≥ 10 is reachable", "outcome": "change"}).status_code == 200
    # the district regulator may propose and convene experts, never settle (第十条)
    r = client.post(f"/api/v1/reviews/{rid}/city-decision", headers=tok["reg_lixia"],
                    json={"outcome": "change", "reason": "mine"})
    assert r.status_code == 403 and r.json["error"]["code"] == "city_bureau_only"
    assert "第十条" in r.json["error"]["message"]
    assert client.get(f"/api/v1/reviews/{rid}", headers=tok["owner"]).json["status"] == "expert_reviewed"
    assert client.post(f"/api/v1/reviews/{rid}/city-decision", headers=tok["owner"],
                       json={"outcome": "no_change", "reason": "mine"}).status_code == 403
    r = client.post(f"/api/v1/reviews/{rid}/city-decision", headers=tok["regulator"],
                    json={"outcome": "change", "reason": "the experts found k ≥ 10 reachable"})
    assert r.status_code == 200 and r.json["status"] == "proposed"
    view = client.get(f"/api/v1/reviews/{rid}", headers=tok["owner"]).json
    assert view["city_decision"]["outcome"] == "change" and view["expert_review"]["experts"] == "panel of three"
    # the owner is bound: declining again is refused; accepting still takes the scan and co-signature
    again = client.post(f"/api/v1/reviews/{rid}/answer", headers=tok["owner"],
                        json={"accept": False, "reasons": "still no"})
    assert again.status_code == 409 and again.json["error"]["code"] == "city_decided"
    (entry,) = audit_entries(sb, "publication.city_decided")
    assert entry["actor"] == "regulator" and entry["details"]["outcome"] == "change"
    assert entry["details"]["expert_review"]["opinion"] == "k ≥ 10 is reachable"
    # the decision changed no tier: nothing opens without the owner's submission and the co-signature
    assert client.get("/api/v1/catalog/residents").json["tier"] == "conditional"


def test_no_change_rejects_the_proposal_without_expert_review(env):
    sb, client, tok = env
    rid = _declined(client, tok, proposer="regulator")
    r = client.post(f"/api/v1/reviews/{rid}/city-decision", headers=tok["regulator"],
                    json={"outcome": "no_change", "reason": "the owner's reasons hold"})
    assert r.status_code == 200 and r.json["status"] == "rejected"
    assert client.post(f"/api/v1/reviews/{rid}/city-decision", headers=tok["regulator"],
                       json={"outcome": "change", "reason": "changed my mind"}).status_code == 409
    assert client.get("/api/v1/catalog/residents").json["tier"] == "conditional"


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_city_decision_in_the_console(env, lang):
    from tests.test_console import login, post, text

    sb, client, tok = env
    rid = _declined(client, tok, proposer="regulator")
    c = create_app(sb, {"TESTING": True}).test_client()
    c.set_cookie("sandbox_lang", lang)
    assert login(c, "regulator").status_code == 302
    page = text(c.get(f"/reviews/{rid}"))
    assert 'id="city-decision-form"' in page
    assert ("市主管部门的决定" if lang == "zh-CN" else "City bureau's decision") in page
    r = post(c, f"/reviews/{rid}/city-decision", {"outcome": "no_change", "reason": "理由充分"},
             page=f"/reviews/{rid}")
    assert r.status_code == 303
    assert 'id="city-decision"' in text(c.get(f"/reviews/{rid}"))
    assert client.get(f"/api/v1/reviews/{rid}", headers=tok["regulator"]).json["status"] == "rejected"
