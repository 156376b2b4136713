"""Alerts on anomalies (第二十二、二十三条), each raised by real API traffic, stored once,
recorded in the audit log as ``alert.raised`` and visible to the approval's owner and to
regulators only."""

from __future__ import annotations

import doctest
import threading

import pytest

from sandbox.governance import alerts, where_families
from sandbox.service.operations import SandboxAdmin
from sandbox.service.pipeline import QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store.users import find_user
from sandbox.store.workspace import Workspace
from sandbox.web import create_app
from tests.conftest import bearer


@pytest.fixture
def world(demo):
    """The demo with low thresholds, plus a second owner (who owns nothing here) and an admin."""
    sb, creds = demo
    conn = sb.conn()
    for name, value in (("alert_refusals", 3), ("alert_differencing_queries", 3), ("alert_repeats", 3)):
        alerts.SETTING_GROUP.set(conn, name, value)
    admin = SandboxAdmin(sb)
    tokens = {role: creds[role]["token"] for role in ("researcher", "owner", "regulator")}
    tokens["owner2"] = admin.create_user("owner2", "owner", "owner2-password")[1]
    tokens["admin"] = admin.create_user("admin", "admin", "admin-password")[1]
    client = create_app(sb, {"TESTING": True}).test_client()
    return sb, client, tokens, creds["researcher"]["approval_id"]


def query(client, tokens, approval, sql, epsilon=0.1, **extra):
    return client.post("/api/v1/queries", headers=bearer(tokens["researcher"]),
                       json={"approval_id": approval, "sql": sql, "epsilon": epsilon, **extra})


def alerts_of(client, tokens, who="regulator", **params):
    resp = client.get("/api/v1/alerts", headers=bearer(tokens[who]), query_string=params)
    assert resp.status_code == 200, resp.json
    return resp.json["alerts"]


def logged(sb: Sandbox) -> list[dict]:
    import audit_log.store as store

    return store.entries(sb.conn(), 0, action="alert.raised")


def test_doctests():
    result = doctest.testmod(where_families)
    assert result.failed == 0 and result.attempted >= 4


def test_refusal_burst_is_raised_once_per_burst_and_logged(world):
    sb, client, tokens, approval = world
    for i in range(2):
        assert query(client, tokens, approval, f"SELECT COUNT(* FROM residents -- {i}").status_code == 400
    assert alerts_of(client, tokens) == []
    assert query(client, tokens, approval, "SELEC 1").status_code == 400  # the third: raised now
    raised = sb.conn().execute("SELECT * FROM alerts").fetchall()
    assert [(r["kind"], r["approval_id"]) for r in raised] == [("refusal_burst", approval)]
    assert query(client, tokens, approval, "SELEC 2").status_code == 400  # same burst: counted already
    (alert,) = alerts_of(client, tokens, "owner")
    assert alert["kind"] == "refusal_burst" and alert["researcher"] == "researcher"
    assert alert["details"]["refusals"] == 3
    assert alert["details"]["codes"] == {"sql_syntax": 2, "statement_not_allowed": 1}
    (entry,) = logged(sb)
    assert entry["seq"] == alert["audit_seq"] and entry["subject"] == f"alert/{alert['alert_id']}"
    assert entry["actor"] == "system" and entry["details"]["kind"] == "refusal_burst"
    for i in range(2):  # with the fourth, three new refusals: a second burst
        query(client, tokens, approval, f"SELEC {i + 3}")
    # issue 14: de-duplicated — the open alert counts the second burst, with the time range
    (alert,) = alerts_of(client, tokens)
    assert alert["occurrences"] == 2 and alert["details"]["refusals"] == 6
    assert alert["first_seen_at"] <= alert["last_seen_at"]
    assert len(logged(sb)) == 1
    import audit_log.store as store

    (repeat,) = store.entries(sb.conn(), 0, action="alert.repeated")
    assert repeat["details"]["occurrences"] == 2
    # once resolved, the next burst is a new alert
    r = client.post(f"/api/v1/alerts/{alert['alert_id']}/handle", headers=bearer(tokens["regulator"]),
                    json={"action": "resolve", "note": "spoke to the researcher"})
    assert r.status_code == 200
    for i in range(3):
        query(client, tokens, approval, f"SELEC {i + 10}")
    assert [a["occurrences"] for a in alerts_of(client, tokens)] == [1, 2]


