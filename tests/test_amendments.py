"""More budget or a later expiry amends the existing approval, only once its owner approves
(第十五条; issue 14). Attacks: spending a requested budget before approval, deciding one's own
request, shrinking a budget through an "amendment", piling up requests, amending a terminated
approval, another owner deciding.
"""

from __future__ import annotations

import pytest

from sandbox.governance import approvals, workflow
from sandbox.web import create_app
from tests.test_workflow_support import audit_entries, bearer, world_copy


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    client = create_app(w.sb, {"TESTING": True}).test_client()
    return w, client, {k: bearer(t) for k, t in w.tokens.items()}


def _budget(client, tok, approval):
    return client.get(f"/api/v1/approvals/{approval}/budget", headers=tok["researcher"]).json["epsilon"]["total"]


def test_more_budget_amends_the_approval_only_after_the_owner_approves(env):
    w, client, tok = env
    approval = w.own.approval
    count = w.sb.conn().execute("SELECT COUNT(*) FROM approvals").fetchone()[0]
    before = _budget(client, tok, approval)
    r = client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"],
                    json={"kind": "budget", "reason": "chapter 3", "epsilon_total": before + 5})
    assert r.status_code == 201 and r.json["requested"] == {"epsilon_total": before + 5}, r.json
    app_id = r.json["application_id"]
    # requested is not granted: the ledger still charges against the old total
    assert _budget(client, tok, approval) == before
    assert client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"], json={
        "kind": "budget", "reason": "again", "epsilon_total": before + 9}).status_code == 409  # one at a time
    url = f"/api/v1/applications/{app_id}/decision"
    assert client.post(url, headers=tok["researcher"], json={"decision": "approve"}).status_code == 403
    assert client.post(url, headers=tok["owner2"], json={"decision": "approve"}).status_code == 404
    shrink = client.post(url, headers=tok["owner"], json={"decision": "approve", "epsilon_total": before - 1})
    assert shrink.status_code == 400 and shrink.json["error"]["code"] == "bad_epsilon"
    r = client.post(url, headers=tok["owner"], json={"decision": "approve", "reason": "granted in part",
                                                     "epsilon_total": before + 2})
    assert r.status_code == 200 and r.json["status"] == "approved" and r.json["approval_id"] == approval, r.json
    assert _budget(client, tok, approval) == before + 2  # the owner's figure, not the request's
    assert w.sb.conn().execute("SELECT COUNT(*) FROM approvals").fetchone()[0] == count  # no new approval
    view = client.get(f"/api/v1/approvals/{approval}", headers=tok["researcher"]).json
    assert view["signature"]["verified"] is True  # the terms were re-signed with the new total
    approvals.verify_approval(w.sb, workflow.get_approval(w.sb.conn(), approval))
    (entry,) = audit_entries(w.sb, "approval.amended")
    assert entry["actor"] == "owner" and entry["details"]["old"]["epsilon_total"] == before
    assert entry["details"]["new"]["epsilon_total"] == before + 2 and entry["details"]["signature"]["value"]
    assert client.get(f"/api/v1/applications/{app_id}", headers=tok["researcher"]).json["approval_id"] == approval


def test_an_extension_moves_the_expiry_and_a_rejection_changes_nothing(env):
    w, client, tok = env
    approval = w.own.approval
    old = client.get(f"/api/v1/approvals/{approval}", headers=tok["owner"]).json
    r = client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"],
                    json={"kind": "extension", "reason": "fieldwork ran late"})
    app_id = r.json["application_id"]
    missing = client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner"],
                          json={"decision": "approve"})
    assert missing.status_code == 400 and missing.json["error"]["code"] == "missing_terms"
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner"],
                    json={"decision": "reject", "reason": "not justified"})
    assert r.json["status"] == "rejected"
    assert client.get(f"/api/v1/approvals/{approval}", headers=tok["owner"]).json["expires_at"] == old["expires_at"]
    r = client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"],
                    json={"kind": "extension", "reason": "second try", "expires": "2999-06-30"})
    r = client.post(f"/api/v1/applications/{r.json['application_id']}/decision", headers=tok["owner"],
                    json={"decision": "approve", "reason": "ok"})
    assert r.status_code == 200, r.json
    assert client.get(f"/api/v1/approvals/{approval}", headers=tok["owner"]).json["expires_at"].startswith("2999-06-30")


