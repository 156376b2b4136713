"""The allow-list derivative (issue 14; 第八、十一、十二条), at the API: what it keeps, why, and
what it refuses. The attacks themselves are in ``tests/test_red_team_tiers.py``; here the
defences' own promises — recognised quasi-identifiers named in the recipe, categories kept with
their rare values hidden, departures masked across releases, a dataset without any
quasi-identifier refused, clean public values still listed.
"""

from __future__ import annotations

import random
from collections import Counter

import pyarrow as pa
import pytest

from sandbox.governance import risk_scan
from tests.test_red_team_tiers import (
    _ARROW,
    LEAKS,
    RELEASE_COLUMNS,
    _env,
    _residents_like,
    _rows,
    base_columns,
    base_table,
    download,
    k_of,
    policy,
    publish_open,
    register,
    resident_id,
    resident_ids,
)

ID = resident_id("37010219900307123")


@pytest.fixture
def env(demo_template, tmp_path):
    return _env(demo_template, tmp_path)


def test_recipe_names_recognised_quasi_identifiers_and_keeps_categories(env):
    """birth date (a date) and 性别 (a header) declared sensitive are quasi-identifiers anyway; a
    category keeps its common values and hides a value held by one person; a free-text column is
    dropped with its reason; k holds over every column of the file."""
    n = 400
    rng = random.Random(7)
    t = _residents_like(n, seed=8)
    t = t.rename_columns(["pid", "district", "性别", "age", "income"])
    diagnosis = [rng.choice(("感冒", "高血压", "糖尿病")) for _ in range(n)]
    diagnosis[0] = "罕见病"  # one person: must not appear
    notes = [f"第{i}次随访，情况稳定，编号Q{i * 7919 % 100000:05d}" for i in range(n)]
    t = t.append_column("diagnosis", pa.array(diagnosis)).append_column("notes", pa.array(notes))
    cols = {**RELEASE_COLUMNS, "性别": ("text", "sensitive"), "diagnosis": ("text", "sensitive"),
            "notes": ("text", "public")}
    del cols["sex"]
    register(env, "clinic_open", t, policy("clinic_open", cols))
    sub = publish_open(env, "clinic_open", k=5)
    recipe = sub["recipe"]
    why = {q["column"]: q["why"] for q in recipe["quasi_identifiers"]}
    assert why["district"] == "declared" and why["性别"].startswith("recognised")
    dropped = {d["column"]: d["reason"] for d in recipe["dropped"]}
    assert "notes" in dropped and "near-unique" in dropped["notes"]
    assert recipe["kept"] == ["diagnosis"] and recipe["categories"][0]["rare_values_recoded_persons"] >= 1
    got = download(env, "clinic_open")
    assert "罕见病" not in got.csv_bytes.decode()
    assert set(got.csv.column_names) == {"district", "性别", "age", "income", "diagnosis"}
    assert k_of(got.csv, got.csv.column_names) >= 5  # every column, not only the declared ones


def test_departures_between_releases_are_masked(env):
    """Two residents leave between releases: the second download does not lose exactly their rows
    (subtracting the downloads shows no class changed by fewer than k)."""
    v1 = _residents_like(300, seed=9)
    register(env, "town2", v1, policy("town2", RELEASE_COLUMNS))
    publish_open(env, "town2", k=5)
    d1 = download(env, "town2")
    register(env, "town2", v1.slice(2), policy("town2", RELEASE_COLUMNS))
    sub = publish_open(env, "town2", k=5)
    d2 = download(env, "town2")
    gone = Counter(_rows(d1.csv)) - Counter(_rows(d2.csv))
    came = Counter(_rows(d2.csv)) - Counter(_rows(d1.csv))
    for delta in (gone, came):
        assert all(c == 0 or c >= 5 for c in delta.values()), (dict(gone), dict(came))
    # the two leavers, and rows of classes the first release rounded to a multiple of k (granular counts)
    assert sub["recipe"]["differencing"]["retained_rows"] >= 2


def test_a_dataset_without_any_quasi_identifier_is_refused(env):
    """Nothing an outsider could know about a person: k cannot be checked, so no row-level release."""
    n = 100
    t = pa.table({"pid": pa.array(range(1, n + 1), pa.int64()),
                  "category": pa.array(["甲" if i % 2 else "乙" for i in range(n)])})
    register(env, "no_qi", t, policy("no_qi", {"pid": ("int", "sensitive"), "category": ("text", "public")}))
    r = env.client.post("/api/v1/datasets/no_qi/risk/ack", headers=env.tok["owner"], json={"k_anonymity": 5})
    assert r.status_code == 409 and r.json["error"]["code"] == "deidentification_failed"
    assert "no quasi-identifier" in r.json["error"]["message"]


def test_public_values_of_a_clean_column_are_still_listed(env):
    """Values every one of which is held by ≥ 5 persons, in an unflagged column, stay on the public page."""
    t = base_table(60)
    extra = 'public_values = ["历下区", "市中区", "槐荫区"]'
    register(env, "listed", t, policy("listed", {**base_columns(), "district": ("text", "quasi_identifier", extra)}))
    publish_open(env, "listed")
    cols = {c["name"]: c for c in env.client.get("/api/v1/catalog/listed").json["columns"]}
    assert cols["district"]["public_values"] == ["历下区", "市中区", "槐荫区"]


@pytest.mark.parametrize(("value", "kind"), [
    (" ".join((ID[:6], ID[6:14], ID[14:])), "resident_id"), (ID[:6] + ID[8:17], "resident_id"),
    ("１３８１２３４５６７８", "mobile"), ("138-1234-5678", "mobile"),
    ("户主张伟，已核实", "chinese_name"), ("鲁A 12345", "licence_plate"), ("zhang＠example.com", "email"),
])
def test_scan_normalises_before_matching(value, kind):
    """One value repeated in a column of 20: the scan reads it as people write it."""
    findings = risk_scan.scan_column("c", pa.array([value] * 20), "public", sample_rows=None)
    assert kind in {f.kind for f in findings}


@pytest.mark.parametrize("case", sorted(LEAKS))
def test_the_scan_itself_finds_every_former_leak(case):
    """Beyond the allow-list (which drops them anyway), the scan recognises each written form —
    it is the only defence of the conditional tier, where a column not declared identifier is
    refused only if the scan sees it."""
    _why, h = LEAKS[case]
    values, _secrets = h.make(h.n)
    assert risk_scan.scan_column(h.column, pa.array(values, _ARROW[h.ctype]), h.sensitivity, sample_rows=None)


def test_the_scan_finds_an_id_split_over_adjacent_columns():
    ids = resident_ids(60, seed=11)
    t = base_table(60, a=[x[:6] for x in ids], b=[x[6:14] for x in ids], c=[x[14:] for x in ids])
    report = risk_scan.scan(t, {}, privacy_unit="pid")
    assert {(f["column"], f["kind"]) for f in report["identifier_findings"]} == {
        ("a", "resident_id"), ("b", "resident_id"), ("c", "resident_id")}
