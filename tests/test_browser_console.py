"""The console in a real browser: Debian's Chromium driven by Playwright (sync API).

The app runs under waitress on a loopback port over a copy of the demo workspace. Every
request the browser makes is intercepted: anything not addressed to the app's own origin is
aborted and fails the test (the console must work offline). Console errors — including CSP
violations and failed loads — fail the test too. Each role's main page is saved to
docs/screenshots/ for the README and docs/console.md.

Skipped cleanly when /usr/bin/chromium (installed by .ci/run) or Playwright is missing.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sandbox.demo.setup import setup_demo
from sandbox.governance import applications, datasets, open_catalog
from sandbox.service.pipeline import QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store.users import find_user
from sandbox.web import create_app

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
GROUPED = "SELECT district, COUNT(*) AS people, AVG(income) AS mean_income\nFROM residents\nGROUP BY district"
OUT_OF_SCOPE = "SELECT district,\n       COUNT(*) AS people\nFROM residents\nWHERE phone LIKE '138%'\nGROUP BY district"
TIMEOUT_MS = 15_000


@dataclass
class Live:
    sb: Sandbox
    creds: dict
    base: str

    def url(self, path: str) -> str:
        return self.base + path


@pytest.fixture(scope="module")
def live(demo_template, tmp_path_factory) -> Iterator[Live]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    from waitress.server import create_server

    root = tmp_path_factory.mktemp("browser") / "ws"
    shutil.copytree(demo_template, root)
    sb, creds = setup_demo(root, rows=3_000, url="http://127.0.0.1:0", say=lambda _m: None)
    owner = find_user(sb.conn(), "owner")
    for v in datasets.latest_versions(sb.conn(), include_unpublished=True):
        if not v.published:
            open_catalog.acknowledge_risk(sb, owner, v.name, {"note": "browser test"})
    server = create_server(create_app(sb), host="127.0.0.1", port=0, threads=6)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield Live(sb, creds, f"http://127.0.0.1:{server.effective_port}")
    server.close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def browser(live):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live):
    """A fresh browser context whose every request is checked to stay on the app's origin."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN")
    context.set_default_timeout(TIMEOUT_MS)
    origin = urlsplit(live.base).netloc
    foreign: list[str] = []
    problems: list[str] = []

    def guard(route):
        url = route.request.url
        if urlsplit(url).netloc == origin or url.startswith(("data:", "about:", "blob:")):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    def console(message) -> None:
        if message.type != "error":
            return
        if message.text.startswith("Failed to load resource") and message.location.get("url") == pg.url:
            return  # the page itself answered 4xx on purpose (a refused query re-renders with 400)
        problems.append(f"{message.text} ({message.location.get('url')})")

    context.route("**/*", guard)
    pg = context.new_page()
    pg.on("console", console)
    pg.on("pageerror", lambda e: problems.append(str(e)))
    yield pg
    context.close()
    assert foreign == [], f"requests left the app's origin: {foreign}"
    assert problems == [], f"browser console errors (CSP, failed loads, script errors): {problems}"


def login(page, live: Live, role: str) -> None:
    page.goto(live.url("/login"))
    page.fill("#username", role)
    page.fill("#password", f"{role}-demo")
    page.click("#login-submit")
    page.wait_for_load_state()
    assert "/login" not in page.url


def number(text: str) -> float:
    return float(text.replace(",", "").strip())


