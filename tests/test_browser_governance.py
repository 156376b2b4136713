"""Issue 14 in a real browser (Debian's Chromium, Playwright), both languages: a new researcher
from the public open list to a result without the CLI or the API docs; a public objection with
evidence and its tracking code; a rectification order, overdue items and a termination on the
enforcement page. Screenshots go to docs/screenshots/ (self-service-*.png, enforcement.png,
public-objection.png). Skipped like tests/test_browser_console.py when Chromium is missing."""

# ruff: noqa: F811  (the fixtures imported from tests.test_browser_console are parameters here)
from __future__ import annotations

import re

import pytest

from sandbox.governance import applications
from sandbox.store.users import find_user
from tests.test_browser_console import browser, live, login, page, shoot  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def set_language(page, live, lang: str) -> None:
    page.context.add_cookies([{"name": "sandbox_lang", "value": lang, "url": live.base}])


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_new_researcher_from_the_open_list_to_a_result(page, live, lang):
    """The whole walk in each language (issue 14); the screenshots are the Chinese walk's."""
    zh = lang == "zh-CN"
    set_language(page, live, lang)
    snap = shoot if zh else (lambda *_a, **_k: None)
    name = "newcomer" if zh else "newcomer_en"
    page.goto(live.url("/catalog/residents"))
    assert ("申请" if zh else "Apply") in page.inner_text(".page-head")
    page.click(".page-head a[href*=\"/register\"]")
    page.fill("#username", name)
    page.fill("#display_name", "山东大学" if zh else "Shandong University")
    page.fill("#password", "a long passphrase")
    page.fill("#password_again", "a long passphrase")
    snap(page, "self-service-register")
    page.click("#register-submit")
    page.wait_for_load_state()
    page.fill("#username", name)
    page.fill("#password", "a long passphrase")
    page.click("#login-submit")
    page.wait_for_url("**/apply/residents")
    page.fill("#scenario", "各区收入分布" if zh else "Income by district")
    page.fill("#purpose", "硕士论文：济南各区收入分布" if zh else "MSc thesis: income across Jinan's districts")
    page.check("input[name=columns][value=district]")
    page.check("input[name=columns][value=income]")
    page.check("#commitment")
    snap(page, "self-service-apply")
    page.click("#apply-submit")
    page.wait_for_url("**/my/applications")
    assert ("待审核" if zh else "pending") in page.inner_text("main").lower()
    app_id = int(re.search(r"application-(\d+)", page.inner_html("main")).group(1))
    # the owner approves (their own page is tested elsewhere)
    owner = find_user(live.sb.conn(), "owner")
    approval = applications.decide(live.sb, owner, app_id, {
        "decision": "approve", "reason": "符合场景", "epsilon_total": 3, "delta_total": 1e-6,
        "epsilon_per_query": 1, "expires": "2999-01-01"})["approval_id"]
    page.reload()
    assert f"/query?approval={approval}" in page.inner_html("main")
    snap(page, "self-service-applications")
    page.goto(live.url("/my/tokens"))
    page.fill("#token-name", "notebook")
    page.click("#token-create")
    token = page.inner_text("#new-token-value").strip()
    assert token.startswith("sbx_")
    assert ("API 令牌" if zh else "API token") in page.inner_text("main")
    snap(page, "self-service-tokens")
    r = page.request.post(live.url("/api/v1/queries"), headers={"Authorization": f"Bearer {token}"},
                          data={"approval_id": approval, "sql": "SELECT district, COUNT(*) AS n FROM residents "
                                                                "GROUP BY district", "epsilon": 0.5})
    assert r.status == 200, r.text()
    assert r.json()["columns"] == ["district", "n"]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_public_objection_with_evidence_and_its_tracking_code(page, live, lang, tmp_path):
    set_language(page, live, lang)
    page.goto(live.url("/catalog/residents"))
    page.fill("#po-text", "区县名称有误" if lang == "zh-CN" else "district names look wrong")
    evidence = tmp_path / "photo.png"
    evidence.write_bytes(PNG)
    page.set_input_files("#po-evidence", str(evidence))
    page.click("#po-submit")
    page.wait_for_url("**/objections/track?code=PO-*")
    code = page.inner_text("#tracking-code").strip()
    assert code.startswith("PO-")
    if lang == "zh-CN":
        shoot(page, "public-objection")
    login(page, live, "owner")
    page.goto(live.url("/enforcement"))
    oid = live.sb.conn().execute("SELECT id FROM public_objections WHERE tracking_code = ?", (code,)).fetchone()[0]
    page.fill(f"#pa-{oid}", "已在第 2 版更正" if lang == "zh-CN" else "corrected in version 2")
    with page.expect_navigation():
        page.click(f"#public-objection-{oid} button")
    page.goto(live.url(f"/objections/track?code={code}"))
    assert "2" in page.inner_text("#tracked-answer")


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_rectification_and_termination_on_the_enforcement_page(page, live, lang):
    set_language(page, live, lang)
    zh = lang == "zh-CN"
    login(page, live, "regulator")
    page.goto(live.url("/enforcement"))
    page.fill("#order-owner", "owner")
    page.fill("#order-dataset", "residents")
    page.fill("#order-what", "按月更新承诺未履行" if zh else "monthly update promised, not delivered")
    page.fill("#order-due", "2999-12-31")
    with page.expect_navigation():
        page.click("#issue-order button")
    assert ("整改通知已下达" if zh else "Rectification order issued") in page.inner_text("body")
    # a termination by the owner, shown as final
    researcher = find_user(live.sb.conn(), "researcher")
    owner = find_user(live.sb.conn(), "owner")
    app_id = applications.submit(live.sb, researcher, {"datasets": ["residents"], "scenario": "s", "purpose": "p",
                                                       "commitment_accepted": True})["application_id"]
    approval = applications.decide(live.sb, owner, app_id, {
        "decision": "approve", "reason": "ok", "epsilon_total": 1, "delta_total": 0, "epsilon_per_query": 0.5,
        "expires": "2999-01-01"})["approval_id"]
    page.context.clear_cookies()
    set_language(page, live, lang)
    login(page, live, "owner")
    page.goto(live.url("/enforcement"))
    page.fill("#term-target", str(approval))
    page.fill("#term-reason", "虚假申请材料" if zh else "false application material")
    page.on("dialog", lambda dialog: dialog.accept())  # the console asks before a destructive action
    with page.expect_navigation():
        page.click("#terminate-form button")
    text = page.inner_text("#terminations")
    assert ("已终止" if zh else "terminated") in text
    assert page.inner_text("#overdue-count").strip().isdigit()
    if zh:
        shoot(page, "enforcement")
