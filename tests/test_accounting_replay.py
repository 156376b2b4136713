"""``sandbox audit replay`` recomputes the accountant's spent ε (the smaller of basic
composition and the zCDP conversion, decision 0003) from the logged charges alone, and
flags a report the charges do not give."""

from __future__ import annotations

import copy
import json

from sandbox.accounting_replay import check_reported_loss
from sandbox.service import QueryRequest
from sandbox.users import find_user
from tests.test_privacy_ledger import new_approval


def _entries(sb) -> list[dict]:
    return [json.loads(row[0]) for row in sb.conn().execute("SELECT entry FROM audit_entries ORDER BY seq")]


def _spend(sb, aid: int, n: int, epsilon: float = 0.1) -> list[dict]:
    user = find_user(sb.conn(), "researcher")
    sqls = ["SELECT sex, AVG(income) FROM residents WHERE age >= {} GROUP BY sex",
            "SELECT district, COUNT(*) FROM residents WHERE age >= {} GROUP BY district"]
    return [sb.run_query(user, QueryRequest(aid, sqls[i % 2].format(i), epsilon)) for i in range(n)]


def test_logged_reports_match_the_recomputed_accountant(demo):
    sb, _ = demo
    aid = new_approval(sb, epsilon_total=20.0, delta_total=1e-5, per_query=0.5)
    released = _spend(sb, aid, 40)  # many small releases: zCDP composition wins
    routes = {r["budget"]["accounting"]["route"] for r in released}
    assert "zcdp" in routes  # the test exercises the OpenDP conversion, not only sums
    assert check_reported_loss(_entries(sb)) == []


def test_a_report_the_charges_do_not_give_is_flagged(demo):
    sb, _ = demo
    aid = new_approval(sb, epsilon_total=20.0, delta_total=1e-5, per_query=0.5)
    _spend(sb, aid, 6)
    entries = _entries(sb)
    forged = copy.deepcopy(entries)
    last = max(i for i, e in enumerate(forged) if e["action"] == "query.released")
    forged[last]["details"]["budget_after"]["epsilon_spent"] *= 0.9  # under-reported loss
    problems = check_reported_loss(forged)
    assert [p["seq"] for p in problems] == [forged[last]["seq"]]
    assert "epsilon_spent reported" in problems[0]["message"]
    assert problems[0]["approval_id"] == str(aid)