def test_budget_alerts_at_80_and_95_percent(world):
    sb, client, tokens, approval = world
    alerts.SETTING_GROUP.set(sb.conn(), "alert_differencing_queries", 0)
    levels = []
    for i in range(12):  # ε = 1 each against a total of 10
        resp = query(client, tokens, approval, f"SELECT COUNT(*) FROM residents WHERE age > {i}", epsilon=1.0)
        if resp.status_code == 409:
            break
        spent = resp.json["budget"]["epsilon"]["spent"] / resp.json["budget"]["epsilon"]["total"]
        kinds = [a["details"]["level"] for a in alerts_of(client, tokens, "owner", kind="budget")]
        levels.append((spent, sorted(kinds)))
    # each charge is OpenDP's ε for the measurement, a hair under 1: levels allow for float noise
    assert all(k == [lvl for lvl in (80, 95) if spent * 100 >= lvl - 1e-6] for spent, k in levels), levels
    assert [k for _spent, k in levels][7:] == [[80], [80], [80, 95]]
    assert levels[-1][1] == [80, 95]
    budget = alerts_of(client, tokens, kind="budget")
    assert [a["severity"] for a in budget] == ["warning", "info"]  # newest first
    assert sorted(e["details"]["details"]["level"] for e in logged(sb)) == [80, 95]


def test_differencing_pattern_of_releases_one_predicate_apart(world):
    sb, client, tokens, approval = world
    sqls = ["SELECT COUNT(*) FROM residents WHERE age > 30",
            "SELECT COUNT(*) FROM residents WHERE age > 40",
            "SELECT COUNT(*) FROM residents"]
    for n, sql in enumerate(sqls, 1):
        assert query(client, tokens, approval, sql).status_code == 200
        found = alerts_of(client, tokens, "owner", kind="differencing")
        assert len(found) == (1 if n == 3 else 0)
    (alert,) = found
    assert alert["details"]["queries"] == 3
    assert alert["details"]["predicates"] == ["age > 30", "age > 40"]
    assert alert["details"]["shared"] == "SELECT COUNT(*) FROM residents"
    assert len(alert["details"]["query_ids"]) == 3
    query(client, tokens, approval, "SELECT COUNT(*) FROM residents WHERE age > 50")  # same family
    assert len(alerts_of(client, tokens, kind="differencing")) == 1
    assert [e["details"]["kind"] for e in logged(sb)] == ["differencing"]


def test_averaging_counts_fresh_releases_and_cached_repeats(world):
    sb, client, tokens, approval = world
    sql = "SELECT district, AVG(income) FROM residents GROUP BY district"
    first = query(client, tokens, approval, sql, confidence=0.9)
    assert first.json["cached"] is False
    # another ε is a fresh release (another confidence is not: same noise, new intervals)
    assert query(client, tokens, approval, sql, epsilon=0.11, confidence=0.9).json["cached"] is False
    assert alerts_of(client, tokens, kind="averaging") == []
    assert query(client, tokens, approval, sql, confidence=0.9).json["cached"] is True
    (alert,) = alerts_of(client, tokens, "owner", kind="averaging")
    assert (alert["details"]["releases"], alert["details"]["cached_repeats"]) == (2, 1)
    assert sb.conn().execute("SELECT query_id FROM query_repeats").fetchall()[0][0] == first.json["query_id"]
    assert query(client, tokens, approval, sql, confidence=0.9).json["cached"] is True
    assert len(alerts_of(client, tokens, kind="averaging")) == 1  # stored once


def test_queries_from_scripts_are_evaluated_by_the_service_at_once(world):
    """The service owns the after-query hook (issue 19): a script calling it directly raises
    the alert with its query, before anyone reads the alerts."""
    sb, client, tokens, approval = world
    researcher = find_user(sb.conn(), "researcher")
    for threshold in (30, 40, 50):
        sb.run_query(researcher, QueryRequest(approval, f"SELECT COUNT(*) FROM residents WHERE age > {threshold}", 0.1))
    assert [r["kind"] for r in sb.conn().execute("SELECT kind FROM alerts")] == ["differencing"]


