"""The workbench's SQL editor (CodeMirror 6, bundled at build time by web-src/) in Chromium.

Shares the live app, browser and origin-checking page fixtures of test_browser_console.py:
every request must stay on the app's origin and any console error (a CSP violation by the
editor's styles included) fails the test.
"""

from __future__ import annotations

import re

import pytest

from tests import test_browser_console as base
from tests.test_browser_console import SCREENSHOTS, login

# The live app, the browser and the origin-checking page of test_browser_console.py.
live, browser, page = base.live, base.browser, base.page

pytestmark = pytest.mark.browser

#: 30 lines, typed line by line (the editor indents and closes brackets, which typing then
#: steps over; completions accepted with Enter).
THIRTY_LINES = """-- Residents by district: head count, income and age groups
-- (typed line by line in the browser test)
SELECT
district,
{COUNT}*) AS people,
AVG(income) AS mean_income,
MEDIAN(income) AS median_income,
SUM(CASE
WHEN age >= 65 THEN 1
ELSE 0
END) AS seniors,
AVG(CASE
WHEN age < 18 THEN 1.0
ELSE 0.0
END) AS share_minors,
AVG(age) AS mean_age
FROM
{residents}
WHERE
age BETWEEN 0 AND 120
AND income >= 0
AND district IS NOT NULL
-- every district, the small ones too
GROUP BY
district
ORDER BY
district
LIMIT
20
-- end"""


def editor_text(page) -> str:
    return page.evaluate("document.querySelector('[data-editor]').editorView.state.doc.toString()")


def clear_editor(page) -> None:
    page.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")


def complete(page, typed: str, expected: str) -> str:
    """Type a prefix, wait for the completion list to offer ``expected`` first, accept it
    with Enter; returns the one-line description shown beside it."""
    page.keyboard.type(typed)
    first = page.locator(".cm-tooltip-autocomplete li[aria-selected]")
    first.wait_for()
    assert first.locator(".cm-completionLabel").inner_text() == expected
    info = page.locator(".cm-completionInfo")
    text = info.inner_text() if info.count() else ""
    page.wait_for_timeout(150)  # CodeMirror ignores Enter for 75 ms after the list opens
    page.keyboard.press("Enter")
    return text


def test_a_thirty_line_query_is_typed_autocompleted_and_run(page, live):
    login(page, live, "researcher")
    page.wait_for_selector(".editor.is-enhanced .cm-editor")
    assert page.locator("#sql").is_hidden()  # the textarea stays in the form, behind the editor
    left_before = float(page.inner_text("#budget-left").replace(",", ""))
    clear_editor(page)
    description = ""
    for n, line in enumerate(THIRTY_LINES.split("\n")):
        if n:
            # Completions open ~100 ms after typing stops: wait, then close any open list so
            # Enter is a newline, not an accepted completion.
            page.wait_for_timeout(150)
            page.keyboard.press("Escape")
            page.keyboard.press("Enter")
        if "{COUNT}" in line:
            page.keyboard.type("COUN")
            page.locator(".cm-completionInfo").wait_for()
            page.locator("#query-form").screenshot(path=str(SCREENSHOTS / "editor-autocomplete.png"))
            for _ in range(4):
                page.keyboard.press("Backspace")
            description = complete(page, "COUN", "COUNT")  # a function: applied with its "("
            line = line.replace("{COUNT}", "")
        if "{residents}" in line:
            complete(page, "resid", "residents")
            line = line.replace("{residents}", "")
        page.keyboard.type(line)
    page.keyboard.press("Escape")
    text = editor_text(page)
    assert len(text.split("\n")) == 30, text
    assert "COUNT(*) AS people" in text and re.search(r"^\s*residents$", text, re.M)
    assert text.count("(") == text.count(")")  # brackets closed by the editor were typed over
    assert "行数" in description  # the function's one-line description, in the UI language
    # Highlighting and bracket matching.
    assert page.locator(".cm-content .tok-keyword").count() > 20
    assert page.locator(".cm-content .tok-comment").count() == 4
    page.evaluate("""() => { const v = document.querySelector('[data-editor]').editorView;
        const at = v.state.doc.toString().indexOf('(*)'); v.dispatch({selection: {anchor: at}}); }""")
    assert page.locator(".cm-matchingBracket").count() == 2

    page.keyboard.press("Control+Enter")  # runs the query
    page.wait_for_selector("#result")
    assert page.locator("#result-table tbody tr").count() == 12
    assert page.locator("#result-table thead th").count() >= 6
    assert float(page.inner_text("#budget-left").replace(",", "")) < left_before
    # The result page reopens the same 30 lines in the editor.
    assert page.locator(".cm-line").count() == 30


