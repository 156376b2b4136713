"""Numbers formatted for the locale (issue 15): the console's ``fmt`` filter writes counts,
ε, δ and budgets through Babel (CLDR) in the reader's locale — grouped whole numbers, no
exponent for small values — and the pages use it in both languages."""

from __future__ import annotations

import re

import pytest
from flask_babel import force_locale

from sandbox.web.console import numbers as console
from tests import test_console as base
from tests.test_console import client_for

app = base.app


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_fmt_writes_numbers_the_readers_way(app, lang):
    with app.test_request_context(headers={"Cookie": f"lang={lang}"}):
        cases = {1234567.891: "1,234,568", 24000: "24,000", 0.5: "0.5", 1e-6: "0.000001", 12.5: "12.5",
                 885.831: "885.8", float("nan"): "—", 3: "3", "text": "text"}
        for value, written in cases.items():
            assert console.fmt(value) == written, (lang, value)
        assert console.fmt(1e-6, 6) == "0.000001" and "e" not in console.fmt(2.5e-7, 6)


def test_fmt_follows_the_locale_not_a_hard_coded_pattern(app):
    with app.test_request_context(), force_locale("de"):
        from unittest.mock import patch
        with patch.object(console, "number_locale", return_value="de"):
            assert console.fmt(1234567.0) == "1.234.567" and console.fmt(0.5) == "0,5"


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_pages_show_grouped_counts_and_no_exponents(app, demo, lang):
    c = client_for(app, "owner", lang=lang)
    page = c.get("/owner/datasets/residents").get_data(as_text=True)
    rows = re.search(r"(\d{1,3}(?:,\d{3})+) / (\d{1,3}(?:,\d{3})+)", page)  # persons below k / persons
    assert rows, "counts of persons are grouped"
    cap = re.search(r'<dt>(?:δ spent|δ 已用[^<]*)</dt><dd>([^<]*)</dd>', page)
    assert cap and "e-" not in cap.group(1), cap
    transparency = client_for(app, None, lang=lang).get("/transparency").get_data(as_text=True)
    assert not re.search(r"δ[^<]{0,40}\de-\d", transparency)
