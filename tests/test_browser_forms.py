"""Forms in Chromium (issue 15): destructive actions ask first; what was typed survives a refusal."""

from __future__ import annotations

import pytest

from tests import test_browser_console as base
from tests.test_browser_console import login

# The live app, the browser and the origin-checking page of test_browser_console.py.
live, browser, page = base.live, base.browser, base.page

pytestmark = pytest.mark.browser


def suspensions(live) -> int:
    return live.sb.conn().execute("SELECT COUNT(*) FROM suspensions").fetchone()[0]


def test_suspend_now_asks_first_and_keeps_the_input_on_a_refusal(page, live):
    login(page, live, "owner")
    page.goto(live.url("/suspensions"))
    before = suspensions(live)
    page.fill("#s-approval", "99999")
    page.fill("#s-reason", "超出场景的使用 use beyond the scenario")
    asked = []

    def dismiss(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#suspend-form button[type=submit]")
    assert asked and "立即暂停" in asked[0]
    assert suspensions(live) == before  # dismissed: nothing was sent
    page.once("dialog", lambda d: d.accept())
    page.click("#suspend-form button[type=submit]")
    page.wait_for_selector("#suspend-error")  # approval 99999 is not the owner's: refused
    assert page.input_value("#s-reason") == "超出场景的使用 use beyond the scenario"
    assert page.input_value("#s-approval") == "99999"
    assert suspensions(live) == before
