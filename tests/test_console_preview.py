"""The cost preview in words (issue 15): "About ±X (95%)" per column, what ε buys, what is
left, and a plain sentence when the budget or the per-query cap is not enough."""

from __future__ import annotations

import re

from sandbox.web.console.preview import preview_words
from tests import test_console as base
from tests.test_console import client_for, post, text

app = base.app  # the fixture: the console over a fresh demo workspace

MEAN = "SELECT district, COUNT(*) AS people, AVG(income) AS mean_income FROM residents GROUP BY district"


def estimate(*, cost=0.5, left=9.5, affordable=True, within_cap=True, columns=None):
    return {"cost": {"epsilon": cost, "delta": 0, "noise": "laplace"}, "affordable": affordable,
            "within_per_query_cap": within_cap, "budget": {"epsilon": {"remaining": left}},
            "columns": columns or {"people": {"kind": "count", "half_width": 14.764, "confidence": 0.95}}}


def test_the_preview_page_says_it_in_words(app, demo):
    _sb, creds = demo
    c = client_for(app, "researcher", lang="en")
    page = text(post(c, "/query/preview", {"sql": MEAN, "approval_id": str(creds["researcher"]["approval_id"]),
                                           "epsilon": "0.5", "confidence": "0.95"}, page="/query"))
    cost = re.search(r'<p id="estimate-cost">([^<]*)</p>', page).group(1)
    assert re.fullmatch(r"This query spends ε 0\.5, 5% of the ε 10 left\. About ε 9\.5 will be left after it\.", cost)
    columns = re.search(r'<dl class="kv small" id="estimate-columns">(.*?)</dl>', page, re.S).group(1)
    assert re.search(r"<code>people</code></dt><dd>About ±[0-9.,]+ \(95%\)</dd>", columns)
    assert re.search(r"About ±[0-9.,]+ for a group of 100 people, ±[0-9.,]+ for 1,000 \(95%\)", columns)
    assert "r·" not in columns and "e+0" not in columns  # the formula only under "How this is computed"
    assert 'id="estimate-verdict"' not in page
    zh = text(post(client_for(app, "researcher"), "/query/preview",
                   {"sql": MEAN, "approval_id": str(creds["researcher"]["approval_id"]), "epsilon": "0.5"},
                   page="/query"))
    assert "约 ±" in zh and "本次查询消耗 ε 0.5" in zh


def test_not_enough_budget_and_above_the_cap_are_said_plainly(app):
    with app.test_request_context(headers={"Cookie": "sandbox_lang=en"}):
        poor = preview_words(estimate(cost=0.5, left=0.2, affordable=False), {"epsilon_per_query": 1})
        assert not poor["ok"]
        assert poor["verdict"].startswith("Not enough budget: this query needs ε 0.5 but only ε 0.2 is left.")
        assert poor["after"] == "About ε 0 will be left after it."
        capped = preview_words(estimate(cost=2, within_cap=False, affordable=False), {"epsilon_per_query": 1})
        assert capped["verdict"].startswith("Cannot run: this query needs ε 2, above this approval's limit of ε 1")
        fine = preview_words(estimate(), {"epsilon_per_query": 1})
        assert fine["ok"] and fine["verdict"] is None
        assert fine["columns"][0]["text"] == "About ±14.8 (95%)"
        assert fine["noise"] == "Laplace noise (pure ε-DP)"


def test_quantile_ranks_and_group_keys_in_words(app):
    with app.test_request_context(headers={"Cookie": "sandbox_lang=en"}):
        words = preview_words(estimate(columns={
            "district": {"kind": "group", "half_width": 0.0, "confidence": 0.95},
            "median_income": {"kind": "quantile", "half_width": 14764.2, "unit": "rank", "confidence": 0.9},
        }), {"epsilon_per_query": 1})
        assert [c["column"] for c in words["columns"]] == ["median_income"]
        assert words["columns"][0]["text"].startswith("About ±14,800 places in the sorted data (90%)")
