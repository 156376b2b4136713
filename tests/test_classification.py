"""Classification and grading per dataset (第六条 分类分级; issue 14). Attacks: publishing important
data as open, opening core data at all, grading a dataset stricter than it is already open
(silently leaving it open), a policy declaring a grade its tier breaks, a district regulator
re-grading elsewhere, a researcher classifying.
"""

from __future__ import annotations

import pytest

from sandbox.errors import PolicyError
from sandbox.governance.policy import parse_policy
from sandbox.service.operations import SandboxAdmin
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.test_workflow_support import FIXTURES, audit_entries, bearer, permits_table, world_copy

PERMITS = (FIXTURES / "permits.toml").read_text(encoding="utf-8")


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    client = create_app(w.sb, {"TESTING": True}).test_client()
    return w, client, {k: bearer(t) for k, t in w.tokens.items()}


def test_the_grade_bounds_the_tier_and_every_change_is_logged(env):
    w, client, tok = env
    body = {"category": "卫生健康", "grade": "important", "basis": "含健康信息（数据安全法 第二十一条）"}
    assert client.put("/api/v1/datasets/residents/classification", headers=tok["researcher"],
                      json=body).status_code == 403
    assert client.put("/api/v1/datasets/residents/classification", headers=tok["owner2"],
                      json=body).status_code == 403
    r = client.put("/api/v1/datasets/residents/classification", headers=tok["owner"], json=body)
    assert r.status_code == 200, r.json
    public = client.get("/api/v1/catalog/residents").json["classification"]
    assert public == {"grade": "important", "category": "卫生健康"}  # the basis is for owner and regulator
    assert client.get("/api/v1/catalog/residents", headers=tok["owner"]).json["classification"]["basis"]
    # important data never opens unconditionally: refused before any scan
    raise_ = client.post("/api/v1/datasets/residents/tier", headers=tok["owner"],
                         json={"tier": "unconditional", "basis": "open by default", "k_anonymity": 10})
    assert raise_.status_code == 409 and raise_.json["error"]["code"] == "grade_forbids_tier"
    assert "第六条" in raise_.json["error"]["message"]
    # core data is not open at all: grading a conditional dataset core is refused until its tier is lowered
    core = client.put("/api/v1/datasets/residents/classification", headers=tok["owner"],
                      json={**body, "grade": "core"})
    assert core.status_code == 409 and core.json["error"]["code"] == "grade_forbids_tier"
    (entry,) = audit_entries(w.sb, "dataset.classified")
    assert entry["details"]["old"] is None and entry["details"]["new"]["grade"] == "important"
    # the city regulator re-grades (the bureau supervises)
    r = client.put("/api/v1/datasets/residents/classification", headers=tok["regulator"],
                   json={**body, "grade": "general", "basis": "aggregated only"})
    assert r.status_code == 200 and r.json["classification"]["by"] == "regulator"
    assert client.put("/api/v1/datasets/residents/classification", headers=tok["owner"],
                      json={**body, "grade": "secret"}).json["error"]["code"] == "bad_grade"


def test_a_policy_declares_the_classification_and_its_grade_is_checked(env):
    w, client, tok = env
    with pytest.raises(PolicyError, match="opens at most as conditional"):
        parse_policy(PERMITS.replace('tier = "conditional"', 'tier = "unconditional"').replace(
            'one_row_per_unit = true', 'one_row_per_unit = true\nclassification = {category = "市场监管", grade = "important"}'))
    with pytest.raises(PolicyError, match="classification"):
        parse_policy(PERMITS.replace('one_row_per_unit = true',
                                     'one_row_per_unit = true\nclassification = {grade = "secret"}'))
    declared = PERMITS.replace('name = "permits"', 'name = "licences"').replace(
        'one_row_per_unit = true', 'one_row_per_unit = true\nclassification = {category = "市场监管", grade = "general"}')
    owner2 = find_user(w.sb.conn(), "owner2")
    SandboxAdmin(w.sb).add_dataset("licences", permits_table(), declared, actor=owner2)
    entry = client.get("/api/v1/catalog/licences", headers=tok["owner2"]).json
    assert entry["classification"]["grade"] == "general" and entry["classification"]["source"] == "policy"


def test_a_district_regulator_grades_only_within_its_district(env):
    w, client, tok = env
    admin = tok["admin"]
    client.post("/api/v1/organisations", headers=admin, json={"name": "市中区市场监管局", "kind": "district_bureau",
                                                              "district": "市中区"})
    client.post("/api/v1/organisations", headers=admin, json={"name": "历下区大数据局", "kind": "district_bureau",
                                                              "district": "历下区"})
    client.put("/api/v1/users/owner2/organisation", headers=admin, json={"organisation": "市中区市场监管局"})
    r = client.post("/api/v1/users", headers=admin, json={"username": "reg_lixia", "role": "regulator",
                                                          "password": "reg_lixia-password"})
    client.put("/api/v1/users/reg_lixia/organisation", headers=admin,
               json={"organisation": "历下区大数据局", "jurisdiction": "历下区"})
    body = {"category": "市场监管", "grade": "important", "basis": "x"}
    assert client.put("/api/v1/datasets/permits/classification", headers=bearer(r.json["token"]),
                      json=body).status_code == 404


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_owner_classifies_in_the_console(env, lang):
    from tests.test_console import login, post, text

    w, client, tok = env
    c = create_app(w.sb, {"TESTING": True}).test_client()
    c.set_cookie("sandbox_lang", lang)
    assert login(c, "owner").status_code == 302
    page = text(c.get("/owner/datasets/residents"))
    assert 'id="classification-form"' in page and ("分类分级" if lang == "zh-CN" else "Classification") in page
    r = post(c, "/owner/datasets/residents/classification",
             {"category": "人口", "grade": "important", "basis": "含个人信息"}, page="/owner/datasets/residents")
    assert r.status_code == 303
    assert client.get("/api/v1/catalog/residents").json["classification"]["grade"] == "important"
    assert ("重要数据" if lang == "zh-CN" else "important") in text(c.get("/owner/datasets/residents"))
