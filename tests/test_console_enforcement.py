"""Console of reviews, enforcement and time limits (issue 14), in both languages: rectification
orders with due dates and sign-off, overdue items on the dashboards, termination, alert
handling, and the admin's settings page."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

import audit_log.store as audit_store
from sandbox.service.query_service import Sandbox
from sandbox.store.workspace import Workspace
from sandbox.web import create_app
from tests.conftest import FrozenClock
from tests.test_console import login, post, text
from tests.test_workflow_support import world_copy

PASSWORDS = {"owner2": "owner2-password", "admin": "admin-password", "researcher2": "researcher2-pass"}


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    root = tmp_path / "clocked"
    shutil.copytree(w.sb.ws.root, root)
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    sb = Sandbox(Workspace.open(root), now=clock)
    return sb, create_app(sb, {"TESTING": True}), clock, w


def client(app, username: str, lang: str):
    c = app.test_client()
    c.set_cookie("sandbox_lang", lang)
    assert login(c, username, PASSWORDS.get(username)).status_code == 302
    return c


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_rectification_order_overdue_and_sign_off_in_the_console(env, lang):
    sb, app, clock, _w = env
    zh = lang == "zh-CN"
    regulator, owner = client(app, "regulator", lang), client(app, "owner", lang)
    page = text(regulator.get("/enforcement"))
    assert ("责令整改" if zh else "Order a rectification") in page
    r = post(regulator, "/enforcement/rectifications", {"owner": "owner", "dataset": "residents",
                                                        "what": "publish the promised monthly update"},
             page="/enforcement")
    assert r.status_code == 303
    orders = [o for o in _orders(sb) if o["what"] == "publish the promised monthly update"]
    assert len(orders) == 1
    order = orders[0]["id"]
    assert "publish the promised monthly update" in text(owner.get("/enforcement"))
    clock.advance(days=31)
    regulator, owner = client(app, "regulator", lang), client(app, "owner", lang)  # sessions expired meanwhile
    overview = text(owner.get("/owner"))
    assert 'id="stat-overdue"' in overview and ("逾期事项" if zh else "overdue items") in overview
    page = text(owner.get("/enforcement"))
    assert (f"整改通知 {order} 尚未签核" if zh else f"Rectification order {order} is not signed off") in page
    r = post(owner, f"/enforcement/rectifications/{order}/response", {"response": "update published"},
             page="/enforcement")
    assert r.status_code == 303
    assert ("待签核" if zh else "awaiting sign-off") in text(regulator.get("/enforcement"))
    r = post(regulator, f"/enforcement/rectifications/{order}/close", {"accept": "1", "note": "checked"},
             page="/enforcement")
    assert r.status_code == 303
    assert [o["status"] for o in _orders(sb) if o["id"] == order] == ["closed"]
    # the overdue alert shows on the alerts page with its handling buttons; resolve it there
    alerts_page = text(regulator.get("/regulator/alerts"))
    assert ("逾期" if zh else "Overdue") in alerts_page and 'class="inline alert-handle"' in alerts_page
    alert_id = sb.conn().execute("SELECT id FROM alerts WHERE dedupe_key = ?",
                                 (f"overdue:rectification:{order}",)).fetchone()[0]
    r = post(regulator, f"/alerts/{alert_id}/handle", {"action": "resolve", "note": "order closed",
                                                      "next": "/regulator/alerts"}, page="/regulator/alerts")
    assert r.status_code == 303 and r.headers["Location"] == "/regulator/alerts"
    assert sb.conn().execute("SELECT status FROM alerts WHERE id = ?", (alert_id,)).fetchone()[0] == "resolved"


def _orders(sb):
    return [dict(r) for r in sb.conn().execute("SELECT * FROM rectification_orders ORDER BY id")]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_owner_terminates_an_approval_in_the_console(env, lang):
    sb, app, _clock, w = env
    owner = client(app, "owner", lang)
    r = post(owner, "/enforcement/terminations", {"target": str(w.own.approval), "reason": "false material"},
             page="/enforcement")
    assert r.status_code == 303
    page = text(owner.get("/enforcement"))
    assert ("已终止" if lang == "zh-CN" else "terminated") in page and "false material" in page
    researcher = client(app, "researcher", lang)
    assert "false material" in text(researcher.get("/enforcement"))
    # the other owner cannot terminate it (not their approval): refused, nothing recorded
    other = client(app, "owner2", lang)
    post(other, "/enforcement/terminations", {"target": str(w.own.approval), "reason": "x"}, page="/enforcement")
    assert sb.conn().execute("SELECT COUNT(*) FROM terminations").fetchone()[0] == 1


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_admin_edits_time_limits_and_the_change_is_logged(env, lang):
    sb, app, _clock, _w = env
    admin = client(app, "admin", lang)
    page = text(admin.get("/admin/settings"))
    assert "time_limits.application_days" in page and ("设置" if lang == "zh-CN" else "Settings") in page
    before = audit_store.size(sb.conn())
    r = post(admin, "/admin/settings", {"name": "time_limits.application_days", "value": "7"},
             page="/admin/settings")
    assert r.status_code == 303
    (entry,) = audit_store.entries(sb.conn(), before, action="setting.changed")
    assert (entry["actor"], entry["details"]["new"]) == ("admin", 7)
    assert 'value="7"' in text(admin.get("/admin/settings"))
    # other roles cannot open it
    assert client(app, "owner", lang).get("/admin/settings").status_code == 403
