"""Accessibility (issue 15): axe-core (tests/vendor/axe.min.js, built by web-src/ from npm,
MPL-2.0; nothing fetched) run in Chromium over every role's main pages in both languages.
A serious or critical violation fails the test, with the rule, its help text and where."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import test_browser_console as base
from tests.test_browser_console import ensure_release, login

# The live app, the browser and the origin-checking page of test_browser_console.py.
live, browser, page = base.live, base.browser, base.page

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
PAGES = {
    None: ["/catalog", "/catalog/residents", "/transparency", "/login"],
    "researcher": ["/query", "/history"],
    "owner": ["/owner", "/owner/applications", "/owner/approvals", "/owner/datasets", "/suspensions",
              "/objections"],
    "regulator": ["/regulator", "/regulator/audit", "/regulator/trace", "/regulator/replay"],
}
RUN = """async () => {
  const r = await axe.run(document, {resultTypes: ['violations']});
  return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v =>
    `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`);
}"""


def axe_violations(page) -> list[str]:
    # Evaluated through the DevTools protocol, so the page's CSP (script-src 'self') is not
    # loosened for the test: the app itself never serves axe.
    page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate(RUN)


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
@pytest.mark.parametrize("role", [None, "researcher", "owner", "regulator"])
def test_no_serious_axe_violations(page, live, role, lang):
    query_id = ensure_release(live)
    if role:
        login(page, live, role)
    page.context.add_cookies([{"name": "sandbox_lang", "value": lang, "url": live.base}])
    paths = list(PAGES[role])
    if role == "researcher":
        paths.append(f"/query?result={query_id}")  # a result: table, charts, receipt
    problems = []
    for path in paths:
        page.goto(live.url(path))
        page.wait_for_load_state("load")
        problems += [f"{path} ({lang}): {v}" for v in axe_violations(page)]
    assert problems == []