def assert_fields_labelled(page) -> None:
    """Every visible form control has a label (or an ARIA name)."""
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
        .filter(el => el.type !== 'hidden' && !(el.labels && el.labels.length)
                && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
        .map(el => el.name || el.id)""")
    assert unlabelled == [], f"form fields without a label: {unlabelled}"


def ensure_release(live: Live) -> str:
    row = live.sb.conn().execute("SELECT id FROM queries WHERE status = 'released' LIMIT 1").fetchone()
    if row:
        return row["id"]
    researcher = find_user(live.sb.conn(), "researcher")
    sql = "SELECT sex, COUNT(*) AS people FROM residents GROUP BY sex"
    return live.sb.run_query(researcher, QueryRequest(live.creds["researcher"]["approval_id"], sql, 0.2))["query_id"]


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# -- researcher --------------------------------------------------------------------------------
def test_researcher_runs_a_grouped_query_by_keyboard(page, live):
    login(page, live, "researcher")
    assert page.url.endswith("/query")
    page.wait_for_selector(".editor.is-enhanced .cm-editor")  # CodeMirror took over the textarea
    assert_fields_labelled(page)
    left_before = number(page.inner_text("#budget-left"))

    editor = page.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(GROUPED)
    assert page.locator(".cm-content .tok-keyword").first.inner_text() == "SELECT"
    # Tab order from the editor: ε, confidence, format, (preview), run — no focus trap in the editor.
    order = []
    for _ in range(5):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id"))
    assert order[:2] == ["epsilon", "confidence"] and "run" in order
    editor.focus()
    page.keyboard.press("Control+Enter")  # runs the query
    page.wait_for_selector("#result")

    rows = page.locator("#result-table tbody tr")
    assert rows.count() == 12  # the public domain of district: every group, empty ones too
    assert page.locator("#result-table td .acc").first.inner_text().startswith("[")  # [lower, upper], never ±
    assert page.locator("#result-charts svg.chart.bars rect.bar").count() >= 12
    assert page.locator("#result-charts .whisker").count() >= 12
    tabs = page.locator("#result-charts [role=tab]")
    assert tabs.count() == 2 and page.locator("#chart-2").is_hidden()
    tabs.nth(1).click()
    assert page.locator("#chart-2").is_visible() and page.locator("#chart-1").is_hidden()
    left_after = number(page.inner_text("#budget-left"))
    assert left_after < left_before, "the budget meter did not fall"

    query_id = page.inner_text("#result .receipt-query")
    log_index = page.inner_text("#result .receipt-index")
    shoot(page, "researcher")
    page.click("text=" + ("全部查询" if "全部查询" in page.content() else "All queries"))
    row = page.locator(f"#q-{query_id}")
    assert row.locator(".receipt-index").inner_text() == log_index
    assert len(row.locator(".hash").get_attribute("title")) == 64


def test_out_of_scope_query_shows_the_refusal_at_its_position(page, live):
    login(page, live, "researcher")
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(OUT_OF_SCOPE)
    page.click("#run")
    refusal = page.wait_for_selector("#refusal")
    assert refusal.get_attribute("role") == "alert"
    assert re.search(r"4\D+7", page.inner_text("#refusal-position"))
    assert page.inner_text("#refusal-sql mark.sql-error") == "phone"
    # The editor marks the same token, and focuses it, until the text changes.
    assert page.inner_text(".cm-editor .cm-refusal") == "phone"
    assert page.evaluate("document.activeElement.classList.contains('cm-content')")
    assert page.get_attribute(".cm-content", "aria-invalid") == "true"
    page.keyboard.type(" ")
    assert page.locator(".cm-editor .cm-refusal").count() == 0


# -- owner --------------------------------------------------------------------------------------
def test_owner_approves_an_application_and_sees_it_in_budgets(page, live):
    ensure_release(live)
    researcher = find_user(live.sb.conn(), "researcher")
    app_id = applications.submit(live.sb, researcher, {
        "datasets": ["residents"], "columns": {"residents": ["district", "age", "income"]},
        "scenario": "收入的区县差异研究 Income by district", "purpose": "Compare incomes across districts.",
        "commitment_accepted": True,
    })["application_id"]
    login(page, live, "owner")
    assert page.url.endswith("/owner")
    page.click("nav >> [href='/owner/applications']")
    page.click(f"#application-{app_id} a.button")
    assert_fields_labelled(page)
    page.uncheck("input[name='col:residents:age']")  # narrow the scope
    page.fill("#epsilon_total", "3")
    page.fill("#epsilon_per_query", "0.5")
    page.fill("#reason", "符合应用场景 fits the scenario")
    page.click("#approve")
    page.wait_for_url(re.compile(r"/owner/approvals"))
    approval_id = int(page.url.rsplit("approval-", 1)[1])
    row = page.locator(f"#approval-{approval_id}")
    assert row.is_visible()
    assert "0 / 3" in row.locator(".budget-text").inner_text()
    assert live.sb.conn().execute("SELECT scope_json FROM approvals WHERE id = ?",
                                  (approval_id,)).fetchone()[0].count("age") == 0
    # Some use of both approvals, so the usage chart in the screenshot has something to show.
    for approval, sql in ((approval_id, "SELECT district, AVG(income) AS mean_income FROM residents GROUP BY district"),
                          (live.creds["researcher"]["approval_id"],
                           "SELECT department, COUNT(*) AS visits FROM clinic_visits GROUP BY department")):
        live.sb.run_query(researcher, QueryRequest(approval, sql, 0.4))
    page.goto(live.url("/owner"))
    shoot(page, "owner")


# -- regulator ----------------------------------------------------------------------------------
def test_regulator_sees_the_release_in_the_timeline_and_verify_reports_intact(page, live):
    query_id = ensure_release(live)
    login(page, live, "regulator")
    assert page.url.endswith("/regulator")
    page.click("#verify")
    result = page.wait_for_selector("#verify-result")
    assert result.get_attribute("class") == "ok-box"
    assert "完整" in result.inner_text()
    shoot(page, "regulator")

    page.click("nav >> [href='/regulator/audit']")
    page.select_option("#f-action", "query.released")
    page.click("#apply-filters")
    entry = page.locator("tr[data-action='query.released']", has_text=query_id)
    assert entry.count() == 1
    assert page.locator("tr[data-action='query.refused']").count() == 0
    entry.locator("a", has_text="追溯").click()
    page.wait_for_selector("#trace-result")
    assert "凭证核验通过" in page.inner_text("#trace-result")
    assert page.inner_text("#trace-query") == query_id


# -- public, language ---------------------------------------------------------------------------
def test_catalog_without_login_and_the_language_switch(page, live):
    page.goto(live.url("/"))
    assert page.url.endswith("/catalog")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.locator("nav").inner_text().startswith("开放清单")
    assert page.locator("#catalog .dataset-card").count() >= 2

    page.click("button[data-lang='en']")
    page.wait_for_load_state()
    assert page.get_attribute("html", "lang") == "en"
    assert "Open list" in page.locator("nav").inner_text()
    page.reload()  # remembered
    assert "Open list" in page.locator("nav").inner_text()
    page.click("a:has-text('Log in')")
    assert page.inner_text("h1") == "Log in"

    page.click("button[data-lang='zh_CN']")
    page.wait_for_load_state()
    assert page.inner_text("h1") == "登录"
    page.goto(live.url("/catalog"))
    assert page.locator("nav").inner_text().startswith("开放清单")
    shoot(page, "catalog")
