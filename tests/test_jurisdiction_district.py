"""A district regulator sees and acts within its district only (第五、二十八条; issue 14): the audit
log (API and console), objections (signed-in and public), alerts not tied to an approval,
lifting suspensions, suspending or terminating researchers, reversing terminations.

The attacker: the regulator of 历下区, where the owner of ``residents`` sits, reaching for
``permits`` of 市中区's owner2 — reading its log entries, answering its objections, lifting
its suspensions, handling its alerts. Everything outside reads like a missing object (404).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from sandbox.service.query_service import Sandbox
from sandbox.store.workspace import Workspace
from sandbox.web import create_app
from tests.conftest import FrozenClock
from tests.test_workflow_support import bearer, world_copy

PERMITS_SUBJECTS = ("dataset/permits",)


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    """owner in 历下区, owner2 in 市中区; ``reg_lixia`` regulates 历下区; a clock 60 days on, so the
    world's rectification orders are overdue and raise alerts not tied to an approval."""
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    root = tmp_path / "district"
    shutil.copytree(w.sb.ws.root, root)
    clock = FrozenClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=60))
    sb = Sandbox(Workspace.open(root), now=clock)
    client = create_app(sb, {"TESTING": True}).test_client()
    tok = {k: bearer(t) for k, t in w.tokens.items()}
    for name, district in (("历下区卫生健康局", "历下区"), ("市中区市场监管局", "市中区"), ("历下区大数据局", "历下区")):
        assert client.post("/api/v1/organisations", headers=tok["admin"], json={
            "name": name, "kind": "district_bureau", "district": district}).status_code == 201
    for user, org in (("owner", "历下区卫生健康局"), ("owner2", "市中区市场监管局")):
        assert client.put(f"/api/v1/users/{user}/organisation", headers=tok["admin"],
                          json={"organisation": org}).status_code == 200
    r = client.post("/api/v1/users", headers=tok["admin"],
                    json={"username": "reg_lixia", "role": "regulator", "password": "reg_lixia-password"})
    tok["reg_lixia"] = bearer(r.json["token"])
    assert client.put("/api/v1/users/reg_lixia/organisation", headers=tok["admin"],
                      json={"organisation": "历下区大数据局", "jurisdiction": "历下区"}).status_code == 200
    return sb, client, tok, w


def _mentions_permits(entry: dict) -> bool:
    text = json.dumps(entry, ensure_ascii=False)
    return "permits" in text or "researcher2" in text or "owner2" in text


def test_audit_entries_api_shows_a_district_regulator_its_district_only(env):
    sb, client, tok, w = env
    everything = client.get("/api/v1/audit/entries?limit=1000", headers=tok["regulator"]).json
    assert any(_mentions_permits(e) for e in everything["entries"])  # the city sees all
    assert any(e["action"] == "setting.changed" or e["action"] == "user.created" for e in everything["entries"])
    seen, start = [], 0
    while True:
        page = client.get(f"/api/v1/audit/entries?start={start}&limit=50", headers=tok["reg_lixia"]).json
        seen += page["entries"]
        if page["next_start"] >= page["size"]:
            break
        start = page["next_start"]
    assert seen, "the district regulator sees its district's entries"
    assert not any(_mentions_permits(e) for e in seen)
    # entries about nothing in the district are the city's: organisations, settings, other accounts
    assert not any(e["action"] in ("organisation.created", "setting.changed") for e in seen)
    assert {e["subject"] for e in seen if e["action"] == "user.created"} <= {"user/researcher"}
    grants = [e for e in seen if e["action"] == "approval.granted"]
    assert w.own.approval in [e["details"]["approval_id"] for e in grants]
    # filters apply on top; a subject outside the district reads as nothing
    other = client.get(f"/api/v1/audit/entries?subject=approval/{w.other.approval}", headers=tok["reg_lixia"])
    assert other.status_code == 200 and other.json["entries"] == []


def test_objections_are_read_and_answered_within_the_district(env):
    sb, client, tok, w = env
    listed = {o["objection_id"] for o in client.get("/api/v1/objections", headers=tok["reg_lixia"]).json["objections"]}
    assert w.own.objection in listed and w.other.objection not in listed
    assert client.get(f"/api/v1/objections/{w.other.objection}", headers=tok["reg_lixia"]).status_code == 404
    r = client.post(f"/api/v1/objections/{w.other.objection}/answer", headers=tok["reg_lixia"],
                    json={"answer": "dismissed"})
    assert r.status_code == 404 and r.json["error"]["message"] == f"no objection {w.other.objection}"
    assert client.post(f"/api/v1/objections/{w.own.objection}/answer", headers=tok["reg_lixia"],
                       json={"answer": "upheld"}).status_code == 200
    # the city regulator still answers the other one
    assert client.post(f"/api/v1/objections/{w.other.objection}/answer", headers=tok["regulator"],
                       json={"answer": "dismissed"}).status_code == 200


