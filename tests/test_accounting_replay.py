"""``sandbox audit replay`` recomputes the accountant's spent ε from the logged charges
alone, on the route the approval's logged terms fix (decision 0007), and flags a report
the charges do not give. Charges are ``query.started`` entries; in older logs,
``query.released`` / ``query.failed`` entries without a ``start_seq``."""

from __future__ import annotations

import copy
import json

import pytest

from privacy.accounting import Charge, Totals, choose_route, spent
from sandbox.governance.accounting_replay import check_reported_loss, grant_of, is_charge
from sandbox.service.pipeline import QueryRequest
from sandbox.store.users import find_user
from tests.test_privacy_ledger import new_approval


def _entries(sb) -> list[dict]:
    return [json.loads(row[0]) for row in sb.conn().execute("SELECT entry FROM audit_entries ORDER BY seq")]


def _spend(sb, aid: int, n: int, epsilon: float = 0.1) -> list[dict]:
    user = find_user(sb.conn(), "researcher")
    sqls = ["SELECT sex, AVG(income) FROM residents WHERE age >= {} GROUP BY sex",
            "SELECT district, COUNT(*) FROM residents WHERE age >= {} GROUP BY district"]
    return [sb.run_query(user, QueryRequest(aid, sqls[i % 2].format(i), epsilon)) for i in range(n)]


def _reports(entries: list[dict], aid: int) -> list[dict]:
    return [e for e in entries if is_charge(e["action"], e["details"])
            and e["details"].get("approval_id") == aid and "budget_after" in e["details"]]


@pytest.mark.parametrize("per_query,route", [(0.5, "zcdp"), (5.0, "basic")])
def test_logged_reports_match_the_recomputed_accountant(demo, per_query, route):
    sb, _ = demo
    aid = new_approval(sb, epsilon_total=20.0, delta_total=1e-5, per_query=per_query)
    assert choose_route(20.0, 1e-5, per_query) == route
    _spend(sb, aid, 30)
    entries = _entries(sb)
    reports = _reports(entries, aid)
    assert len(reports) == 30 and {e["details"]["budget_after"]["route"] for e in reports} == {route}
    assert check_reported_loss(entries) == []


def test_a_report_the_charges_do_not_give_is_flagged(demo):
    sb, _ = demo
    aid = new_approval(sb, epsilon_total=20.0, delta_total=1e-5, per_query=0.5)
    _spend(sb, aid, 6)
    entries = _entries(sb)
    forged = copy.deepcopy(entries)
    last = forged.index(_reports(forged, aid)[-1])
    forged[last]["details"]["budget_after"]["epsilon_spent"] *= 0.9  # under-reported loss
    problems = check_reported_loss(forged)
    assert [p["seq"] for p in problems] == [forged[last]["seq"]]
    assert "epsilon_spent reported" in problems[0]["message"]
    assert problems[0]["approval_id"] == str(aid)
    # A report on the other route (a route re-chosen from the history) is flagged too.
    forged = copy.deepcopy(entries)
    forged[last]["details"]["budget_after"]["route"] = "basic"
    assert "route reported 'basic'" in check_reported_loss(forged)[0]["message"]


# -- synthetic logs: which entries are charges ----------------------------------------------------
GRANT = {"approval_id": 7, "epsilon_total": 10.0, "delta_total": 1e-6, "epsilon_per_query": 0.25,
         "scope": {"datasets": ["residents"]}}


def _log(charges: list[Charge], *, started: bool, grant: dict | None = None) -> list[dict]:
    """A log in the new format (query.started + outcome with start_seq) or the old one."""
    g = grant_of(grant or GRANT)
    out: list[dict] = [{"seq": 1, "action": "approval.granted", "details": dict(grant or GRANT)}]
    t = Totals()
    for c in charges:
        t = t.add(c)
        s = spent(t, g.delta_total, pure=g.pure, route=g.route, epsilon_total=g.epsilon_total)
        charge = {"approval_id": 7, **c.as_dict(),
                  "budget_after": {"epsilon_spent": s.epsilon, "route": s.route}}
        seq = len(out) + 1
        if started:
            out.append({"seq": seq, "action": "query.started", "details": charge})
            out.append({"seq": seq + 1, "action": "query.released",
                        "details": {"approval_id": 7, "start_seq": seq, "epsilon": c.epsilon,
                                    "delta": c.delta}})
        else:
            out.append({"seq": seq, "action": "query.released", "details": charge})
    return out


CHARGES = [Charge(0.2, 0.0, 0.02), Charge(0.1, 1e-7, None), Charge(0.25, 1e-7, 0.004, 5e-8)] * 4


@pytest.mark.parametrize("started", [True, False])
def test_started_entries_are_the_charges_and_outcomes_with_start_seq_are_not(started):
    log = _log(CHARGES, started=started)
    assert choose_route(10.0, 1e-6, 0.25) == "zcdp"
    assert check_reported_loss(log) == []
    # A failed outcome after a start is not a second charge either.
    if started:
        log[3]["action"] = "query.failed"
        assert check_reported_loss(log) == []


def test_an_outcome_without_start_seq_counts_as_a_charge():
    log = _log(CHARGES, started=True)
    del log[2]["details"]["start_seq"]  # the released entry after the first start
    problems = check_reported_loss(log)
    assert problems and problems[0]["seq"] == 4  # the next report no longer matches


def test_route_comes_from_the_logged_terms():
    assert grant_of(GRANT).route == "zcdp"
    assert grant_of({**GRANT, "scope": {"pure_dp": True}}).route == "basic"
    assert grant_of({**GRANT, "delta_total": 0.0}).route == "basic"
    no_cap = {k: v for k, v in GRANT.items() if k != "epsilon_per_query"}
    assert grant_of(no_cap).route == "basic"  # an older grant without the cap: no per-query cap
    log = _log(CHARGES, started=True, grant=no_cap)
    assert check_reported_loss(log) == []
    log[0]["details"]["epsilon_per_query"] = 0.25  # the terms say zcdp, the reports say basic
    assert all("route reported 'basic'" in p["message"] for p in check_reported_loss(log))


def test_log_only_replay_accepts_the_zcdp_route_reports(demo):
    """audit_log.replay (no OpenDP) must not flag a zcdp-route report that is above Σε: on
    that route the figure is the conversion of Σρ, which for a few releases exceeds Σε."""
    from audit_log.replay import replay

    sb, _ = demo
    aid = new_approval(sb, epsilon_total=20.0, delta_total=1e-5, per_query=0.5)
    _spend(sb, aid, 3)
    entries = _entries(sb)
    first = _reports(entries, aid)[0]["details"]["budget_after"]
    assert first["route"] == "zcdp" and first["epsilon_spent"] > first["epsilon_spent_basic"]
    assert [i for i in replay(entries)["inconsistencies"] if i["approval_id"] == aid] == []
