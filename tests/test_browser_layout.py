"""Any screen size (issue 15): every role's pages at 1366, 1024, 768 and 390 px, in both
languages, in Chromium. A test fails when a page scrolls sideways or when any item of the
main menu (or the language switch and "Log out") cannot be reached: below 1180 px the menu
collapses behind a "Menu" button, which must open it with every item inside the viewport.
Each role's main flow runs in both languages at all four widths.

Screenshots of each role's main page at each width go to docs/screenshots/layout/.
"""

from __future__ import annotations

import pytest

from tests import test_browser_console as base
from tests.test_browser_console import SCREENSHOTS, ensure_release, login

# The live app, the browser and the origin-checking page of test_browser_console.py.
live, browser, page = base.live, base.browser, base.page

pytestmark = pytest.mark.browser

WIDTHS = (1366, 1024, 768, 390)
PAGES = {
    None: ["/catalog", "/catalog/residents", "/transparency", "/login"],
    "researcher": ["/query", "/history"],
    "owner": ["/owner", "/owner/applications", "/owner/approvals", "/owner/datasets", "/objections"],
    "regulator": ["/regulator", "/regulator/audit", "/regulator/trace", "/regulator/replay", "/suspensions"],
}

OVERFLOW_JS = """() => {
  const w = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth <= w) return [];
  return [...document.querySelectorAll('body *')]
    .filter(el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > w + 1; })
    .slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '') +
      ' right=' + Math.round(el.getBoundingClientRect().right));
}"""

REACH_JS = """(sel) => [...document.querySelectorAll(sel)].map(el => {
  const r = el.getBoundingClientRect();
  const visible = r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== 'hidden';
  return {text: el.textContent.trim(), visible, inside: r.left >= 0 && r.right <= document.documentElement.clientWidth + 0.5};
})"""


def unreachable(page, selector: str) -> list[str]:
    return [f"{i['text']!r} ({'off-screen' if i['visible'] else 'hidden'})"
            for i in page.evaluate(REACH_JS, selector) if not (i["visible"] and i["inside"])]


def open_menu(page) -> None:
    toggle = page.locator("#menu-toggle")
    if toggle.is_visible():
        assert toggle.get_attribute("aria-expanded") == "false"
        toggle.click()
        assert toggle.get_attribute("aria-expanded") == "true"


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
@pytest.mark.parametrize("role", [None, "researcher", "owner", "regulator"])
def test_no_sideways_scroll_and_every_menu_item_reachable(page, live, role, lang):
    ensure_release(live)  # so history, budgets and the timeline have something to lay out
    if role:
        login(page, live, role)
    page.context.add_cookies([{"name": "sandbox_lang", "value": lang, "url": live.base}])
    problems = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for path in PAGES[role]:
            page.goto(live.url(path))
            page.wait_for_load_state("load")
            where = f"{path} at {width}px ({lang})"
            if wide := page.evaluate(OVERFLOW_JS):
                problems.append(f"{where} scrolls sideways: {wide}")
            open_menu(page)
            items = page.locator("#main-nav a").count()
            assert items >= 2, where
            if bad := unreachable(page, "#main-nav a, .lang button" + (", #logout" if role else "")):
                problems.append(f"{where}: unreachable {bad}")
            if page.evaluate(OVERFLOW_JS):  # the open menu must not widen the page either
                problems.append(f"{where} scrolls sideways with the menu open")
            if path == PAGES[role][0]:
                (SCREENSHOTS / "layout").mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "layout" / f"{role or 'public'}-{width}-{lang}.png"))
    assert problems == []


def test_the_menu_button_is_keyboard_operable(page, live):
    login(page, live, "owner")
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(live.url("/owner"))
    assert page.locator("#main-nav").is_hidden()
    page.focus("#menu-toggle")
    page.keyboard.press("Enter")
    assert page.locator("#main-nav").is_visible()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.closest('#main-nav') !== null")
    page.keyboard.press("Escape")
    assert page.locator("#main-nav").is_hidden()
    assert page.evaluate("document.activeElement.id") == "menu-toggle"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_each_roles_main_flow_at_a_width(page, live, lang, width):
    """The main flows, not only the pages, in both languages at all four widths: a query run
    from the keyboard, the owner reaching an application through the (collapsed) menu, the
    regulator's verification seen at once."""
    ensure_release(live)
    page.set_viewport_size({"width": width, "height": 900})
    page.context.add_cookies([{"name": "sandbox_lang", "value": lang, "url": live.base}])
    login(page, live, "researcher")
    page.wait_for_selector(".cm-editor")
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text("SELECT sex, COUNT(*) AS people\nFROM residents\nGROUP BY sex")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#result-table tbody tr")
    assert page.evaluate(OVERFLOW_JS) == []
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "sandbox_lang", "value": lang, "url": live.base}])

    login(page, live, "owner")
    open_menu(page)
    page.click("#main-nav a[href='/owner/applications']")
    page.wait_for_url("**/owner/applications")
    assert page.evaluate(OVERFLOW_JS) == []
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "sandbox_lang", "value": lang, "url": live.base}])

    login(page, live, "regulator")
    page.click("#verify")
    result = page.wait_for_selector("#verify-result")
    box = result.bounding_box()
    assert box is not None and box["y"] < 900, "the verify result is below the fold"
    assert page.evaluate(OVERFLOW_JS) == []
