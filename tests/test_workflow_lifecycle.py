"""The regulation's lifecycle through the JSON API (issue 6; 第十五、二十二、二十六条):
apply → approve → query → suspend → refused → lift → query → expire → refused, each step's
audit entry present and attributed (actor and role), on an injected clock."""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox.errors import SandboxError
from sandbox.governance import suspensions
from sandbox.service.pipeline import QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.conftest import FrozenClock
from tests.test_workflow_support import audit_entries, audit_size, bearer, demo_copy


@pytest.fixture
def clocked(demo_template, tmp_path):
    """(Sandbox on a frozen clock, Flask client, credentials) over a demo workspace copy."""
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    sb, creds = demo_copy(demo_template, tmp_path, now=clock)
    return sb, create_app(sb, {"TESTING": True}).test_client(), creds, clock


def one_entry(sb, action: str, since: int, actor: str, role: str, **details):
    found = audit_entries(sb, action, since)
    assert len(found) == 1, (action, found)
    entry = found[0]
    assert (entry["actor"], entry["role"]) == (actor, role), entry
    for key, value in details.items():
        assert entry["details"][key] == value, (action, key, entry["details"])
    return entry


def test_apply_approve_query_suspend_lift_expire(clocked):
    sb, client, creds, clock = clocked
    researcher, owner = bearer(creds["researcher"]["token"]), bearer(creds["owner"]["token"])

    # 1. apply (第十五条): datasets, columns, scenario, purpose, security commitment
    mark = audit_size(sb)
    r = client.post("/api/v1/applications", headers=researcher, json={
        "datasets": ["residents"], "columns": {"residents": ["district", "age", "income"]},
        "aggregates": ["count", "mean"], "scenario": "Income by district", "purpose": "lifecycle test",
        "commitment_accepted": True,
    })
    assert r.status_code == 201, r.json
    assert r.json["status"] == "pending"
    app_id = r.json["application_id"]
    one_entry(sb, "application.submitted", mark, "researcher", "researcher", application_id=app_id)

    # 2. approve, narrowing the columns; budget and expiry set by the owner
    mark = audit_size(sb)
    expires = (clock() + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=owner, json={
        "decision": "approve", "reason": "scenario fits 第十五条", "epsilon_total": 3, "delta_total": 1e-6,
        "epsilon_per_query": 1, "expires": expires, "columns": {"residents": ["district", "income"]},
    })
    assert r.status_code == 200, r.json
    approval_id = r.json["approval_id"]
    one_entry(sb, "approval.granted", mark, "owner", "owner", approval_id=approval_id, epsilon_total=3.0)
    view = client.get(f"/api/v1/approvals/{approval_id}", headers=researcher).json
    assert view["status"] == "active" and view["signature"]["verified"] is True
    assert view["scope"]["columns"] == {"residents": ["district", "income"]}

    def query(sql="SELECT district, AVG(income) FROM residents GROUP BY district"):
        return client.post("/api/v1/queries", headers=researcher,
                           json={"approval_id": approval_id, "sql": sql, "epsilon": 0.5})

    # 3. query
    mark = audit_size(sb)
    r = query()
    assert r.status_code == 200, r.json
    one_entry(sb, "query.released", mark, "researcher", "researcher", approval_id=approval_id)

    # 4. suspend (第二十二条) by the owner
    mark = audit_size(sb)
    r = client.post("/api/v1/suspensions", headers=owner, json={"approval_id": approval_id,
                                                                "reason": "audit of use"})
    assert r.status_code == 201, r.json
    suspension_id = r.json["suspension_id"]
    one_entry(sb, "suspension.created", mark, "owner", "owner", approval_id=approval_id, automatic=False)

    # 5. refused at the very next request (cached or not: suspension comes first)
    mark = audit_size(sb)
    r = query()
    assert r.status_code == 403 and r.json["error"]["code"] == "suspended"
    one_entry(sb, "query.refused", mark, "researcher", "researcher", code="suspended")
    assert client.get(f"/api/v1/approvals/{approval_id}", headers=researcher).json["status"] == "suspended"

    # 6. lift
    mark = audit_size(sb)
    r = client.post(f"/api/v1/suspensions/{suspension_id}/lift", headers=owner, json={"reason": "cleared"})
    assert r.status_code == 200, r.json
    one_entry(sb, "suspension.lifted", mark, "owner", "owner", suspension_id=suspension_id)

    # 7. query again
    mark = audit_size(sb)
    r = query("SELECT district, COUNT(*) FROM residents GROUP BY district")
    assert r.status_code == 200, r.json
    one_entry(sb, "query.released", mark, "researcher", "researcher", approval_id=approval_id)

    # 8. expire: the clock passes the expiry; refused (active_approval)
    clock.advance(days=31)
    mark = audit_size(sb)
    r = query("SELECT COUNT(*) FROM residents")
    assert r.status_code == 403 and r.json["error"]["code"] == "expired"
    one_entry(sb, "query.refused", mark, "researcher", "researcher", code="expired")
    assert client.get(f"/api/v1/approvals/{approval_id}", headers=researcher).json["status"] == "expired"


