"""Forms that respect the user (issue 15): input kept on every error, defaults that follow
the user's choice, confirmation before destructive actions, and the smaller slips."""

from __future__ import annotations

import json
import re

from markupsafe import escape

from tests import test_console as base
from tests.test_console import client_for, post, text

app = base.app  # the fixture: the console over a fresh demo workspace


def test_a_refused_suspension_keeps_what_was_typed(app):
    owner = client_for(app, "owner", lang="en")
    resp = post(owner, "/suspensions", {"target_type": "approval", "approval_id": "99999",
                                        "reason": "使用超出场景 beyond the scenario"}, page="/suspensions")
    assert resp.status_code == 400
    page = text(resp)
    assert 'id="suspend-error"' in page
    assert ">使用超出场景 beyond the scenario</textarea>" in page
    assert 'name="approval_id" inputmode="numeric" value="99999"' in page


def test_picking_a_researcher_suspends_the_researcher_whatever_the_radio_says(app, demo):
    sb, _creds = demo
    regulator = client_for(app, "regulator", lang="en")
    resp = post(regulator, "/suspensions", {"target_type": "approval", "approval_id": "", "user": "researcher",
                                            "reason": "repeated attempts"}, page="/suspensions")
    assert resp.status_code == 303
    row = sb.conn().execute("SELECT target_type FROM suspensions ORDER BY id DESC LIMIT 1").fetchone()
    assert row["target_type"] == "user"


def test_destructive_forms_ask_for_confirmation(app):
    page = text(client_for(app, "owner", lang="en").get("/suspensions"))
    assert re.search(r'id="suspend-form" data-confirm="Suspend now\? It takes effect at once', page)


def test_a_refused_objection_keeps_what_was_typed(app):
    researcher = client_for(app, "researcher", lang="en")
    resp = post(researcher, "/objections", {"target_type": "approval", "target_id": "99999",
                                            "text": "我的异议 my objection"}, page="/objections")
    assert resp.status_code == 400
    page = text(resp)
    assert 'id="objection-error"' in page and ">我的异议 my objection</textarea>" in page
    assert '<option value="approval" selected>' in page and 'value="99999"' in page


def test_part_of_a_receipt_says_what_is_missing(app):
    regulator = client_for(app, "regulator", lang="en")
    partial = json.dumps({"query_id": "q_0123", "leaf_hash": "ab" * 32})
    resp = post(regulator, "/regulator/trace", {"receipt": partial})
    assert resp.status_code == 400
    assert str(escape("This receipt is incomplete: log_index, tree_size missing.")) in text(resp)
    zh = text(post(client_for(app, "regulator"), "/regulator/trace", {"receipt": partial}))
    assert "凭证不完整" in zh and "not a receipt" not in zh


def test_history_says_whose_queries_it_lists(app):
    assert "Every query you sent" in text(client_for(app, "researcher", lang="en").get("/history"))
    owner = text(client_for(app, "owner", lang="en").get("/history"))
    assert "Every query you sent" not in owner and "approvals of your datasets" in owner
    assert "Every query made in the sandbox" in text(client_for(app, "regulator", lang="en").get("/history"))
    assert "您发出的每一次查询" not in text(client_for(app, "owner").get("/history"))


def test_the_verify_result_comes_first(app):
    page = text(post(client_for(app, "regulator", lang="en"), "/regulator/verify", {}, page="/regulator"))
    assert page.index('id="verify-result"') < page.index('class="stats"')


def test_a_tier_change_asks_for_confirmation(app):
    page = text(client_for(app, "owner", lang="en").get("/owner/datasets/residents"))
    assert re.search(r'id="tier-form" data-confirm="Change the tier of residents\? Raising it goes to the regulator', page)
