"""Enforcement and time limits (issue 14; 第十七、二十五、二十六条): termination distinct from
suspension, rectification orders with due dates and the regulator's sign-off, overdue items on
dashboards and in alerts, settings edited by an admin and logged, alerts handled, and the warning
before automatic suspension — at the API."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from sandbox.governance import workflow
from sandbox.service.query_service import Sandbox
from sandbox.store.workspace import Workspace, transaction
from sandbox.web import create_app
from tests.conftest import FrozenClock
from tests.test_workflow_support import audit_entries, audit_size, bearer, world_copy

GOOD_SQL = "SELECT COUNT(*) FROM residents"


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    """The workflow world (second owner, second researcher, admin) on a frozen clock."""
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    root = tmp_path / "clocked"
    shutil.copytree(w.sb.ws.root, root)
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    sb = Sandbox(Workspace.open(root), now=clock)
    client = create_app(sb, {"TESTING": True}).test_client()
    tok = {name: bearer(t) for name, t in w.tokens.items()}
    return sb, client, tok, clock, w


def query(client, tok, approval, sql=GOOD_SQL):
    return client.post("/api/v1/queries", headers=tok["researcher"],
                       json={"approval_id": approval, "sql": sql, "epsilon": 0.1})


def test_termination_is_final_unless_reversed_on_objection(env):
    sb, client, tok, _clock, w = env
    approval = w.own.approval
    assert query(client, tok, approval).status_code == 200
    # a researcher cannot terminate; another owner cannot see the approval
    assert client.post("/api/v1/terminations", headers=tok["researcher"],
                       json={"approval_id": approval, "reason": "x"}).status_code == 403
    assert client.post("/api/v1/terminations", headers=tok["owner2"],
                       json={"approval_id": approval, "reason": "x"}).status_code == 404
    mark = audit_size(sb)
    r = client.post("/api/v1/terminations", headers=tok["owner"],
                    json={"approval_id": approval, "reason": "false application material (第二十六条)"})
    assert r.status_code == 201 and r.json["final"] is True
    termination = r.json["termination_id"]
    (entry,) = audit_entries(sb, "termination.created", mark)
    assert entry["details"]["reason"].startswith("false application")
    refused = query(client, tok, approval)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "terminated"
    assert f"target_id {termination}" in refused.json["error"]["message"]  # how to object
    # distinct from suspension: nothing to lift, and a second termination conflicts
    assert all(s.get("approval_id") != approval or not s["active"]
               for s in client.get("/api/v1/suspensions", headers=tok["owner"]).json["suspensions"])
    assert client.post("/api/v1/terminations", headers=tok["owner"],
                       json={"approval_id": approval, "reason": "again"}).status_code == 409
    assert workflow.approval_status(sb.conn(), workflow.get_approval(sb.conn(), approval), now=sb.now) == "terminated"
    listed = client.get("/api/v1/terminations", headers=tok["researcher"]).json["terminations"]
    assert [t["termination_id"] for t in listed] == [termination]
    assert client.get("/api/v1/terminations", headers=tok["researcher2"]).json["terminations"] == []
    # the owner cannot reverse it; the regulator only on an objection against it
    assert client.post(f"/api/v1/terminations/{termination}/reverse", headers=tok["owner"],
                       json={"reason": "x", "objection_id": 1}).status_code == 403
    r = client.post(f"/api/v1/terminations/{termination}/reverse", headers=tok["regulator"],
                    json={"reason": "x", "objection_id": w.own.objection})
    assert r.status_code == 400 and r.json["error"]["code"] == "objection_required"
    obj = client.post("/api/v1/objections", headers=tok["researcher"], json={
        "target_type": "termination", "target_id": termination, "text": "the material was correct; see attached"})
    assert obj.status_code == 201, obj.json
    assert client.post("/api/v1/objections", headers=tok["researcher2"], json={
        "target_type": "termination", "target_id": termination, "text": "x"}).status_code == 404
    r = client.post(f"/api/v1/terminations/{termination}/reverse", headers=tok["regulator"],
                    json={"reason": "material verified", "objection_id": obj.json["objection_id"]})
    assert r.status_code == 200 and r.json["final"] is False
    assert query(client, tok, approval).status_code == 200
    answered = client.get(f"/api/v1/objections/{obj.json['objection_id']}", headers=tok["researcher"]).json
    assert answered["status"] == "answered" and answered["answer"].startswith("upheld")


def test_rectification_order_goes_overdue_alerts_and_needs_the_regulators_sign_off(env):
    sb, client, tok, clock, _w = env
    r = client.post("/api/v1/rectifications", headers=tok["owner"],
                    json={"owner": "owner", "what": "x"})
    assert r.status_code == 403  # only the regulator orders (第二十五条)
    r = client.post("/api/v1/rectifications", headers=tok["regulator"], json={
        "owner": "owner", "dataset": "residents", "what": "update frequency promised monthly; last update late"})
    assert r.status_code == 201
    order, due = r.json["order_id"], r.json["due_at"]
    assert due[:10] == (clock.now + dt.timedelta(days=30)).date().isoformat()  # time_limits.rectification_days
    assert client.get(f"/api/v1/rectifications/{order}", headers=tok["owner2"]).status_code == 404
    mine = client.get("/api/v1/rectifications", headers=tok["owner"]).json["rectifications"]
    assert [(o["order_id"], o["overdue"]) for o in mine if o["dataset"] == "residents"] == [(order, False)]
    assert order not in [o["order_id"] for o in
                         client.get("/api/v1/rectifications", headers=tok["owner2"]).json["rectifications"]]
    assert client.get("/api/v1/overdue", headers=tok["owner"]).json["overdue"] == []
    clock.advance(days=31)
    def orders(who):  # the world's pending application and objections are overdue too by now
        return [o["id"] for o in client.get("/api/v1/overdue", headers=tok[who]).json["overdue"]
                if o["kind"] == "rectification"]

    assert order in orders("owner") and order in orders("regulator") and order not in orders("owner2")

    def order_alerts(who):
        return [a for a in client.get("/api/v1/alerts?kind=overdue", headers=tok[who]).json["alerts"]
                if a["subject"] == f"rectification/{order}"]

    alerts = order_alerts("regulator")
    assert len(alerts) == 1 and alerts[0]["details"]["due_at"] == due
    assert [a["alert_id"] for a in order_alerts("owner")] == [alerts[0]["alert_id"]]
    assert order_alerts("owner2") == []
    assert len(order_alerts("regulator")) == 1  # evaluated again: still one alert
    # closure needs the owner's report first, then the regulator's sign-off
    assert client.post(f"/api/v1/rectifications/{order}/close", headers=tok["regulator"],
                       json={"note": "ok"}).status_code == 409
    assert client.post(f"/api/v1/rectifications/{order}/close", headers=tok["owner"],
                       json={"note": "ok"}).status_code == 403
    r = client.post(f"/api/v1/rectifications/{order}/response", headers=tok["owner"],
                    json={"response": "version 2 published; schedule fixed"})
    assert r.json["status"] == "submitted"
    r = client.post(f"/api/v1/rectifications/{order}/close", headers=tok["regulator"],
                    json={"accept": True, "note": "verified"})
    assert r.json["status"] == "closed"
    assert order not in orders("regulator")
    # the alert is handled from itself: resolved with a note
    alert = alerts[0]["alert_id"]
    r = client.post(f"/api/v1/alerts/{alert}/handle", headers=tok["regulator"],
                    json={"action": "resolve", "note": "order closed"})
    assert r.json["status"] == "resolved"
    assert audit_entries(sb, "alert.handled")[-1]["details"]["note"] == "order closed"
    assert {e["action"] for e in audit_entries(sb, "rectification.ordered")} == {"rectification.ordered"}


def test_time_limits_come_from_settings_an_admin_edits(env):
    sb, client, tok, clock, w = env
    assert client.put("/api/v1/settings/time_limits.application_days", headers=tok["owner"],
                      json={"value": 3}).status_code == 403
    mark = audit_size(sb)
    r = client.put("/api/v1/settings/time_limits.application_days", headers=tok["admin"], json={"value": 3})
    assert r.status_code == 200 and (r.json["old"], r.json["new"]) == (15, 3)
    (entry,) = audit_entries(sb, "setting.changed", mark)
    assert (entry["actor"], entry["role"]) == ("admin", "admin")
    assert client.put("/api/v1/settings/time_limits.application_days", headers=tok["admin"],
                      json={"value": 0}).status_code == 400
    listed = {s["name"]: s["value"] for s in client.get("/api/v1/settings", headers=tok["regulator"]).json["settings"]}
    assert listed["time_limits.application_days"] == 3
    app = client.post("/api/v1/applications", headers=tok["researcher"], json={
        "datasets": ["residents"], "scenario": "s", "purpose": "p", "commitment_accepted": True})
    assert app.json["due_at"][:10] == (clock.now + dt.timedelta(days=3)).date().isoformat()
    clock.advance(days=4)
    overdue = client.get("/api/v1/overdue", headers=tok["owner"]).json["overdue"]
    kinds = {(o["kind"], o["id"]) for o in overdue}
    assert ("application", app.json["application_id"]) in kinds
    assert ("application", app.json["application_id"]) not in {
        (o["kind"], o["id"]) for o in client.get("/api/v1/overdue", headers=tok["owner2"]).json["overdue"]}
    seen = client.get(f"/api/v1/applications/{app.json['application_id']}", headers=tok["researcher"]).json
    assert seen["overdue"] is True
    # objections are due after objection_days (15): the world's objections are now 4 days old
    clock.advance(days=12)
    overdue = client.get("/api/v1/overdue", headers=tok["regulator"]).json["overdue"]
    assert ("objection", w.own.objection) in {(o["kind"], o["id"]) for o in overdue}


def test_researcher_is_warned_before_automatic_suspension(env):
    sb, client, tok, _clock, w = env
    with transaction(sb.conn()):
        workflow.SETTING_GROUP.set(sb.conn(), "auto_suspend_refusals", 3)
    approval = w.own.approval
    first = query(client, tok, approval, "SELECT COUNT(*) FROM tax_records")
    assert first.json["error"]["code"] == "out_of_scope"
    assert "Warning: 2 more out-of-scope attempts" in first.json["error"]["message"]
    second = query(client, tok, approval, "SELECT name FROM residents")
    assert "Warning: 1 more out-of-scope attempt " in second.json["error"]["message"]
    third = query(client, tok, approval, "SELECT COUNT(*) FROM tax_records")
    message = third.json["error"]["message"]
    assert "suspended automatically" in message and "target_type suspension" in message
    # a refusal that does not count carries no warning
    with transaction(sb.conn()):
        sb.conn().execute("UPDATE suspensions SET lifted_at = '2000-01-01T00:00:00Z'")
    other = query(client, tok, 999999)
    assert "Warning" not in json.dumps(other.json)


def test_reassessment_dates_and_late_updates_remind_owner_and_regulator(env):
    """第十一条: periodic reassessment; 第十四条: updates at the promised frequency."""
    sb, client, tok, clock, _w = env
    entry = client.get("/api/v1/catalog/residents", headers=tok["owner"]).json
    assert set(entry["schedule"]) == {"reassessment", "update"}  # residents: monthly
    assert client.get("/api/v1/catalog/residents").json["schedule"] is None  # not public
    clock.advance(days=31 + 4)  # a month and the 3-day grace

    def due(who, kind):
        return [o["dataset"] for o in client.get("/api/v1/overdue", headers=tok[who]).json["overdue"]
                if o["kind"] == kind]

    assert "residents" in due("owner", "update") and "residents" in due("regulator", "update")
    assert "residents" not in due("owner2", "update") and due("owner", "reassessment") == []
    alerts = [a for a in client.get("/api/v1/alerts?kind=overdue", headers=tok["owner"]).json["alerts"]
              if a["subject"] == "dataset/residents"]
    assert [a["details"]["item"] for a in alerts] == ["update"]
    clock.advance(days=366)
    assert "residents" in due("regulator", "reassessment")
