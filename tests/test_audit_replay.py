"""Replay from the log alone: budgets over time, per-researcher counts, suspensions,
ledger comparison, and the self-contained HTML report."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from test_audit_support import T0, create_log, crypto_profile, fill, th  # noqa: F401 (crypto_profile: fixture)

from audit_log import store
from audit_log.replay import compare_with_ledger, read_jsonl, replay
from audit_log.report import render_html

# Every test here runs once per cryptography profile (issue 17): SHA-256/Ed25519 and SM3/SM2.
pytestmark = pytest.mark.usefixtures("crypto_profile")


@pytest.fixture(scope="module")
def log_entries(tmp_path_factory, crypto_profile):  # noqa: F811
    d = tmp_path_factory.mktemp("replay")
    conn = create_log(d / "a.db")
    fill(conn, 1000)
    store.export_jsonl(conn, d / "log.jsonl")
    return read_jsonl(d / "log.jsonl")


def test_budget_per_approval(log_entries):
    report = replay(log_entries)
    assert report["entries"] == 1000
    released = [e for e in log_entries if e["action"] == "query.released"]
    for key, rec in report["approvals"].items():
        mine = [e for e in released if str(e["details"]["approval_id"]) == key]
        assert rec["releases"] == len(mine)
        assert rec["epsilon_spent"] == pytest.approx(sum(e["details"]["epsilon"] for e in mine))
        assert rec["granted"]["epsilon_total"] == 1000.0
        spent = [p["epsilon_spent"] for p in rec["timeline"]]
        assert spent == sorted(spent)
    assert report["inconsistencies"] == []


def test_counts_per_researcher_and_events(log_entries):
    report = replay(log_entries)
    refused = sum(1 for e in log_entries if e["action"] == "query.refused")
    assert sum(r["refusals"] for r in report["researchers"].values()) == refused
    assert report["researchers"]["researcher1"]["refusal_codes"] == {
        "column_not_allowed": report["researchers"]["researcher1"]["refusals"]
    }
    assert len(report["suspensions"]) == sum(
        1 for e in log_entries if e["action"] == "suspension.created"
    )


def _released(seq, approval, eps, budget_after):
    return {
        "seq": seq,
        "time": (T0 + timedelta(minutes=seq)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor": "r",
        "role": "researcher",
        "action": "query.released",
        "subject": f"query:{seq}",
        "details": {
            "approval_id": approval,
            "epsilon": eps,
            "delta": 0.0,
            "budget_after": budget_after,
        },
    }


def test_inconsistent_budget_reports_are_flagged():
    entries = [
        {
            "seq": 0,
            "time": "2025-03-01T08:00:00.000000Z",
            "actor": "o",
            "role": "owner",
            "action": "approval.created",
            "subject": "approval:9",
            "details": {"approval_id": 9, "epsilon_total": 2.0, "delta_total": 0.0},
        },
        _released(1, 9, 0.5, {"epsilon_spent": 0.5, "epsilon_remaining": 1.5}),
        _released(2, 9, 0.5, 1.0),  # a number: read as remaining (2.0 - 1.0)
        _released(3, 9, 0.5, {"epsilon_spent": 1.2}),  # wrong: should be 1.5
    ]
    report = replay(entries)
    assert [(i["seq"], i["approval_id"]) for i in report["inconsistencies"]] == [(3, 9)]


def test_ledger_comparison(log_entries):
    report = replay(log_entries)
    ledger = {
        int(k): (v["epsilon_spent"], v["delta_spent"]) for k, v in report["approvals"].items()
    }
    assert compare_with_ledger(report, ledger) == []
    ledger[1] = (ledger[1][0] + 0.1, ledger[1][1])
    ledger[77] = (1.0, 0.0)
    diffs = compare_with_ledger(report, ledger)
    assert {d["approval_id"] for d in diffs} == {"1", "77"}
    assert "Differences found" in render_html(report)


def test_html_is_self_contained_and_escaped():
    entries = [_released(1, "<script>alert(1)</script>", 0.5, None)]
    entries[0]["actor"] = '"><img src=x onerror=alert(1)>'
    html = render_html(replay(entries))
    assert "<svg" in html and "<polyline" in html
    assert "<script" not in html and "<img" not in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", html)
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_empty_log():
    report = replay([])
    assert report["entries"] == 0 and "No releases" in render_html(report)