def test_a_console_query_triggers_the_alerts_pass(world):
    """Queries from the console's workbench reach the same hook: the third refusal raises the
    burst alert with that request (no alert page read in between, so no sweep)."""
    from tests.test_console import login, run_query

    sb, client, tokens, approval = world
    c = client.application.test_client()
    assert login(c, "researcher").status_code == 302
    for i in range(2):
        assert run_query(c, approval, sql=f"SELEC {i}").status_code == 400
    assert sb.conn().execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 0
    assert run_query(c, approval, sql="SELEC 2").status_code == 400
    raised = sb.conn().execute("SELECT kind, approval_id FROM alerts").fetchall()
    assert [tuple(r) for r in raised] == [("refusal_burst", approval)]


def test_queries_no_pass_saw_are_evaluated_when_alerts_are_read(world, monkeypatch):
    """A query whose pass did not run here (another process's, one left to a concurrent
    pass) is evaluated by the sweep every read of the alerts runs."""
    sb, client, tokens, approval = world
    monkeypatch.setattr(sb.alert_passes, "after_query", lambda *_a: None)
    researcher = find_user(sb.conn(), "researcher")
    for threshold in (30, 40, 50):
        sb.run_query(researcher, QueryRequest(approval, f"SELECT COUNT(*) FROM residents WHERE age > {threshold}", 0.1))
    assert sb.conn().execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 0
    assert [a["kind"] for a in alerts_of(client, tokens, "owner")] == ["differencing"]


def test_only_the_approvals_owner_and_regulators_see_alerts(world):
    sb, client, tokens, approval = world
    for i in range(3):
        query(client, tokens, approval, f"SELEC {i}")
    assert len(alerts_of(client, tokens, "owner")) == len(alerts_of(client, tokens, "regulator")) == 1
    assert alerts_of(client, tokens, "owner2") == []
    for who, status, code in (("researcher", 403, "forbidden"), ("admin", 403, "forbidden"), (None, 401, "unauthorized")):
        resp = client.get("/api/v1/alerts", headers=bearer(tokens[who]) if who else {})
        assert resp.status_code == status and resp.json["error"]["code"] == code, who
    assert client.get("/api/v1/alerts?kind=nope", headers=bearer(tokens["owner"])).json["error"]["code"] == "bad_kind"
    assert client.get("/api/v1/alerts?approval_id=x", headers=bearer(tokens["owner"])).status_code == 400
    assert alerts_of(client, tokens, "owner", approval_id=approval + 1000) == []
    assert len(alerts_of(client, tokens, "owner", approval_id=approval)) == 1


def test_console_alert_pages_in_both_languages(world):
    from tests.test_rate_limits import login

    sb, client, tokens, approval = world
    for i in range(3):
        query(client, tokens, approval, f"SELEC {i}")
    app = client.application
    pages = {"owner": ("/owner/alerts", "/owner"), "regulator": ("/regulator/alerts", "/regulator")}
    for role, (page, overview) in pages.items():
        c = app.test_client()
        assert login(c, role, f"{role}-demo").status_code == 302
        zh = c.get(page).get_data(as_text=True)
        assert "短时间内多次被拒" in zh and "3 次查询被拒绝" in zh and 'id="alerts-table"' in zh
        assert 'id="alert-1"' in c.get(overview).get_data(as_text=True)
        c.set_cookie("sandbox_lang", "en")
        en = c.get(page + "?kind=refusal_burst").get_data(as_text=True)
        assert "Burst of refusals" in en and "3 refused queries within 15 minutes" in en
        assert "No alerts." in c.get(page + "?kind=budget").get_data(as_text=True)
    c = app.test_client()
    assert login(c, "researcher", "researcher-demo").status_code == 302
    assert c.get("/owner/alerts").status_code == 403 and c.get("/regulator/alerts").status_code == 403


def test_two_processes_evaluating_at_once_raise_an_alert_once(world):
    sb, client, tokens, approval = world
    researcher = find_user(sb.conn(), "researcher")
    for i in range(3):
        query(client, tokens, approval, f"SELEC {i}")
    sb.conn().execute("DELETE FROM alerts")  # as if no evaluation had run yet
    sandboxes = [Sandbox(Workspace.open(sb.ws.root)) for _ in range(2)]
    barrier = threading.Barrier(2)
    raised: list[list] = []

    def run(other: Sandbox) -> None:
        barrier.wait()
        raised.append(alerts.run_passes(other, researcher.id, approval))

    threads = [threading.Thread(target=run, args=(s,)) for s in sandboxes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in raised) == [0, 1]
    assert sb.conn().execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 1
