"""Results that read like an analyst's tool (issue 15): Excel download beside the CSV, and
charts chosen by the shape of the release."""

from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook

from tests import test_console as base
from tests.test_console import client_for, run_query, text

app = base.app  # the fixture: the console over a fresh demo workspace


def norm(value):
    """A cell as a number when it reads as one (Excel keeps 249.0 as the number 249)."""
    if value is None or value == "":
        return ""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def test_excel_download_holds_the_same_cells_as_the_csv(app, demo):
    _sb, creds = demo
    c = client_for(app, "researcher", lang="en")
    location = run_query(c, creds["researcher"]["approval_id"]).headers["Location"]
    query_id = re.search(r"result=(q_[0-9a-f]+)", location).group(1)
    assert f"/history/{query_id}.xlsx" in text(c.get(location))
    resp = c.get(f"/history/{query_id}.xlsx")
    assert resp.status_code == 200
    assert resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(io.BytesIO(resp.data))
    cells = [[norm(v) for v in row] for row in book["release"].iter_rows(values_only=True)]
    rows = list(csv.reader(io.StringIO(c.get(f"/history/{query_id}.csv").get_data(as_text=True).lstrip("\ufeff"))))
    assert cells == [[norm(v) for v in row] for row in rows]
    assert isinstance(book["release"]["B2"].value, int | float)  # numbers stay numbers in Excel
    about = dict(book["about"].iter_rows(values_only=True))
    assert about["query_id"] == query_id and len(about["leaf_hash"]) == 64
    # Another researcher's release reads as missing, as for the CSV.
    assert client_for(app, "owner").get(f"/history/{query_id}.xlsx").status_code == 200  # own approval
    assert client_for(app, None).get(f"/history/{query_id}.xlsx").status_code == 302


def test_excel_text_that_looks_like_a_formula_is_text():
    from sandbox.web.console.downloads import xlsx_cell

    assert xlsx_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and xlsx_cell(None) is None and xlsx_cell(2.5) == 2.5


MONTHS = "SELECT DATE_TRUNC('month', visit_date) AS month, COUNT(*) AS visits FROM clinic_visits GROUP BY month"
TWO_KEYS = "SELECT district, sex, COUNT(*) AS people FROM residents GROUP BY district, sex"


def result_page(c, approval, sql) -> str:
    resp = run_query(c, approval, sql=sql)
    assert resp.status_code == 303, text(resp)[:2000]
    return text(c.get(resp.headers["Location"]))


def test_charts_fit_the_data(app, demo):
    _sb, creds = demo
    approval = creds["researcher"]["approval_id"]
    c = client_for(app, "researcher", lang="en")
    # Dates: a line through the released values with the confidence band.
    page = result_page(c, approval, MONTHS)
    assert '<svg class="chart line-band"' in page and '<polygon class="band"' in page
    line = re.search(r'<svg class="chart line-band".*?</svg>', page, re.S).group(0)
    assert line.count('<circle class="dot s0"') == 24  # 2023-01 … 2024-12; the NULL group only in the table
    assert "line: released values; band: 95% confidence intervals" in page
    # Two keys: grouped bars, one colour per value of the second key, with whiskers.
    page = result_page(c, approval, TWO_KEYS)
    assert '<svg class="chart grouped"' in page and page.count('class="bar key s1"') == 12
    assert page.count('<g class="whisker">') == 24
    assert "bars by district and sex" in page
    # Categories: horizontal bars with error bars, as before.
    page = result_page(c, approval, "SELECT district, COUNT(*) AS people FROM residents GROUP BY district")
    assert '<svg class="chart bars"' in page


def test_chart_kinds():
    from sandbox.web.console.plots import chart_kind

    assert chart_kind([[1, 2, 2]]) == "bars"  # repeated x: not a function of the key
    assert chart_kind([["a"] * 20, [str(i) for i in range(20)]]) == "bars"  # too many series
