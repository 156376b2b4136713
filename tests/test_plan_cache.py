"""The service remembers checked plans per (SQL, approval and scope, dataset versions).

Issue 18: the guard took 2–40 ms of every release, and the same SQL at another ε is the
common case. A plan depends on nothing else (no data), so it is remembered; a refusal is
not (each is re-checked and logged); and the key holds the approval, so a hit never shows
one study another study's queries.
"""

from __future__ import annotations

import pytest

import query_guard
from sandbox.service.operations import SandboxAdmin
from sandbox.service.pipeline import QueryRefused, QueryRequest
from sandbox.store.users import find_user


@pytest.fixture
def counted(monkeypatch):
    calls: list[str] = []
    real = query_guard.plan

    def plan(sql, *args, **kwargs):
        calls.append(sql)
        return real(sql, *args, **kwargs)

    monkeypatch.setattr(query_guard, "plan", plan)
    return calls


def test_same_sql_at_another_epsilon_is_planned_once(demo, counted):
    sb, creds = demo
    researcher = find_user(sb.conn(), "researcher")
    aid = creds["researcher"]["approval_id"]
    sql = "SELECT district, COUNT(*) FROM residents GROUP BY district"
    a = sb.run_query(researcher, QueryRequest(aid, sql, 0.2))
    b = sb.run_query(researcher, QueryRequest(aid, sql, 0.3))
    assert not a["cached"] and not b["cached"]  # two releases, both charged
    assert counted.count(sql) == 1
    assert b["epsilon_spent"] == pytest.approx(0.3)


def test_refusals_are_not_remembered_and_each_is_logged(demo, counted):
    sb, creds = demo
    researcher = find_user(sb.conn(), "researcher")
    aid = creds["researcher"]["approval_id"]
    sql = "SELECT name FROM residents"
    before = sb.conn().execute("SELECT COUNT(*) FROM audit_entries WHERE action = 'query.refused'").fetchone()[0]
    for _ in range(2):
        with pytest.raises(QueryRefused):
            sb.run_query(researcher, QueryRequest(aid, sql, 0.2))
    after = sb.conn().execute("SELECT COUNT(*) FROM audit_entries WHERE action = 'query.refused'").fetchone()[0]
    assert counted.count(sql) == 2 and after == before + 2


def test_another_approval_plans_afresh(demo, counted):
    """A hit is only ever on the same approval's own earlier query."""
    sb, creds = demo
    conn = sb.conn()
    researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
    aid = creds["researcher"]["approval_id"]
    admin = SandboxAdmin(sb)
    app_id = admin.apply(researcher, {"datasets": ["residents"], "scenario": "second study",
                                      "purpose": "plan cache test", "commitment_accepted": True})
    other = admin.approve(owner, app_id, {"datasets": ["residents"]}, epsilon_total=5.0,
                          delta_total=1e-6, epsilon_per_query=1.0)
    sql = "SELECT COUNT(*) FROM residents"
    sb.run_query(researcher, QueryRequest(aid, sql, 0.2))
    sb.run_query(researcher, QueryRequest(other, sql, 0.2))
    sb.run_query(researcher, QueryRequest(other, sql, 0.25))
    assert counted.count(sql) == 2
    assert {k[1] for k in sb.plans.keys() if k[0] == sql} == {aid, other}