def test_a_terminated_approval_is_never_amended(env):
    w, client, tok = env
    approval = w.own.approval
    r = client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"],
                    json={"kind": "budget", "reason": "more", "epsilon_total": 50})
    app_id = r.json["application_id"]
    assert client.post("/api/v1/terminations", headers=tok["owner"],
                       json={"approval_id": approval, "reason": "false material (第二十六条)"}).status_code == 201
    before = w.sb.conn().execute("SELECT epsilon_total FROM approvals WHERE id = ?", (approval,)).fetchone()[0]
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner"],
                    json={"decision": "approve", "reason": "ok"})
    assert r.status_code == 409
    assert w.sb.conn().execute("SELECT epsilon_total FROM approvals WHERE id = ?", (approval,)).fetchone()[0] == before
    assert client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"],
                       json={"kind": "budget", "reason": "more", "epsilon_total": 60}).status_code == 409


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_request_and_approve_an_amendment_in_the_console(env, lang):
    from tests.test_console import login, post, text

    w, client, tok = env
    approval = w.own.approval
    before = _budget(client, tok, approval)
    me = create_app(w.sb, {"TESTING": True}).test_client()
    me.set_cookie("sandbox_lang", lang)
    assert login(me, "researcher").status_code == 302
    page = text(me.get("/my/applications"))
    assert f'id="eps-{approval}"' in page
    r = post(me, f"/my/approvals/{approval}/request", {"kind": "budget", "reason": "one more chapter",
                                                        "epsilon_total": str(before + 4)}, page="/my/applications")
    assert r.status_code == 303, text(r)
    (app,) = [a for a in client.get("/api/v1/applications", headers=tok["owner"]).json["applications"]
              if a.get("amends") and a["status"] == "pending"]
    owner = create_app(w.sb, {"TESTING": True}).test_client()
    owner.set_cookie("sandbox_lang", lang)
    assert login(owner, "owner").status_code == 302
    form = text(owner.get(f"/owner/applications/{app['application_id']}"))
    assert 'id="amends"' in form and f'value="{before + 4}"' in form
    r = post(owner, f"/owner/applications/{app['application_id']}/decision",
             {"decision": "approve", "reason": "ok", "epsilon_total": str(before + 4), "delta_total": "",
              "epsilon_per_query": "1", "expires": ""}, page=f"/owner/applications/{app['application_id']}")
    assert r.status_code == 303, text(r)
    assert _budget(client, tok, approval) == before + 4


def test_an_amendment_of_a_cross_agency_approval_needs_every_owner_and_takes_the_strictest(env):
    w, client, tok = env
    app = client.post("/api/v1/applications", headers=tok["researcher"], json={
        "datasets": ["residents", "permits"], "scenario": "joint", "purpose": "cross-agency",
        "commitment_accepted": True}).json["application_id"]
    terms = {"decision": "approve", "reason": "ok", "epsilon_total": 2, "delta_total": 1e-6,
             "epsilon_per_query": 1, "expires": "2999-01-01"}
    client.post(f"/api/v1/applications/{app}/decision", headers=tok["owner"], json=terms)
    approval = client.post(f"/api/v1/applications/{app}/decision", headers=tok["owner2"],
                           json=terms).json["approval_id"]
    req = client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"],
                      json={"kind": "budget", "reason": "more", "epsilon_total": 10}).json["application_id"]
    url = f"/api/v1/applications/{req}/decision"
    r = client.post(url, headers=tok["owner"], json={"decision": "approve", "reason": "fine", "epsilon_total": 8})
    assert r.json["status"] == "pending" and r.json["waiting_for"] == ["owner2"]
    assert _budget(client, tok, approval) == 2  # one owner's yes changes nothing
    r = client.post(url, headers=tok["owner2"], json={"decision": "approve", "reason": "less", "epsilon_total": 5})
    assert r.json["status"] == "approved" and r.json["approval_id"] == approval
    assert _budget(client, tok, approval) == 5  # the strictest grant
