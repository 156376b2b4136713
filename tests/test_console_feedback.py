"""Service errors, tier changes and alerts in the reader's language (issue 15): a refused form
says what went wrong as a translated sentence chosen by the error's code, with the service's
own English words under a disclosure (lang="en"); the tier-change flash names the tier."""

from __future__ import annotations

import re

from tests import test_console as base
from tests.test_console import client_for, post
from tests.test_console_i18n import untranslated

app = base.app


def flashes(html: str) -> list[str]:
    return re.findall(r'<div class="flash flash-(\w+)"', html)


def test_a_refused_suspension_reads_in_chinese_with_the_services_words_under_a_disclosure(app, demo):
    c = client_for(app, "owner")
    resp = post(c, "/suspensions", {"target_type": "approval", "approval_id": "",
                                                          "reason": "x"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    box = re.search(r'id="suspend-error">(.*?)</div>\s', html, re.S).group(1)
    assert 'class="error-sentence"' in box and re.search(r"[\u4e00-\u9fff]", box)
    assert '<span lang="en" translate="no" class="service-message">' in box  # the original, marked
    assert untranslated(box, "zh_CN", set()) == []


def test_the_tier_change_flash_names_the_tier_in_the_readers_language(app, demo):
    for lang, word, code, name in (("zh_CN", "不予开放", "not_open", "clinic_visits"),
                                   ("en", "Not open", "not_open", "residents")):
        c = client_for(app, "owner", lang=lang)  # a lowering takes effect at once (第十条)
        resp = post(c, f"/owner/datasets/{name}/tier", {"tier": code, "basis": "test: lowered for the flash"},
                    page=f"/owner/datasets/{name}")
        page = c.get(resp.headers["Location"]).get_data(as_text=True)
        flash = re.search(r'<div class="flash flash-success"[^>]*>(.*?)</div>', page, re.S).group(1)
        assert word in flash and code not in flash, flash


def test_a_service_error_flash_is_translated_with_the_original_beside_it(app, demo):
    from sandbox.errors import BadRequest, NotFound
    from sandbox.web.console.errors import sentence, service_error

    with app.test_request_context(headers={"Cookie": "lang=zh_CN"}):
        from flask_babel import force_locale
        with force_locale("zh_Hans_CN"):
            assert sentence(BadRequest("reason is required")) == "表单中有未填写或无效的内容。"
            assert "不存在" in sentence(NotFound("no approval 9"))
            html = str(service_error(BadRequest("reason is required")).__html__())
            assert 'lang="en"' in html and "reason is required" in html and untranslated(html, "zh_CN", set()) == []


def test_a_pasted_receipt_that_is_not_json_is_explained_in_chinese(app, demo):
    c = client_for(app, "regulator")
    resp = post(c, "/regulator/trace", {"receipt": "{query_id: 1"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    box = re.search(r'id="trace-error">(.*?)</div></div>', html, re.S).group(1)
    assert "这不是 JSON" in box and 'lang="en"' in box and untranslated(box, "zh_CN", set()) == []
    empty = post(c, "/regulator/trace", {"receipt": ""}).get_data(as_text=True)
    assert 'id="trace-error"' in empty and "请先粘贴收据" in empty


def test_alerts_read_in_each_language_from_their_kind_and_details(app, demo):
    from sandbox.governance import alerts
    from tests.test_console import run_query

    sb, creds = demo
    alerts.SETTING_GROUP.set(sb.conn(), "alert_refusals", 3)
    researcher = client_for(app, "researcher")
    for i in range(3):  # a burst of refusals raises an alert
        run_query(researcher, creds["researcher"]["approval_id"], sql=f"SELEC {i}")
    assert sb.conn().execute("SELECT COUNT(*) FROM alerts").fetchone()[0] >= 1
    data = {"researcher", "owner", "regulator", "sql_syntax", "statement_not_allowed"}
    for role in ("owner", "regulator"):
        for lang in ("zh_CN", "en"):
            html = client_for(app, role, lang=lang).get(f"/{role}/alerts").get_data(as_text=True)
            assert 'id="alert-' in html
            assert untranslated(html, lang, data) == [], (role, lang)


def test_the_risk_report_words_its_problems_from_the_findings(app, demo):
    sb, _creds = demo
    zh = client_for(app, "owner").get("/owner/datasets/residents").get_data(as_text=True)
    problems = re.search(r'<ul id="risk-problems">(.*?)</ul>', zh, re.S).group(1)
    assert 'data-kind="k_anonymity"' in problems and "只能发布差分隐私的汇总结果" in problems
    assert untranslated(problems, "zh_CN", {"district", "age", "sex", "education"}) == []
    assert 'class="small service-words"' in zh  # the scan's own sentences, under the disclosure
    en = client_for(app, "owner", lang="en").get("/owner/datasets/residents").get_data(as_text=True)
    assert "are unique on district, age, sex, education" in en and "only differentially private" in en
