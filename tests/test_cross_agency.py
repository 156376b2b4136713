"""A cross-agency study end to end (issue 14; 第五、十五、二十八条): two organisations' datasets,
one application spanning both, approval by both owners, a join query on the shared unit, and
district regulators — the one whose jurisdiction holds a dataset sees the study, another
district's does not."""

from __future__ import annotations

import pytest

from tests.test_workflow_support import audit_entries, audit_size, bearer, world_copy

JOIN = ("SELECT r.district, COUNT(*) AS n FROM residents r JOIN permits p ON r.person_id = p.person_id "
        "GROUP BY r.district")
EXPIRES = "2999-01-01"


@pytest.fixture
def world(demo_template, tmp_path_factory, tmp_path):
    return world_copy(demo_template, tmp_path_factory, tmp_path)


def test_cross_agency_study_with_district_regulators(world):
    from sandbox.web import create_app

    sb = world.sb
    client = create_app(sb, {"TESTING": True}).test_client()
    tok = {name: bearer(t) for name, t in world.tokens.items()}
    admin = tok["admin"]
    # 1. organisations: the residents' owner in 历下区, the permits' owner in 市中区; two district regulators
    for name, kind, district in (("历下区卫生健康局", "district_bureau", "历下区"),
                                 ("市中区市场监管局", "district_bureau", "市中区"),
                                 ("历下区大数据局", "district_bureau", "历下区"),
                                 ("槐荫区大数据局", "district_bureau", "槐荫区")):
        r = client.post("/api/v1/organisations", headers=admin, json={"name": name, "kind": kind, "district": district})
        assert r.status_code == 201, r.json
    assert client.post("/api/v1/organisations", headers=tok["owner"],
                       json={"name": "x", "kind": "bureau"}).status_code == 403
    for user, org in (("owner", "历下区卫生健康局"), ("owner2", "市中区市场监管局")):
        assert client.put(f"/api/v1/users/{user}/organisation", headers=admin,
                          json={"organisation": org}).status_code == 200
    for user, org, district in (("reg_lixia", "历下区大数据局", "历下区"), ("reg_huaiyin", "槐荫区大数据局", "槐荫区")):
        r = client.post("/api/v1/users", headers=admin,
                        json={"username": user, "role": "regulator", "password": f"{user}-password"})
        tok[user] = bearer(r.json["token"])
        r = client.put(f"/api/v1/users/{user}/organisation", headers=admin,
                       json={"organisation": org, "jurisdiction": district})
        assert r.status_code == 200 and r.json["jurisdiction"] == district
    orgs = {o["name"]: o for o in client.get("/api/v1/organisations", headers=tok["researcher"]).json["organisations"]}
    assert orgs["历下区卫生健康局"]["members"] == ["owner"]

    # 2. one application spanning both organisations' datasets
    r = client.post("/api/v1/applications", headers=tok["researcher"], json={
        "datasets": ["residents", "permits"], "scenario": "permits and residents by district",
        "purpose": "cross-agency study of business permits by residents' district", "commitment_accepted": True})
    assert r.status_code == 201, r.json
    app_id = r.json["application_id"]
    seen = client.get(f"/api/v1/applications/{app_id}", headers=tok["owner2"]).json
    assert [o["owner"] for o in seen["owners"]] == ["owner", "owner2"] and seen["status"] == "pending"

    # 3. each owner decides on its own datasets; the approval exists only when both have approved
    mark = audit_size(sb)
    decision = {"decision": "approve", "reason": "ok", "epsilon_total": 4, "delta_total": 1e-6,
                "epsilon_per_query": 1, "expires": EXPIRES}
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner"],
                    json={**decision, "columns": {"permits": ["district"]}})
    assert r.status_code == 400 and r.json["error"]["code"] == "not_your_dataset"
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner"], json=decision)
    assert r.status_code == 200 and r.json == {"application_id": app_id, "status": "pending", "approval_id": None,
                                               "waiting_for": ["owner2"]}
    assert client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner"],
                       json=decision).status_code == 409
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner2"],
                    json={**decision, "epsilon_total": 2, "reason": "fees are sensitive: smaller budget"})
    assert r.status_code == 200 and r.json["status"] == "approved", r.json
    approval = r.json["approval_id"]
    assert len(audit_entries(sb, "application.owner_decided", mark)) == 2
    (granted,) = audit_entries(sb, "approval.granted", mark)
    assert granted["details"]["scope"]["datasets"] == ["residents", "permits"]
    assert granted["details"]["epsilon_total"] == 2  # every owner's budget holds: the smaller one

    # 4. the join on the shared unit runs, within the approval's budget
    r = client.post("/api/v1/queries", headers=tok["researcher"],
                    json={"approval_id": approval, "sql": JOIN, "epsilon": 0.5})
    assert r.status_code == 200, r.json
    assert r.json["columns"][0] == "district" and r.json["rows"]
    assert r.json["budget"]["epsilon"]["total"] == 2

    # 5. both owners see the approval; the district regulator of 历下区 sees the study, 槐荫区's does not
    for who in ("owner", "owner2", "regulator", "reg_lixia"):
        assert approval in [a["approval_id"] for a in
                            client.get("/api/v1/approvals", headers=tok[who]).json["approvals"]], who
        assert client.get(f"/api/v1/approvals/{approval}", headers=tok[who]).status_code == 200, who
    assert app_id in [a["application_id"] for a in
                      client.get("/api/v1/applications", headers=tok["reg_lixia"]).json["applications"]]
    assert approval not in [a["approval_id"] for a in
                            client.get("/api/v1/approvals", headers=tok["reg_huaiyin"]).json["approvals"]]
    assert app_id not in [a["application_id"] for a in
                          client.get("/api/v1/applications", headers=tok["reg_huaiyin"]).json["applications"]]
    assert client.get(f"/api/v1/approvals/{approval}", headers=tok["reg_huaiyin"]).status_code == 404
    assert client.get(f"/api/v1/applications/{app_id}", headers=tok["reg_huaiyin"]).status_code == 404
    # ... and acts only within it
    assert client.post("/api/v1/suspensions", headers=tok["reg_huaiyin"],
                       json={"approval_id": approval, "reason": "x"}).status_code == 404
    r = client.post("/api/v1/suspensions", headers=tok["owner2"],
                    json={"approval_id": approval, "reason": "the second owner may suspend too"})
    assert r.status_code == 201, r.json
    suspension = r.json["suspension_id"]

    # 6. the lists follow the jurisdiction too: suspensions, reviews, rectification orders
    def ids(who, path, key, field):
        return [x[field] for x in client.get(path, headers=tok[who]).json[key]]

    assert suspension in ids("reg_lixia", "/api/v1/suspensions", "suspensions", "suspension_id")
    assert suspension not in ids("reg_huaiyin", "/api/v1/suspensions", "suspensions", "suspension_id")
    assert "residents" in ids("reg_lixia", "/api/v1/reviews", "reviews", "dataset")
    assert ids("reg_huaiyin", "/api/v1/reviews", "reviews", "dataset") == []
    assert ids("reg_huaiyin", "/api/v1/rectifications", "rectifications", "order_id") == []
    assert ids("reg_lixia", "/api/v1/rectifications", "rectifications", "order_id") != []


def test_one_owner_rejecting_rejects_the_application(world):
    from sandbox.web import create_app

    client = create_app(world.sb, {"TESTING": True}).test_client()
    tok = {name: bearer(t) for name, t in world.tokens.items()}
    r = client.post("/api/v1/applications", headers=tok["researcher"], json={
        "datasets": ["residents", "permits"], "scenario": "s", "purpose": "p", "commitment_accepted": True})
    app_id = r.json["application_id"]
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner2"],
                    json={"decision": "reject", "reason": "not for this purpose"})
    assert r.json["status"] == "rejected"
    seen = client.get(f"/api/v1/applications/{app_id}", headers=tok["researcher"]).json
    assert seen["status"] == "rejected" and "owner2: not for this purpose" in seen["reason"]
    assert {o["owner"]: o["decision"] for o in seen["owners"]} == {"owner": None, "owner2": "reject"}