def test_a_refusal_is_marked_at_its_line_and_column(page, live):
    login(page, live, "researcher")
    page.wait_for_selector(".cm-editor")
    clear_editor(page)
    page.keyboard.insert_text("SELECT district,\n       COUNT(*) AS people\nFROM residents\n"
                              "WHERE phone LIKE '138%'\nGROUP BY district")
    page.click("#run")
    page.wait_for_selector("#refusal")
    assert page.inner_text(".cm-editor .cm-refusal") == "phone"
    # On line 4 (the line holding the mark), at column 7.
    line = page.locator(".cm-line", has=page.locator(".cm-refusal"))
    assert line.inner_text().startswith("WHERE phone")
    assert page.locator(".cm-line").nth(3).inner_text() == line.inner_text()
    assert page.locator(".cm-refusal-line").count() == 1
    assert page.get_attribute(".cm-content", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.classList.contains('cm-content')")
    head = page.evaluate("document.querySelector('[data-editor]').editorView.state.selection.main.head")
    assert editor_text(page)[head:head + 5] == "phone"
    page.locator("#query-form").screenshot(path=str(SCREENSHOTS / "editor-refusal.png"))
    page.keyboard.type(" ")  # the mark belongs to the refused text only
    assert page.locator(".cm-refusal").count() == 0
    assert page.get_attribute(".cm-content", "aria-invalid") is None


def test_format_save_reopen_and_delete(page, live):
    login(page, live, "researcher")
    page.wait_for_selector(".cm-editor")
    clear_editor(page)
    page.keyboard.insert_text("select district,count(*) as people from residents group by district")
    page.click("#format")
    page.wait_for_selector(".cm-editor")
    assert editor_text(page) == "SELECT\n  district,\n  COUNT(*) AS people\nFROM residents\nGROUP BY\n  district"

    page.fill("#save_name", "按区县人数")
    page.click("#save")
    page.wait_for_selector("#saved .saved-open")
    assert "按区县人数" in page.inner_text("#saved")
    assert page.locator(".flash").count() == 1

    clear_editor(page)
    page.click("#saved .saved-open >> nth=0")
    page.wait_for_selector(".cm-editor")
    assert editor_text(page).startswith("SELECT\n  district,")

    # History: a past query opens in the editor.
    page.locator("#recent .open-query").first.click()
    page.wait_for_selector(".cm-editor")
    assert editor_text(page).strip() != ""

    page.once("dialog", lambda d: d.accept())  # the delete asks first
    page.locator("#saved form[data-confirm] button").first.click()
    page.wait_for_load_state()
    assert "按区县人数" not in page.inner_text("#saved")


MONTHS = "SELECT DATE_TRUNC('month', visit_date) AS month,\n       COUNT(*) AS visits\nFROM clinic_visits\nGROUP BY month"


def test_preview_in_words_then_a_line_chart_with_its_band(page, live):
    login(page, live, "researcher")
    page.wait_for_selector(".cm-editor")
    clear_editor(page)
    page.keyboard.insert_text(MONTHS)
    page.click("#preview")
    page.wait_for_selector("#estimate")
    assert "约 ±" in page.inner_text("#estimate-columns")
    page.locator("#estimate").screenshot(path=str(SCREENSHOTS / "preview.png"))
    page.click("#run")
    page.wait_for_selector("#result svg.chart.line-band polygon.band")
    page.evaluate("document.querySelector('.top').style.position = 'static'")  # keep the bar off the shot
    page.locator("#result").screenshot(path=str(SCREENSHOTS / "result-line.png"))
