"""Annual opening plans with public consultation (第十三条) and a dataset's legal basis for
personal information (第二十条); issue 14."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from sandbox.service.query_service import Sandbox
from sandbox.store.workspace import Workspace
from sandbox.web import create_app
from tests.conftest import FrozenClock
from tests.test_workflow_support import audit_entries, bearer, world_copy


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    root = tmp_path / "clocked"
    shutil.copytree(w.sb.ws.root, root)
    clock = FrozenClock(dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
    sb = Sandbox(Workspace.open(root), now=clock)
    return sb, create_app(sb, {"TESTING": True}).test_client(), {k: bearer(t) for k, t in w.tokens.items()}, clock


PLAN = {"year": 2026, "consultation_days": 30, "items": [
    {"dataset": "bus_ridership", "title": "公交客流（按线路、月）", "tier": "unconditional", "planned": "2026-06-30"},
    {"dataset": "clinic_visits", "title": "门诊就诊", "tier": "conditional", "planned": "2026-09-30"}]}


def test_an_opening_plan_is_public_and_open_for_comment_until_its_consultation_closes(env):
    sb, client, tok, clock = env
    assert client.post("/api/v1/opening-plans", headers=tok["researcher"], json=PLAN).status_code == 403
    bad = client.post("/api/v1/opening-plans", headers=tok["owner"],
                      json={**PLAN, "items": [{**PLAN["items"][0], "planned": "2027-01-01"}]})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_items"
    r = client.post("/api/v1/opening-plans", headers=tok["owner"], json=PLAN)
    assert r.status_code == 201, r.json
    plan = r.json["plan_id"]
    listed = client.get("/api/v1/opening-plans").json["opening_plans"]  # no login
    assert listed[0]["plan_id"] == plan and listed[0]["open_for_comment"] and len(listed[0]["items"]) == 2
    c = client.post(f"/api/v1/opening-plans/{plan}/comments", json={"text": "请优先开放公交客流的小时数据",
                                                                     "contact": "someone@example.com"})
    assert c.status_code == 201
    assert client.get("/api/v1/opening-plans").json["opening_plans"][0]["comments"] == 1
    seen = client.get(f"/api/v1/opening-plans/{plan}/comments", headers=tok["owner"]).json["comments"]
    assert seen[0]["contact"] == "someone@example.com"
    assert client.get(f"/api/v1/opening-plans/{plan}/comments", headers=tok["owner2"]).status_code == 404
    assert client.get(f"/api/v1/opening-plans/{plan}/comments", headers=tok["regulator"]).status_code == 200
    assert "someone@example.com" not in str(audit_entries(sb, "opening_plan.commented"))
    clock.advance(days=31)
    late = client.post(f"/api/v1/opening-plans/{plan}/comments", json={"text": "late"})
    assert late.status_code == 409 and late.json["error"]["code"] == "consultation_closed"
    assert not client.get("/api/v1/opening-plans").json["opening_plans"][0]["open_for_comment"]


def test_a_dataset_with_personal_information_records_its_legal_basis(env):
    sb, client, tok, _clock = env
    entry = client.get("/api/v1/catalog/residents").json
    # the demo's policy declares one (第二十条: required before publication); the owner's record wins
    assert entry["holds_personal_information"] is True and "二十条" in entry["legal_basis"]
    assert client.put("/api/v1/datasets/residents/legal-basis", headers=tok["owner2"],
                      json={"legal_basis": "x"}).status_code == 403
    r = client.put("/api/v1/datasets/residents/legal-basis", headers=tok["owner"], json={
        "legal_basis": "《个人信息保护法》第十三条第一款第三项：履行法定职责；统计用途"})
    assert r.status_code == 200
    assert client.get("/api/v1/catalog/residents").json["legal_basis"].startswith("《个人信息保护法》")
    (entry,) = audit_entries(sb, "dataset.legal_basis_set")
    assert entry["details"]["old"] is None


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_opening_plans_page_and_comment_form_in_both_languages(env, lang):
    from tests.test_console import post, text

    sb, client, tok, _clock = env
    client.post("/api/v1/opening-plans", headers=tok["owner"], json=PLAN)
    visitor = create_app(sb, {"TESTING": True}).test_client()
    visitor.set_cookie("sandbox_lang", lang)
    page = text(visitor.get("/opening-plans"))
    assert "bus_ridership" in page and ("年度开放计划" if lang == "zh-CN" else "Annual opening plans") in page
    plan = sb.conn().execute("SELECT MAX(id) FROM opening_plans").fetchone()[0]
    r = post(visitor, f"/opening-plans/{plan}/comments", {"text": "more bus data please"}, page="/opening-plans")
    assert r.status_code == 303
    assert ("1 条意见" if lang == "zh-CN" else "1 comments") in text(visitor.get("/opening-plans"))


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_an_owner_publishes_a_plan_and_reads_its_comments_in_the_console(env, lang):
    """Issue 14: the plan is no longer API-only (第十三条)."""
    from tests.test_console import login, post, text

    sb, client, tok, _clock = env
    owner = create_app(sb, {"TESTING": True}).test_client()
    owner.set_cookie("sandbox_lang", lang)
    assert login(owner, "owner").status_code == 302
    form = text(owner.get("/opening-plans"))
    assert 'id="opening-plan-form"' in form
    assert ("发布本单位年度开放计划" if lang == "zh-CN" else "Publish your opening plan") in form
    bad = post(owner, "/opening-plans", {"year": "2026", "dataset-0": "bus", "title-0": "公交", "tier-0": "conditional",
                                         "planned-0": "2027-01-01"})
    assert bad.status_code == 400 and 'value="bus"' in text(bad)  # refused, the form kept
    r = post(owner, "/opening-plans", {"year": "2026", "consultation_days": "30",
                                       "dataset-0": "bus_ridership", "title-0": "公交客流", "tier-0": "unconditional",
                                       "planned-0": "2026-06-30", "dataset-1": "clinic_visits", "title-1": "门诊",
                                       "tier-1": "conditional", "planned-1": "2026-09-30"})
    assert r.status_code == 303, text(r)
    (plan,) = client.get("/api/v1/opening-plans").json["opening_plans"]
    assert [i["dataset"] for i in plan["items"]] == ["bus_ridership", "clinic_visits"]
    (entry,) = audit_entries(sb, "opening_plan.published")
    assert entry["actor"] == "owner"
    client.post(f"/api/v1/opening-plans/{plan['plan_id']}/comments", json={"text": "请公开小时数据",
                                                                            "contact": "a@example.com"})
    page = text(owner.get(f"/opening-plans/{plan['plan_id']}/comments"))
    assert "请公开小时数据" in page and "a@example.com" in page
    other = create_app(sb, {"TESTING": True}).test_client()
    assert login(other, "owner2", "owner2-password").status_code == 302
    assert other.get(f"/opening-plans/{plan['plan_id']}/comments").status_code == 404
    assert 'id="opening-plan-form"' in text(other.get("/opening-plans"))  # every owner may publish its own
    visitor = create_app(sb, {"TESTING": True}).test_client()
    assert 'id="opening-plan-form"' not in text(visitor.get("/opening-plans"))
    assert visitor.get(f"/opening-plans/{plan['plan_id']}/comments").status_code in (302, 401, 403)
