"""Exploration before querying (issue 15): catalog search by words and tier."""

from __future__ import annotations

import re

from tests import test_console as base
from tests.test_console import client_for, text

app = base.app  # the fixture: the console over a fresh demo workspace


def listed(page: str) -> list[str]:
    return re.findall(r'<h2 id="ds-([a-z0-9_]+)">', page)


def test_catalog_search_by_words_columns_and_tier(app):
    c = client_for(app, None, lang="en")
    everything = listed(text(c.get("/catalog")))
    assert {"residents", "clinic_visits"} <= set(everything)
    assert listed(text(c.get("/catalog?q=clinic"))) == ["clinic_visits"]
    assert listed(text(c.get("/catalog?q=门诊"))) == ["clinic_visits"]  # the Chinese title
    assert "residents" in listed(text(c.get("/catalog?q=DISTRICT+income")))  # column names, any case
    page = text(c.get("/catalog?q=no-such-thing"))
    assert listed(page) == [] and "No dataset matches this search." in page
    assert re.search(r"0 of \d+ datasets match\.", page)
    conditional = listed(text(c.get("/catalog?tier=conditional")))
    assert conditional and "residents" in conditional
    assert listed(text(c.get("/catalog?tier=bogus"))) == everything  # unknown tier: no filter
    assert 'value="clinic"' in text(c.get("/catalog?q=clinic"))  # the search is kept in the form


def test_the_conditions_are_in_the_readers_language(app):
    zh = text(client_for(app, None).get("/catalog/residents"))
    assert "获批的研究者在沙箱中查询" in zh and "apply through the portal" not in zh
    en = text(client_for(app, None, lang="en").get("/catalog/residents"))
    assert "Apply through the portal stating scenario" in en and "有条件开放:" not in en
