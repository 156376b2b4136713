"""Units (issue 15): a column may declare ``unit = "元"``; the policy checks it, the catalog
carries it, and the public dataset page, the owner's dataset page and the researcher's
schema panel show it."""

from __future__ import annotations

import re

import pytest

from sandbox.errors import PolicyError
from sandbox.governance import open_catalog
from sandbox.governance.policy import UNIT_MAX_LENGTH, parse_policy
from tests import test_console as base
from tests.test_console import client_for
from tests.test_policy import line_of, text

app = base.app


def test_demo_policies_declare_units_and_a_policy_without_units_stays_valid():
    policy = parse_policy(text(), "residents.toml")
    assert policy.columns["age"].unit == "岁" and policy.columns["income"].unit == "元"
    assert policy.columns["district"].unit == ""
    bare = parse_policy(text().replace('unit = "岁"\n', "").replace('unit = "元"\n', ""), "residents.toml")
    assert all(c.unit == "" for c in bare.columns.values())


@pytest.mark.parametrize(
    "bad,why",
    [
        ("unit = 3", "quoted text"),
        (f'unit = "{"元" * (UNIT_MAX_LENGTH + 1)}"', f"at most {UNIT_MAX_LENGTH} characters"),
        ('unit = "元\\n次"', "printable"),
        ('unit = "\\u0007"', "printable"),
    ],
)
def test_a_bad_unit_is_refused_naming_file_line_and_field(bad, why):
    src = text().replace('unit = "岁"', bad, 1)
    with pytest.raises(PolicyError) as info:
        parse_policy(src, "residents.toml")
    msg = info.value.message
    assert "columns.age.unit" in msg and why in msg
    assert f"residents.toml:{line_of(src, bad)}:" in msg


def test_a_unit_of_twenty_characters_is_kept_trimmed():
    policy = parse_policy(text().replace('unit = "岁"', f'unit = " {"x" * UNIT_MAX_LENGTH} "', 1), "r.toml")
    assert policy.columns["age"].unit == "x" * UNIT_MAX_LENGTH


def test_the_catalog_carries_the_unit(demo):
    sb, _ = demo
    entry = {e["name"]: e for e in open_catalog.list_entries(sb, None)}["residents"]
    units = {c["name"]: c["unit"] for c in entry["columns"]}
    assert units["income"] == "元" and units["age"] == "岁" and units["district"] == ""


def _unit_cell(page: str, unit: str) -> bool:
    return f'<td class="unit small" translate="no">{unit}</td>' in page


@pytest.mark.parametrize("lang,header", [("zh_CN", "单位"), ("en", "Unit")])
def test_dataset_pages_and_schema_panel_show_units(app, lang, header):
    public = client_for(app, None, lang=lang).get("/catalog/residents").get_data(as_text=True)
    assert f'<th scope="col">{header}</th>' in public and _unit_cell(public, "元") and _unit_cell(public, "岁")
    owner = client_for(app, "owner", lang=lang).get("/owner/datasets/residents").get_data(as_text=True)
    assert f'<th scope="col">{header}</th>' in owner and _unit_cell(owner, "元") and _unit_cell(owner, "岁")
    clinic = client_for(app, None, lang=lang).get("/catalog/clinic_visits").get_data(as_text=True)
    assert _unit_cell(clinic, "元")
    query = client_for(app, "researcher", lang=lang).get("/query").get_data(as_text=True)
    assert '<span class="col-unit" translate="no">元</span>' in query
    assert '<span class="col-unit" translate="no">岁</span>' in query
    assert f"{header.lower()} <span class=\"col-unit\"" in query


def test_a_draft_leaves_the_unit_commented_out_on_number_columns_only():
    import pyarrow as pa

    from sandbox.service.policy_draft import draft_policy

    n = 40
    table = pa.table({"person_id": list(range(n)), "age": [20 + i % 50 for i in range(n)],
                      "income": [1000.0 * (i % 7) for i in range(n)], "sex": ["男", "女"] * (n // 2)})
    toml = draft_policy(table, name="people", owner="owner", privacy_unit="person_id").toml()
    sections = {s.split("]", 1)[0]: s for s in toml.split("\n[columns.")[1:]}
    commented = '# unit = ""'
    assert commented in sections["age"] and commented in sections["income"] and commented not in sections["sex"]
    policy = parse_policy(toml, "people.toml")
    assert all(c.unit == "" for c in policy.columns.values())
    filled = parse_policy(toml.replace(commented, 'unit = "岁"', 1), "people.toml")
    assert [c.unit for c in filled.columns.values() if c.unit] == ["岁"]


def _upload(c, csv: str):
    import io

    from tests.test_console import token

    page = c.get("/owner/datasets/new").get_data(as_text=True)
    resp = c.post("/owner/datasets/new", data={"csrf_token": token(page), "name": "people",
                                               "file": (io.BytesIO(csv.encode()), "people.csv")},
                  content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)[-2000:]
    return resp.headers["Location"]


PEOPLE = "person_id,age,district,amount\n" + "".join(
    f"{i},{20 + i % 50},{['东区', '西区', '南区'][i % 3]},{i * 10}\n" for i in range(60))


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_the_owner_declares_a_unit_on_the_upload_form(app, demo, lang):
    from tests.test_console import token
    from tests.test_real_files import _form_values

    sb, _ = demo
    c = client_for(app, "owner", lang=lang)
    location = _upload(c, PEOPLE)
    form = c.get(location).get_data(as_text=True)
    assert 'name="col:amount:unit"' in form
    values = {**_form_values(form), "title": "People"}
    long = "元" * (UNIT_MAX_LENGTH + 1)
    refused = c.post(location, data={"csrf_token": token(form), **values, "col:amount:unit": long})
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert re.search(r'<input id="col:amount:unit" name="col:amount:unit" value="' + long + r'"[^>]*aria-invalid="true"',
                     page)  # input kept, the field marked
    ok = c.post(location, data={"csrf_token": token(page), **values, "col:amount:unit": "元"})
    assert ok.status_code == 303, ok.get_data(as_text=True)[-3000:]
    owner_page = c.get("/owner/datasets/people").get_data(as_text=True)
    assert _unit_cell(owner_page, "元")
    from sandbox.store.users import find_user

    entry = {e["name"]: e for e in open_catalog.list_entries(sb, find_user(sb.conn(), "owner"))}["people"]
    assert {col["name"]: col["unit"] for col in entry["columns"]} == {
        "person_id": "", "age": "", "district": "", "amount": "元"}
