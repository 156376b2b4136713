"""Time (issue 15): stored in UTC, shown in the display zone (Asia/Shanghai unless
SANDBOX_DISPLAY_TZ says otherwise); a date-only expiry is the end of that day there."""

from __future__ import annotations

import datetime as dt

import pytest

from sandbox.clock import display_zone, end_of_day, iso, parse_iso
from sandbox.errors import SandboxError
from sandbox.governance import applications
from sandbox.governance.workflow import parse_expiry
from sandbox.service.pipeline import QueryRequest
from sandbox.store.users import find_user
from tests import test_console as base

app = base.app  # the fixture: the console over a fresh demo workspace

UTC8 = dt.timezone(dt.timedelta(hours=8))


def test_end_of_day_is_the_last_moment_of_the_date_in_the_zone():
    assert iso(end_of_day("2027-06-30", UTC8)) == "2027-06-30T15:59:59.999999Z"
    assert iso(end_of_day("2027-06-30")) == "2027-06-30T15:59:59.999999Z"  # Asia/Shanghai by default
    assert iso(end_of_day("2027-01-15", dt.UTC)) == "2027-01-15T23:59:59.999999Z"


def test_the_display_zone_is_configurable_and_checked(monkeypatch):
    monkeypatch.setenv("SANDBOX_DISPLAY_TZ", "Europe/Berlin")
    assert iso(end_of_day("2027-06-30")) == "2027-06-30T21:59:59.999999Z"  # CEST, UTC+2
    monkeypatch.setenv("SANDBOX_DISPLAY_TZ", "Mars/Olympus")
    with pytest.raises(ValueError, match="SANDBOX_DISPLAY_TZ='Mars/Olympus' is not an IANA time zone"):
        display_zone()


def test_a_date_only_expiry_holds_through_that_day_in_beijing(demo):
    sb, _creds = demo
    sb.now = lambda: dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert parse_expiry("2027-06-30", sb) == "2027-06-30T15:59:59.999999Z"
    assert parse_expiry("2027-06-30T08:00:00+08:00", sb) == "2027-06-30T00:00:00.000000Z"


def test_an_approval_until_a_date_runs_until_midnight_beijing_time(app, demo):
    sb, creds = demo
    owner, researcher = find_user(sb.conn(), "owner"), find_user(sb.conn(), "researcher")
    app_id = applications.submit(sb, researcher, {
        "datasets": ["residents"], "columns": {"residents": ["district", "age"]},
        "scenario": "到期测试 expiry test", "purpose": "Check the end of the expiry day.",
        "commitment_accepted": True})["application_id"]
    approval_id = applications.decide(sb, owner, app_id, {
        "decision": "approve", "epsilon_total": 3, "delta_total": 0, "epsilon_per_query": 1,
        "expires": "2027-06-30", "reason": "ok"})["approval_id"]
    stored = sb.conn().execute("SELECT expires_at FROM approvals WHERE id = ?", (approval_id,)).fetchone()[0]
    assert stored == "2027-06-30T15:59:59.999999Z"
    sql = "SELECT district, COUNT(*) AS people FROM residents GROUP BY district"
    sb.now = lambda: parse_iso("2027-06-30T15:59:00Z")  # 23:59 in Beijing: still that day
    assert sb.run_query(researcher, QueryRequest(approval_id, sql, 0.5))["rows"]
    sb.now = lambda: parse_iso("2027-06-30T16:00:00Z")  # 00:00 on 1 July in Beijing
    with pytest.raises(SandboxError) as refused:
        sb.run_query(researcher, QueryRequest(approval_id, sql + " -- again", 0.5))
    assert refused.value.code == "expired"
    # Shown as the end of that day, in Beijing time, written the reader's way.
    when = app.jinja_env.filters["when"]
    with app.test_request_context():
        assert when(stored) == "2027年6月30日 23:59"
        assert when("2026-12-31T16:30:00Z") == "2027年1月1日 00:30"
    with app.test_request_context(headers={"Cookie": "sandbox_lang=en"}):
        assert when(stored) == "Jun 30, 2027 23:59"
        assert when(stored, seconds=True) == "Jun 30, 2027 23:59:59"