def test_rejection_is_logged_with_its_reason_and_the_applicant_sees_it(clocked):
    sb, client, creds, _ = clocked
    researcher, owner = bearer(creds["researcher"]["token"]), bearer(creds["owner"]["token"])
    app_id = client.post("/api/v1/applications", headers=researcher, json={
        "datasets": ["clinic_visits"], "scenario": "Visits", "purpose": "p", "commitment_accepted": True,
    }).json["application_id"]
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=owner, json={"decision": "reject"})
    assert r.status_code == 400 and r.json["error"]["code"] == "missing_reason"  # 第十六条: reasons
    mark = audit_size(sb)
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=owner,
                    json={"decision": "reject", "reason": "purpose too vague"})
    assert r.status_code == 200 and r.json["status"] == "rejected"
    one_entry(sb, "application.rejected", mark, "owner", "owner", reason="purpose too vague")
    got = client.get(f"/api/v1/applications/{app_id}", headers=researcher).json
    assert (got["status"], got["reason"], got["decided_by"]) == ("rejected", "purpose too vague", "owner")
    again = client.post(f"/api/v1/applications/{app_id}/decision", headers=owner,
                        json={"decision": "reject", "reason": "again"})
    assert again.status_code == 409


BAD_APPLICATIONS = [
    ({"commitment_accepted": False}, "commitment_required"),
    ({"commitment_accepted": "yes"}, "commitment_required"),
    ({"datasets": ["nope"]}, "unknown_dataset"),
    ({"datasets": []}, "bad_request"),
    ({"columns": {"residents": ["id_number"]}}, "identifier_column"),
    ({"columns": {"residents": ["no_such_column"]}}, "bad_request"),
    ({"scenario": ""}, "missing_scenario"),
    ({"aggregates": ["median_of_everything"]}, "bad_request"),
]


def test_bad_applications_are_refused_and_not_logged(clocked):
    sb, client, creds, _ = clocked
    for change, code in BAD_APPLICATIONS:
        body = {"datasets": ["residents"], "scenario": "s", "purpose": "p", "commitment_accepted": True, **change}
        mark = audit_size(sb)
        r = client.post("/api/v1/applications", headers=bearer(creds["researcher"]["token"]), json=body)
        assert r.status_code == 400 and r.json["error"]["code"] == code, (change, r.json)
        assert audit_size(sb) == mark


def test_approval_may_only_narrow_the_request(clocked):
    sb, client, creds, clock = clocked
    researcher, owner = bearer(creds["researcher"]["token"]), bearer(creds["owner"]["token"])
    app_id = client.post("/api/v1/applications", headers=researcher, json={
        "datasets": ["residents"], "columns": {"residents": ["district", "age"]}, "aggregates": ["count"],
        "scenario": "s", "purpose": "p", "commitment_accepted": True}).json["application_id"]
    base = {"decision": "approve", "epsilon_total": 1, "delta_total": 0, "epsilon_per_query": 1,
            "expires": "2999-01-01"}
    for extra in ({"columns": {"residents": ["income"]}}, {"aggregates": ["sum"]},
                  {"epsilon_per_query": 2}, {"expires": "2001-01-01"}, {"delta_total": 0.5}):
        r = client.post(f"/api/v1/applications/{app_id}/decision", headers=owner, json={**base, **extra})
        assert r.status_code == 400, (extra, r.json)
    r = client.post(f"/api/v1/applications/{app_id}/decision", headers=owner, json=base)
    assert r.status_code == 200