def test_public_objections_within_the_district(env):
    sb, client, tok, w = env
    code = client.post("/api/v1/public-objections", json={
        "target_type": "dataset", "target": "permits", "text": "the fee column looks wrong"}).json
    listed = client.get("/api/v1/public-objections", headers=tok["reg_lixia"]).json["public_objections"]
    assert all("permits" not in o["target"] for o in listed)
    city = client.get("/api/v1/public-objections", headers=tok["regulator"]).json["public_objections"]
    (mine,) = [o for o in city if "permits" in o["target"]]
    assert client.post(f"/api/v1/public-objections/{mine['public_objection_id']}/answer", headers=tok["reg_lixia"],
                       json={"answer": "no"}).status_code == 404
    assert code["status"] == "open"


def test_suspensions_and_terminations_within_the_district(env):
    sb, client, tok, w = env
    r = client.post(f"/api/v1/suspensions/{w.other.suspension}/lift", headers=tok["reg_lixia"],
                    json={"reason": "lifting another district's suspension"})
    assert r.status_code == 404
    assert client.post(f"/api/v1/suspensions/{w.own.suspension}/lift", headers=tok["reg_lixia"],
                       json={"reason": "cleared"}).status_code == 200
    # researcher2 holds approvals on permits only: outside 历下区
    for path in ("/api/v1/suspensions", "/api/v1/terminations"):
        assert client.post(path, headers=tok["reg_lixia"],
                           json={"user": "researcher2", "reason": "x"}).status_code == 404
    t = client.post("/api/v1/terminations", headers=tok["regulator"],
                    json={"approval_id": w.other.approval, "reason": "misuse"}).json["termination_id"]
    assert client.post(f"/api/v1/terminations/{t}/reverse", headers=tok["reg_lixia"],
                       json={"objection_id": 1, "reason": "x"}).status_code == 404


def test_alerts_not_tied_to_an_approval_are_narrowed(env):
    sb, client, tok, w = env
    city = client.get("/api/v1/alerts?kind=overdue", headers=tok["regulator"]).json["alerts"]
    foreign = [a for a in city if a["approval_id"] is None and a["subject"]
               and a["subject"] == f"rectification/{w.other.rectification}"]
    assert foreign, [a["subject"] for a in city]
    district = client.get("/api/v1/alerts?kind=overdue", headers=tok["reg_lixia"]).json["alerts"]
    ids = {a["alert_id"] for a in district}
    assert foreign[0]["alert_id"] not in ids
    assert any(a["subject"] == f"rectification/{w.own.rectification}" for a in district)
    r = client.post(f"/api/v1/alerts/{foreign[0]['alert_id']}/handle", headers=tok["reg_lixia"],
                    json={"action": "acknowledge"})
    assert r.status_code == 404
    # the overdue list likewise: the city sees both orders, the district only its own
    city_due = {(i["kind"], i["id"]) for i in client.get("/api/v1/overdue", headers=tok["regulator"]).json["overdue"]}
    mine = {(i["kind"], i["id"]) for i in client.get("/api/v1/overdue", headers=tok["reg_lixia"]).json["overdue"]}
    assert ("rectification", w.other.rectification) in city_due and ("rectification", w.own.rectification) in mine
    assert ("rectification", w.other.rectification) not in mine and mine < city_due


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_console_audit_pages_show_the_district_only(env, lang):
    from tests.test_console import login, text

    sb, client, tok, w = env
    c = create_app(sb, {"TESTING": True}).test_client()
    c.set_cookie("sandbox_lang", lang)
    assert login(c, "reg_lixia", "reg_lixia-password").status_code == 302
    page = text(c.get("/regulator/audit"))
    assert "residents" in page and "permits" not in page and "researcher2" not in page
    assert "permits" not in text(c.get("/regulator/audit?dataset=permits")).split("<main", 1)[-1]
    assert f"rectification/{w.other.rectification}" not in text(c.get("/regulator/alerts"))
    replay = text(c.get("/regulator/replay"))
    assert f"#{w.other.approval}" not in replay


def test_evidence_and_reviews_of_another_district_read_as_missing(env):
    import base64

    sb, client, tok, w = env
    r = client.post("/api/v1/objections", headers=tok["researcher2"], json={
        "target_type": "application", "target_id": w.other.app_decided, "text": "see the letter",
        "evidence": [{"name": "letter.txt", "content_base64": base64.b64encode(b"a letter").decode()}]})
    assert r.status_code == 201, r.json
    att = r.json["evidence"][0]["attachment_id"]
    assert client.get(f"/api/v1/attachments/{att}", headers=tok["regulator"]).status_code == 200  # the city answers
    assert client.get(f"/api/v1/attachments/{att}", headers=tok["reg_lixia"]).status_code == 404
    assert client.get(f"/api/v1/reviews/{w.other.review}", headers=tok["regulator"]).status_code == 200
    assert client.get(f"/api/v1/reviews/{w.other.review}", headers=tok["reg_lixia"]).status_code == 404
    assert client.get(f"/api/v1/reviews/{w.own.review}", headers=tok["reg_lixia"]).status_code == 200
