"""Notes from the service in the reader's language (issue 15): the workbench preview's notes,
the policy page's draft notes and the verify page's damage, each worded from what the service
wrote or returned, the service's own words under a disclosure."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from audit_log.errors import DAMAGE_KINDS
from sandbox.service.policy_draft import draft_policy
from sandbox.service.preview import AccuracyTarget, PreviewRequest, preview_query
from sandbox.store.users import find_user
from sandbox.web.console import notes as console_notes
from tests import test_console as base
from tests.test_console import client_for, post, text
from tests.test_console_i18n import TYPES, untranslated

app = base.app
FALLBACK = "Another note from the service"
CJK = re.compile(r"[\u4e00-\u9fff]")
VISITS = "SELECT CAST(cost AS INTEGER) AS yuan, COUNT(*) AS visits FROM clinic_visits GROUP BY yuan"


def data_words(sb) -> set[str]:
    from sandbox.governance import open_catalog

    words = {r["username"].lower() for r in sb.conn().execute("SELECT username FROM users")}
    words |= {r["name"].lower() for r in sb.conn().execute("SELECT name FROM datasets")}
    words |= {c["name"].lower() for e in open_catalog.list_entries(sb, None) for c in e["columns"]}
    return words | TYPES


def people(n: int = 60) -> pa.Table:
    """A table whose draft writes every kind of column note."""
    return pa.table({
        "person_id": list(range(n)),
        "phone": [f"138{i:08d}" for i in range(n)],  # identifier by the risk scan
        "company": [f"firm {i}" for i in range(n)],  # one value per unit: names the unit
        "age": [20 + i % 50 for i in range(n)],  # quasi-identifier by name; a clamp
        "district": ["东区", "西区", "南区"] * (n // 3),  # public values
        "rare": ["a"] * (n - 2) + ["b", "c"],  # values held by fewer than K_MIN units
        "note": ["x" * (1200 if i == 0 else i % 9 + 1) for i in range(n)],  # longer than the default limit
        "seen": pa.array([1_700_000_000_000 + 3_600_000 * i for i in range(n)], pa.timestamp("ms")),
        "joined": pa.array([19_000 + i for i in range(n)], pa.date32()),
        "empty": pa.array([None] * n, pa.date32()),
    })


def test_every_column_note_a_draft_writes_is_worded(app):
    draft = draft_policy(people(), name="people", owner="owner", privacy_unit="person_id")
    notes = [n for c in draft.columns for n in c.notes]
    assert len(notes) >= 10
    with app.test_request_context(headers={"Cookie": "sandbox_lang=zh_CN"}):
        worded = console_notes.draft_notes(notes)
    unworded = [w["own"] for w in worded if FALLBACK in w["text"] or "另一条说明" in w["text"]]
    assert unworded == []
    kinds = {k.pattern.pattern for k in console_notes.DRAFT}
    matched = {k.pattern.pattern for n in notes for k in console_notes.DRAFT if k.pattern.match(n)}
    assert matched == kinds  # every draft kind is exercised by a sentence the draft really wrote


def test_every_preview_note_is_worded_in_both_languages(app, demo):
    sb, creds = demo
    researcher = find_user(sb.conn(), "researcher")
    approval = creds["researcher"]["approval_id"]
    notes = list(preview_query(sb, researcher, PreviewRequest(approval, VISITS, 0.5))["notes"])
    loose = preview_query(sb, researcher, PreviewRequest(approval, VISITS, None, accuracy=AccuracyTarget(
        "visits", 1e6)))["notes"]
    tight = preview_query(sb, researcher, PreviewRequest(approval, VISITS, None, accuracy=AccuracyTarget(
        "visits", 10)))["notes"]
    notes = list(dict.fromkeys([*notes, *loose, *tight]))
    matched = {k.pattern.pattern for n in notes for k in console_notes.PREVIEW if k.pattern.match(n)}
    assert matched == {k.pattern.pattern for k in console_notes.PREVIEW}, notes
    with app.test_request_context(headers={"Cookie": "sandbox_lang=zh_CN"}):
        zh = [w["text"] for w in console_notes.preview_notes(notes)]
    with app.test_request_context(headers={"Cookie": "sandbox_lang=en"}):
        en = [w["text"] for w in console_notes.preview_notes(notes)]
    assert all(CJK.search(t) and "另一条说明" not in t and "e-0" not in t for t in zh), zh
    assert not any(CJK.search(t) or FALLBACK in t for t in en), en


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_preview_page_words_its_notes_with_the_services_words_under_the_disclosure(app, demo, lang):
    sb, creds = demo
    c = client_for(app, "researcher", lang=lang)
    page = text(post(c, "/query/preview", {"sql": VISITS, "approval_id": str(creds["researcher"]["approval_id"]),
                                           "epsilon": "0.5"}, page="/query"))
    words = re.search(r'<ul id="estimate-notes-words">(.*?)</ul>', page, re.S).group(1)
    own = re.search(r'<ul lang="en" translate="no" id="estimate-notes">(.*?)</ul>', page, re.S).group(1)
    assert "contributions bounded on clinic_visits" in own and "DP partition selection" in own
    if lang == "zh_CN":
        assert "每人的贡献受到限制" in words and "差分隐私方式选出" in words
    else:
        assert "rows in <code>clinic_visits</code> are bounded: at most 3 groups" in words
    assert untranslated(page, lang, data_words(sb)) == []


def test_every_damage_kind_has_its_words_in_both_languages(app):
    for lang, zh in (("zh_CN", True), ("en", False)):
        with app.test_request_context(headers={"Cookie": f"sandbox_lang={lang}"}):
            for kind in (*DAMAGE_KINDS, "error"):
                w = console_notes.damage(kind)
                assert bool(CJK.search(w["title"] + w["text"])) is zh, (lang, kind, w)


def test_every_result_note_is_worded_in_both_languages(app):
    """The notes under a result (the release's, post-processing's, a cached release at another
    confidence, a dummy run) read in the reader's language; the writers' own sentences."""
    from sandbox.service.dummy import NOTE

    notes = [
        "1,234 groups passed partition selection; the 1,000 with the largest noisy counts are released",
        "HAVING was NULL or could not be evaluated on 3 row(s) of the noisy result; those rows are left out",
        "avg_cost: 2 value(s) were not finite numbers and are shown as NULL",
        "the intervals are at 95% confidence, the level this release was made at; it cannot be recomputed at "
        "90% (the release is too large or older than this feature)",
        NOTE,
    ]
    kinds = console_notes.RESULT[len(console_notes.PREVIEW):]
    assert all(any(k.pattern.match(n) for k in kinds) for n in notes)
    with app.test_request_context(headers={"Cookie": "sandbox_lang=zh_CN"}):
        zh = [w["text"] for w in console_notes.result_notes(notes)]
    with app.test_request_context(headers={"Cookie": "sandbox_lang=en"}):
        en = [w["text"] for w in console_notes.result_notes(notes)]
    assert all(CJK.search(t) and "另一条说明" not in t for t in zh), zh
    assert not any(CJK.search(t) or FALLBACK in t for t in en), en
