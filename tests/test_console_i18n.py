"""Complete bilingual UI (issue 15): every console page rendered in zh-CN and in English;
a test fails on any untranslated string — English words in the Chinese pages, Chinese in
the English pages — outside the parts that are data or code.

What counts as data or code (and so is never translated): elements marked
``translate="no"`` (HTML's own "do not translate" marker: dataset values, usernames, SQL,
hashes), ``<code>``, ``<pre>``, ``<kbd>``, ``<samp>``, ``<textarea>``, ``<svg>`` (charts
label their marks with data), ``<time>`` and anything marked with another ``lang`` (the
language switch). Article citations (第十七条) are allowed in English, and a short list of
names and abbreviations (SQL, CSV, ε …) in Chinese.
"""

from __future__ import annotations

import io
import re
import sqlite3
from html.parser import HTMLParser

import pytest
from markupsafe import escape

from sandbox.governance import open_catalog as catalog
from sandbox.service.pipeline import QueryRequest
from sandbox.store.users import find_user
from sandbox.web.console import notes as console_notes
from tests import test_console as base
from tests.test_console import client_for, post, text, token

app = base.app  # the fixture: the console over a fresh demo workspace

SKIP_TAGS = {"script", "style", "code", "pre", "kbd", "samp", "textarea", "svg", "time", "option"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
#: Names and abbreviations a Chinese page may show as they are.
KEEP = {"SQL", "CSV", "Excel", "JSON", "API", "DCAT", "LD", "OpenSSL", "SM2", "SM3", "Ed25519", "PDF", "PNG",
        "JPEG", "TOML", "Parquet", "Ctrl", "Enter", "Tab", "Space", "SELECT", "ID", "CodeMirror", "OpenDP",
        "Merkle", "DuckDB", "IANA", "UTC", "RFC", "HTTPS", "URL", "DISTINCT", "COUNT", "Laplace", "Gaussian",
        "Python", "Authorization", "Bearer", "xlsx"}
#: Column types are code (as in the schema and the policy).
TYPES = {"int", "integer", "float", "double", "text", "date", "bool", "boolean", "decimal"}
CITATION = re.compile(r"第[一二三四五六七八九十百零〇]+条(?:[、，][一二三四五六七八九十百零〇]+条?)*|[（(]?第[^）)]{1,20}条[）)]?")
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
WORD = re.compile(r"[A-Za-z][A-Za-z_]*[a-z_][A-Za-z_]*")
IDS = re.compile(r"\bq_[0-9a-f]{8,}\b")  # query ids are identifiers, like hashes


class Visible(HTMLParser):
    """The text a person reads, without the parts that are data or code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # True where the element (or an ancestor) is exempt
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        exempt = (bool(self.stack and self.stack[-1]) or tag in SKIP_TAGS or a.get("translate") == "no"
                  or "lang" in a and tag != "html" or "hash" in (a.get("class") or "").split())
        if tag not in VOID:
            self.stack.append(exempt)
        if not exempt:
            for name in ("aria-label", "title", "placeholder"):
                if a.get(name):
                    self.texts.append(a[name])

    def handle_endtag(self, tag):
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not (self.stack and self.stack[-1]) and data.strip():
            self.texts.append(data.strip())


def visible_text(html: str) -> list[str]:
    parser = Visible()
    parser.feed(html)
    return parser.texts


def untranslated(html: str, lang: str, data_words: set[str]) -> list[str]:
    found = []
    for t in visible_text(html):
        t = IDS.sub("", t)
        if lang == "zh_CN":
            words = [w for w in WORD.findall(t) if w not in KEEP and w.lower() not in data_words]
            if words:
                found.append(t[:120])
        elif CJK.search(CITATION.sub("", t)):
            found.append(t[:120])
    return found


def ensure_one_release_of(sb, creds) -> str:
    researcher = find_user(sb.conn(), "researcher")
    sql = "SELECT district, COUNT(*) AS people FROM residents GROUP BY district"
    return sb.run_query(researcher, QueryRequest(creds["researcher"]["approval_id"], sql, 0.3))["query_id"]


PAGES = [  # (role, path, {language: why it is not yet fully in that language})
    (None, "/catalog", {}), (None, "/login", {}), (None, "/no-such-page", {}), (None, "/transparency", {}),
    (None, "/catalog/residents", {}),
    ("researcher", "/query", {}), ("researcher", "/history", {}), ("researcher", "/objections", {}),
    ("researcher", "/query?result={release}", {}), ("researcher", "/history/{release}", {}),
    ("owner", "/owner", {}), ("owner", "/owner/alerts", {}), ("owner", "/suspensions", {}),
    ("owner", "/owner/applications", {}), ("owner", "/owner/approvals", {}), ("owner", "/owner/datasets", {}),
    ("owner", "/owner/datasets/residents", {}), ("regulator", "/owner/datasets/residents", {}),
    ("owner", "/enforcement", {}), ("regulator", "/enforcement", {}), ("owner", "/reviews", {}),
    ("regulator", "/reviews", {}), ("regulator", "/reviews/{review}", {}), (None, "/opening-plans", {}),
    ("regulator", "/opening-plans", {}), (None, "/objections/track", {}), ("researcher", "/my/applications", {}),
    ("researcher", "/my/tokens", {}), (None, "/register", {}), ("researcher", "/apply/residents", {}),
    ("researcher", "/suspensions", {}), ("owner", "/objections", {}), ("regulator", "/objections", {}),
    ("owner", "/owner/datasets/new", {}),
    ("regulator", "/regulator", {}), ("regulator", "/regulator/audit", {}),
    ("regulator", "/regulator/replay", {}), ("regulator", "/regulator/trace", {}),
    ("regulator", "/regulator/alerts", {}), ("regulator", "/suspensions", {}),
]
CASES = [
    pytest.param(role, path, lang, id=f"{role or 'public'}-{path}-{lang}",
                 # strict: once a page is fixed, the mark must go
                 marks=[pytest.mark.xfail(reason=f"not yet fully bilingual: {todo[lang]}", strict=True)]
                 if lang in todo else [])
    for role, path, todo in PAGES for lang in ("zh_CN", "en")
]


@pytest.mark.parametrize(("role", "path", "lang"), CASES)
def test_every_page_is_fully_in_its_language(app, demo, role, path, lang):
    sb, creds = demo
    release = ensure_one_release_of(sb, creds)
    c = client_for(app, role, lang=lang)
    review = sb.conn().execute("SELECT MIN(id) FROM publication_reviews").fetchone()[0]
    resp = c.get(path.format(release=release, review=review))
    assert resp.status_code in (200, 404)
    data_words = {r["username"].lower() for r in sb.conn().execute("SELECT username FROM users")}
    data_words |= {r["name"].lower() for r in sb.conn().execute("SELECT name FROM datasets")}
    data_words |= {c["name"].lower() for e in catalog.list_entries(sb, None) for c in e["columns"]}
    data_words |= TYPES
    assert untranslated(resp.get_data(as_text=True), lang, data_words) == []


def test_the_checker_finds_what_it_should():
    zh = '<p>按区县统计</p><p>Hello world</p><p translate="no">Jinan residents</p><code>select</code>'
    assert untranslated(zh, "zh_CN", set()) == ["Hello world"]
    assert untranslated('<p>out_of_scope</p><p title="Not done">好</p>', "zh_CN", set()) == ["out_of_scope", "Not done"]
    en = '<p>Refused (第二十条)</p><p>已改为 unconditional</p><button lang="zh-CN">中文</button>'
    assert untranslated(en, "en", set()) == ["已改为 unconditional"]


def test_a_refusal_reads_in_chinese_with_the_services_words_beside_it(app, demo):
    from tests.test_console import OUT_OF_SCOPE, run_query

    sb, creds = demo
    approval = creds["researcher"]["approval_id"]
    page = run_query(client_for(app, "researcher"), approval, sql=OUT_OF_SCOPE).get_data(as_text=True)
    assert 'id="refusal-explanation"' in page and "标识列" in page
    data_words = {c["name"].lower() for e in catalog.list_entries(sb, None) for c in e["columns"]} | TYPES
    data_words |= {"researcher", "residents", "clinic_visits"}
    assert untranslated(page, "zh_CN", data_words) == []  # the English original only under lang="en"
    en = run_query(client_for(app, "researcher", lang="en"), approval, sql=OUT_OF_SCOPE).get_data(as_text=True)
    assert 'id="refusal-explanation"' not in en and "identifier" in en


# -- pages that need a staged state: a drafted upload, a damaged log ----------------------------------------
def page_data_words(sb) -> set[str]:
    words = {r["username"].lower() for r in sb.conn().execute("SELECT username FROM users")}
    words |= {r["name"].lower() for r in sb.conn().execute("SELECT name FROM datasets")}
    words |= {c["name"].lower() for e in catalog.list_entries(sb, None) for c in e["columns"]}
    return words | TYPES


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_policy_draft_page_words_its_notes(app, demo, lang):
    sb, _ = demo
    c = client_for(app, "owner", lang=lang)
    page = c.get("/owner/datasets/new").get_data(as_text=True)
    csv = "person_id,phone,age,district,amount\n" + "".join(
        f"{i},138{i:08d},{20 + i % 50},{['东区', '西区', '南区'][i % 3]},{i * 10}\n" for i in range(60))
    resp = c.post("/owner/datasets/new", data={"csrf_token": token(page), "name": "people",
                                               "file": (io.BytesIO(csv.encode()), "people.csv")},
                  content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)[-2000:]
    form = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'class="draft-notes"' in form and 'id="draft-note"' in form
    notes = re.findall(r'<ul class="draft-notes">(.*?)</ul>', form, re.S)
    assert notes and all("<li>" in n for n in notes)
    own = "".join(re.findall(r'<ul lang="en" translate="no">(.*?)</ul>', form, re.S))
    assert "the privacy unit: bounding is per unit" in own  # the draft's own words, under the disclosure
    if lang == "zh_CN":
        assert "隐私单位：贡献按单位限制" in form and "建议设为标识列" in form
    words = page_data_words(sb) | {"people", "person_id", "phone", "age", "district", "amount"}
    assert untranslated(form, lang, words) == [], untranslated(form, lang, words)


def _damage_the_log(sb) -> None:
    """An attacker with the database file: drop the append-only trigger and edit an entry."""
    conn = sqlite3.connect(sb.conn().execute("PRAGMA database_list").fetchone()[2])
    conn.execute("DROP TRIGGER audit_entries_no_update")
    conn.execute("UPDATE audit_entries SET entry = replace(entry, '\"actor\":\"', '\"actor\":\"mallory-')"
                 " WHERE seq = 2")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_a_damaged_log_is_worded_in_the_readers_language(app, demo, lang):
    sb, _ = demo
    reg = client_for(app, "regulator", lang=lang)
    reg.get("/regulator")
    _damage_the_log(sb)
    page = text(post(reg, "/regulator/verify", {}, page="/regulator"))
    box = re.search(r'<div class="bad-box" role="alert" id="verify-result" data-kind="([a-z_]+)">(.*?)</div>\s*</div>',
                    page, re.S)
    assert box, page[page.find("<main"):page.find("<main") + 1500]
    kind, html = box.groups()
    assert kind == "edited"
    with app.test_request_context(headers={"Cookie": f"sandbox_lang={lang}"}):
        words = console_notes.damage(kind)
    assert words["title"] in html and str(escape(words["text"])) in html
    assert 'id="verify-message"' in html and f">{kind}<" not in html
    assert untranslated(page, lang, page_data_words(sb)) == []