def test_regulator_suspends_a_researcher_everywhere_at_once(clocked):
    """A user suspension stops queries on every approval and ends console sessions (第二十二条)."""
    sb, client, creds, _ = clocked
    conn = sb.conn()
    researcher_id = conn.execute("SELECT id FROM users WHERE username = 'researcher'").fetchone()[0]
    conn.execute("INSERT INTO web_sessions (id_hash, user_id, created_at) VALUES ('h1', ?, '2025-01-01')",
                 (researcher_id,))
    mark = audit_size(sb)
    r = client.post("/api/v1/suspensions", headers=bearer(creds["regulator"]["token"]),
                    json={"user": "researcher", "reason": "investigation"})
    assert r.status_code == 201, r.json
    one_entry(sb, "suspension.created", mark, "regulator", "regulator", user="researcher")
    assert conn.execute("SELECT revoked_at FROM web_sessions WHERE id_hash = 'h1'").fetchone()[0] is not None
    q = client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]),
                    json={"approval_id": creds["researcher"]["approval_id"], "sql": "SELECT COUNT(*) FROM residents"})
    assert q.status_code == 403 and q.json["error"]["code"] == "suspended"
    # the token still identifies them (to read why, and to object: 第十七条), but no new application
    r = client.post("/api/v1/applications", headers=bearer(creds["researcher"]["token"]), json={
        "datasets": ["residents"], "scenario": "s", "purpose": "p", "commitment_accepted": True})
    assert r.status_code == 403 and r.json["error"]["code"] == "suspended"
    mine = client.get("/api/v1/suspensions", headers=bearer(creds["researcher"]["token"])).json["suspensions"]
    assert [s["reason"] for s in mine if s["active"]] == ["investigation"]
    # an owner cannot lift a regulator's suspension; the regulator can
    sid = mine[0]["suspension_id"]
    assert client.post(f"/api/v1/suspensions/{sid}/lift", headers=bearer(creds["owner"]["token"]),
                       json={"reason": "x"}).status_code == 403
    assert client.post(f"/api/v1/suspensions/{sid}/lift", headers=bearer(creds["regulator"]["token"]),
                       json={"reason": "done"}).status_code == 200


def test_waiting_request_is_refused_when_suspended_meanwhile(clocked):
    """The release transaction re-checks: a suspension between planning and release wins."""
    sb, _, creds, _ = clocked
    user, owner = find_user(sb.conn(), "researcher"), find_user(sb.conn(), "owner")
    assert user and owner
    original = sb.engine.execute

    def execute_then_suspend(*args, **kwargs):
        result = original(*args, **kwargs)
        other = Sandbox(sb.ws, now=sb.now)  # another request, on another connection
        suspensions.create(other, owner, {"approval_id": creds["researcher"]["approval_id"], "reason": "now"})
        return result

    sb.engine.execute = execute_then_suspend
    with pytest.raises(SandboxError) as err:
        sb.run_query(user, QueryRequest(creds["researcher"]["approval_id"], "SELECT COUNT(*) FROM residents",
                                                0.5))
    assert err.value.code == "suspended"
    assert sb.conn().execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0


def test_ids_beyond_sqlite_integers_read_as_missing(clocked):
    _, client, creds, _ = clocked
    huge = 10**30
    researcher = bearer(creds["researcher"]["token"])
    for path in (f"/api/v1/applications/{huge}", f"/api/v1/approvals/{huge}", f"/api/v1/approvals/{huge}/budget",
                 f"/api/v1/objections/{huge}"):
        r = client.get(path, headers=researcher)
        assert r.status_code == 404 and r.json["error"]["code"] == "not_found", (path, r.json)
    r = client.post("/api/v1/queries", headers=researcher, json={"approval_id": huge, "sql": "SELECT COUNT(*) FROM residents"})
    assert r.status_code == 404
    r = client.post("/api/v1/suspensions", headers=bearer(creds["regulator"]["token"]),
                    json={"approval_id": huge, "reason": "x"})
    assert r.status_code == 404
