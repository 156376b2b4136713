"""Regression tests for the fixes to round 2 of the red team of the unconditional derivative
(``tests/test_red_team_tiers_round2.py``; issue 14, 第十二条): non-finite floats, band origins,
successive releases of a different shape (nesting levels, added, renamed or dropped columns),
and ``value_support`` counted per person.

Assertions are about what an outsider downloads or reads anonymously, the HTTP status, or the
public functions ``deidentify.make_derivative`` and ``risk_scan.scan``.
"""

from __future__ import annotations

import random
from collections import Counter

import pyarrow as pa
import pytest

from sandbox.governance import deidentify, risk_scan
from sandbox.governance.deidentification import generalisation, successive_releases
from sandbox.governance.policy import ColumnPolicy, DatasetPolicy
from tests.test_red_team_tiers import (
    DISTRICTS,
    Env,
    _env,
    decide,
    download,
    policy,
    publish_open,
    register,
    resident_ids,
)


@pytest.fixture
def env(demo_template, tmp_path) -> Env:
    return _env(demo_template, tmp_path)


def _policy(columns: dict[str, ColumnPolicy], unit: str = "pid") -> DatasetPolicy:
    cols = {"pid": ColumnPolicy("pid", "int", "sensitive"), **columns}
    return DatasetPolicy(name="t", title="t", owner="owner", tier="unconditional", privacy_unit=unit,
                         update_frequency="monthly", one_row_per_unit=False, max_partitions=1000,
                         max_rows_per_partition=1, columns=cols)


def _derive(table: pa.Table, pol: DatasetPolicy, k: int = 5, previous: deidentify.Previous | None = None):
    sens = {c.name: c.sensitivity for c in pol.columns.values()}
    raw = risk_scan.scan(table, sens, privacy_unit=pol.privacy_unit)
    return deidentify.make_derivative(table, pol, raw, k_target=k, previous=previous)


def _town(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    return pa.table({"pid": pa.array(range(1, n + 1), pa.int64()),
                     "district": [DISTRICTS[i % 3] for i in range(n)],
                     "sex": ["男" if i % 2 else "女" for i in range(n)],
                     "age": pa.array([rng.randrange(18, 90) for _ in range(n)], pa.int64())})


TOWN = {"pid": ("int", "sensitive"), "district": ("text", "quasi_identifier"), "sex": ("text", "quasi_identifier"),
        "age": ("int", "quasi_identifier", "bounds = [0, 100]")}


def _rows(t: pa.Table, cols: list[str]) -> Counter:
    return Counter(zip(*(t.column(c).to_pylist() for c in cols), strict=True))


# -- non-finite floats ----------------------------------------------------------------------------------
@pytest.mark.parametrize("values", [
    [float("inf")] + [150.0 + i % 40 for i in range(1, 200)],
    [float("nan")] * 200,
    [float("-inf"), float("nan")] + [150.0 + i % 40 for i in range(2, 200)],
], ids=["inf", "all-nan", "mixed"])
def test_non_finite_float_quasi_identifier_is_missing_not_a_crash(values):
    n = len(values)
    table = pa.table({"pid": pa.array(range(1, n + 1), pa.int64()), "district": [DISTRICTS[i % 3] for i in range(n)],
                      "height": pa.array(values, pa.float64())})
    pol = _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "height": ColumnPolicy("height", "float", "quasi_identifier")})
    der = _derive(table, pol)
    cells = [str(x) for x in der.table.column("height").to_pylist()]
    assert not any("inf" in c or "nan" in c.lower() for c in cells)


def test_infinite_and_nan_quasi_identifiers_publish_or_are_refused_over_the_api(env):
    n = 150
    for name, h in (("inf_h", [float("inf")] + [150.0 + i % 40 for i in range(1, n)]),
                    ("nan_h", [float("nan")] * n)):
        table = pa.table({"pid": pa.array(range(1, n + 1), pa.int64()),
                          "district": [DISTRICTS[i % 3] for i in range(n)], "height": pa.array(h, pa.float64())})
        register(env, name, table, policy(name, {"pid": ("int", "sensitive"), "district": ("text", "quasi_identifier"),
                                                 "height": ("float", "quasi_identifier")}))
        r = env.client.post(f"/api/v1/datasets/{name}/risk/ack", headers=env.tok["owner"],
                            json={"note": "non-finite", "k_anonymity": 5})
        assert r.status_code in (202, 409), r.json


# -- band origin --------------------------------------------------------------------------------------
def test_bands_start_at_multiples_of_their_width_not_at_the_smallest_value():
    n = 300
    incomes = [12345.67] + [12400 + (i * 97) % 9000 for i in range(1, n)]
    table = pa.table({"pid": pa.array(range(1, n + 1), pa.int64()), "district": [DISTRICTS[i % 3] for i in range(n)],
                      "income": pa.array(incomes, pa.float64())})
    pol = _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "income": ColumnPolicy("income", "float", "quasi_identifier")})
    der = _derive(table, pol)
    level = {g["column"]: g["level"] for g in der.recipe["generalised"]}["income"]
    labels = {x for x in der.table.column("income").to_pylist() if x not in (None, "*")}
    assert not any("12345" in x for x in labels), labels
    if level.startswith("band:"):
        w = float(level.split(":")[1])
        starts = [float(x[1:].split(",")[0]) for x in labels]
        assert all(abs(s / w - round(s / w)) < 1e-6 for s in starts), (level, labels)


def test_widths_nest():
    ws = generalisation.widths(100_000, True)
    assert all(b % a == 0 for a, b in zip(ws, ws[1:], strict=False)), ws


# -- successive releases ----------------------------------------------------------------------------------
def _age_policy() -> DatasetPolicy:
    return _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                    "sex": ColumnPolicy("sex", "text", "quasi_identifier"),
                    "age": ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))})


def test_a_previous_band_that_does_not_nest_forces_a_coarser_level():
    """A previous release at 20-year bands (0-19, 20-39 …): 50-year bands would cut 40-59 in two,
    so the next release goes to a level every previous band lies inside, and every class's count
    differs from the sum of the previous classes inside it by 0 or at least k."""
    table = _town(400, seed=5)
    prev_table = pa.table({"district": table.column("district"), "sex": table.column("sex"),
                           "age": generalisation.generalise(ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100)),
                                                        table.column("age"), "band:20")})
    prev = deidentify.Previous(prev_table, {"generalised": [{"column": "age", "level": "band:20"}]})
    der = _derive(table, _age_policy(), k=5, previous=prev)
    level = {g["column"]: g["level"] for g in der.recipe["generalised"]}["age"]
    assert level in ("band:100", "*"), level  # band:50 does not nest band:20
    assert der.recipe["differencing"]["levels"]["age"] == {"previous": "band:20", "now": level}


def test_k_raised_between_releases_subtracts_to_nothing_below_k():
    table = _town(300, seed=7)
    first = _derive(table, _age_policy(), k=5)
    prev = deidentify.Previous(first.table, first.recipe)
    second = _derive(table, _age_policy(), k=10, previous=prev)
    lv1 = {g["column"]: g["level"] for g in first.recipe["generalised"]}["age"]
    lv2 = {g["column"]: g["level"] for g in second.recipe["generalised"]}["age"]
    mapped = successive_releases.map_level(first.table.column("age"), lv1, lv2,
                                   ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100)))
    assert mapped is not None, (lv1, lv2)
    old = Counter(zip(first.table.column("district").to_pylist(), first.table.column("sex").to_pylist(),
                      mapped.to_pylist(), strict=True))
    new = _rows(second.table, ["district", "sex", "age"])
    diffs = {c: new[c] - old[c] for c in set(old) | set(new)}
    assert not [c for c, d in diffs.items() if 0 < abs(d) < 10], diffs
    assert min(new.values()) >= 10


def test_a_column_added_in_the_next_release_is_held_back_and_the_leaver_retained(env):
    v1 = _town(300, seed=261)
    leaver = pa.table({"pid": pa.array([301], pa.int64()), "district": ["历下区"], "sex": ["女"],
                       "age": pa.array([44], pa.int64())})
    register(env, "added", pa.concat_tables([v1, leaver]), policy("added", TOWN))
    publish_open(env, "added", k=5)
    d1 = download(env, "added")
    v2 = v1.append_column("status", pa.array(["在册"] * v1.num_rows))
    register(env, "added", v2, policy("added", {**TOWN, "status": ("text", "sensitive")}))
    sub = publish_open(env, "added", k=5)
    d2 = download(env, "added")
    assert "status" not in d2.csv.column_names
    why = {d["column"]: d["reason"] for d in sub["recipe"]["dropped"]}["status"]
    assert "previous signed release" in why and "第十二条" in why
    cols = ["district", "sex", "age"]
    gone = _rows(d1.csv, cols) - _rows(d2.csv, cols)
    assert not (0 < sum(gone.values()) < 5), gone
    assert sub["recipe"]["differencing"]["departures_unmasked"] == 0


def test_renamed_columns_are_refused_with_the_rule(env):
    v1 = _town(300, seed=251)
    register(env, "renamed", v1, policy("renamed", TOWN))
    publish_open(env, "renamed", k=5)
    zh = {"district": "区县", "sex": "性别", "age": "年龄"}
    v2 = v1.rename_columns([zh.get(c, c) for c in v1.column_names])
    register(env, "renamed", v2, policy("renamed", {zh.get(c, c): v for c, v in TOWN.items()}))
    r = env.client.post("/api/v1/datasets/renamed/risk/ack", headers=env.tok["owner"],
                        json={"note": "renamed", "k_anonymity": 5})
    assert r.status_code == 409, r.json
    assert r.json["error"]["code"] == "deidentification_failed"
    assert "same or fewer columns" in r.json["error"]["message"] and "第十二条" in r.json["error"]["message"]


def test_a_dropped_column_compares_under_the_projection_and_masks_the_leaver():
    v1 = _town(300, seed=17)
    leaver = pa.table({"pid": pa.array([301], pa.int64()), "district": ["历下区"], "sex": ["女"],
                       "age": pa.array([44], pa.int64())})
    first = _derive(pa.concat_tables([v1, leaver]), _age_policy(), k=5)
    pol2 = _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                    "age": ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))})
    second = _derive(v1.drop_columns(["sex"]), pol2, k=5, previous=deidentify.Previous(first.table, first.recipe))
    assert second.table.column_names == ["district", "age"]
    lv1 = {g["column"]: g["level"] for g in first.recipe["generalised"]}["age"]
    lv2 = {g["column"]: g["level"] for g in second.recipe["generalised"]}["age"]
    mapped = successive_releases.map_level(first.table.column("age"), lv1, lv2, pol2.columns["age"])
    old = Counter(zip(first.table.column("district").to_pylist(), mapped.to_pylist(), strict=True))
    new = _rows(second.table, ["district", "age"])
    assert not [c for c in set(old) | set(new) if 0 < abs(new[c] - old[c]) < 5]


def test_newcomer_still_held_back_when_the_shape_is_unchanged():
    v1 = _town(300, seed=271)
    first = _derive(v1, _age_policy(), k=5)
    newcomer = pa.table({"pid": pa.array([301], pa.int64()), "district": ["历下区"], "sex": ["女"],
                         "age": pa.array([37], pa.int64())})
    second = _derive(pa.concat_tables([v1, newcomer]), _age_policy(), k=5,
                     previous=deidentify.Previous(first.table, first.recipe))
    cols = ["district", "sex", "age"]
    assert _rows(second.table, cols) == _rows(first.table, cols)


def test_a_category_value_hidden_before_stays_hidden():
    """v1 recodes the rare plan C to *; in v2 C is held by 10 persons, but showing it would let
    v2 − v1 split the previous * class: C stays * and the classes nest."""
    n = 300
    plan = [("A" if i % 2 else "B") for i in range(n)]
    plan[:3] = ["C"] * 3
    v1 = pa.table({"pid": pa.array(range(1, n + 1), pa.int64()), "district": [DISTRICTS[i % 3] for i in range(n)],
                   "plan": plan})
    pol = _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "plan": ColumnPolicy("plan", "text", "sensitive")})
    first = _derive(v1, pol)
    assert "C" not in first.table.column("plan").to_pylist()
    more = pa.table({"pid": pa.array(range(n + 1, n + 8), pa.int64()), "district": [DISTRICTS[i % 3] for i in range(7)],
                     "plan": ["C"] * 7})
    second = _derive(pa.concat_tables([v1, more]), pol, previous=deidentify.Previous(first.table, first.recipe))
    assert "C" not in second.table.column("plan").to_pylist()
    old = _rows(first.table, ["district", "plan"])
    new = _rows(second.table, ["district", "plan"])
    assert not [c for c in set(old) | set(new) if 0 < abs(new[c] - old[c]) < 5], (old, new)


# -- value_support per person -----------------------------------------------------------------------------
def _visits() -> tuple[pa.Table, list[str]]:
    ids = resident_ids(60, seed=301)
    numbers = [f"ZY{2026_00000 + p}" for p in range(60)]
    patients = [p for p in range(60) for _visit in range(5)]
    table = pa.table({"visit_id": pa.array(range(1, len(patients) + 1), pa.int64()),
                      "id_number": [ids[p] for p in patients], "patient_code": [numbers[p] for p in patients],
                      "district": [DISTRICTS[p % 3] for p in patients]})
    return table, numbers


def test_value_support_counts_persons_linked_through_identifier_columns():
    table, _ = _visits()
    sens = {"visit_id": "sensitive", "id_number": "identifier", "patient_code": "public",
            "district": "quasi_identifier"}
    report = risk_scan.scan(table, sens, privacy_unit="visit_id")
    assert report["value_support"]["patient_code"] == 1  # five visits, one person
    assert report["value_support"]["district"] == 20


def test_value_support_links_through_a_phone_column_found_by_the_scan():
    table, _ = _visits()
    phones = [f"1390000{p:04d}" for p in range(60) for _ in range(5)]
    table = table.drop_columns(["id_number"]).append_column("contact", pa.array(phones))
    report = risk_scan.scan(table, {"visit_id": "sensitive", "contact": "sensitive"}, privacy_unit="visit_id")
    assert report["value_support"]["patient_code"] == 1


def test_public_values_of_visits_are_not_listed_anonymously(env):
    table, numbers = _visits()
    listed = "public_values = [" + ", ".join(f'"{x}"' for x in numbers) + "]"
    register(env, "pv_visits", table, policy("pv_visits", {
        "visit_id": ("int", "sensitive"), "id_number": ("text", "identifier"),
        "patient_code": ("text", "public", listed), "district": ("text", "quasi_identifier")}, unit="visit_id"))
    publish_open(env, "pv_visits", k=5)
    body = env.client.get("/api/v1/catalog/pv_visits").data.decode()
    assert "pv_visits" in body
    assert not [x for x in numbers if x in body]


# -- persons: linkage -------------------------------------------------------------------------------------
def _clinic(keys: list[str], header: str, sensitivity: str, mine: int = 6) -> tuple[pa.Table, DatasetPolicy]:
    """Visits: the last ``mine`` rows are one patient of 钢城区 with 艾滋病 under ``keys[-mine:]``."""
    rng = random.Random(9)
    n = len(keys) - mine
    district = [DISTRICTS[i % 3] for i in range(n)] + ["钢城区"] * mine
    sex = ["男" if i % 2 else "女" for i in range(n)] + ["女"] * mine
    diag = [rng.choice(("感冒", "高血压", "糖尿病")) for _ in range(n)] + ["艾滋病"] * mine
    table = pa.table({"visit_id": pa.array(range(1, len(keys) + 1), pa.int64()), header: keys,
                      "district": district, "sex": sex, "diagnosis": diag})
    pol = _policy({"visit_id": ColumnPolicy("visit_id", "int", "sensitive"),
                   header: ColumnPolicy(header, "text", sensitivity),
                   "district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "sex": ColumnPolicy("sex", "text", "quasi_identifier"),
                   "diagnosis": ColumnPolicy("diagnosis", "text", "sensitive")}, unit="visit_id")
    pol.columns.pop("pid")
    return table, pol


def _her_rows(der) -> list:
    return [d for d in der.table.column("district").to_pylist() if d == "钢城区"]


def test_few_patients_are_linked_by_a_declared_identifier():
    ids = resident_ids(10, seed=201)
    keys = [ids[p] for p in range(9) for _ in range(6)] + [ids[9]] * 6
    table, pol = _clinic(keys, "id_number", "identifier")
    der = _derive(table, pol)
    assert der.recipe["persons"] == 10
    assert not _her_rows(der)


def test_a_valid_id_number_on_many_visits_is_not_a_placeholder():
    """25 visits of one patient: more than the placeholder cap (20 rows), still one person."""
    ids = resident_ids(501, seed=211)
    table, pol = _clinic(ids[:500] + [ids[500]] * 25, "id_number", "identifier", mine=25)
    der = _derive(table, pol)
    assert der.recipe["persons"] == 501
    assert not _her_rows(der)


def test_one_id_number_written_six_ways_is_one_person():
    ids = resident_ids(301, seed=281)
    hers = ids[300]
    forms = [hers, f" {hers}", f"{hers} ", f"{hers[:6]} {hers[6:14]} {hers[14:]}", f"{hers[:6]}-{hers[6:14]}-{hers[14:]}",
             hers.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))]
    table, pol = _clinic(ids[:300] + forms, "id_number", "identifier")
    der = _derive(table, pol)
    assert der.recipe["persons"] == 301
    assert not _her_rows(der)


@pytest.mark.parametrize("header", ["住院号", "patient_code"])
def test_record_numbers_link_whatever_their_declaration(header):
    keys = [f"ZY{2026_00000 + i}" for i in range(300)] + ["ZY202699999"] * 6
    table, pol = _clinic(keys, header, "sensitive")
    der = _derive(table, pol)
    assert header in der.recipe["persons_linked_by"]
    assert header not in der.table.column_names
    assert der.recipe["persons"] == 301
    assert not _her_rows(der)


def test_postcodes_are_not_taken_for_record_numbers():
    n = 600
    table = pa.table({"pid": pa.array(range(1, n + 1), pa.int64()),
                      "postcode": [f"{250000 + i % 60:06d}" for i in range(n)],
                      "district": [DISTRICTS[i % 3] for i in range(n)]})
    pol = _policy({"postcode": ColumnPolicy("postcode", "text", "sensitive"),
                   "district": ColumnPolicy("district", "text", "quasi_identifier")})
    der = _derive(table, pol)
    assert der.recipe["persons_linked_by"] == ["pid"] and der.recipe["persons"] == n


# -- detailed household addresses ---------------------------------------------------------------------------
def test_household_addresses_never_download(env):
    addresses = [f"燕山街道和平社区{h + 1}号楼{1 + h % 3}单元{101 + h}室" for h in range(40)]
    rows = [(h, m) for h in range(40) for m in range(5)]
    table = pa.table({"pid": pa.array(range(1, len(rows) + 1), pa.int64()), "门牌": [addresses[h] for h, _ in rows],
                      "低保": ["是" if h % 4 == 0 else "否" for h, _ in rows],
                      "district": ["历城区"] * len(rows)})
    register(env, "households", table, policy("households", {
        "pid": ("int", "sensitive"), "门牌": ("text", "sensitive"), "低保": ("text", "sensitive"),
        "district": ("text", "quasi_identifier")}))
    r = env.client.post("/api/v1/datasets/households/risk/ack", headers=env.tok["owner"],
                        json={"note": "households", "k_anonymity": 5})
    assert r.status_code == 202, r.json  # published without the addresses
    assert "门牌" in {d["column"] for d in r.json["recipe"]["dropped"]}
    assert decide(env, r.json["review_id"]).status_code == 200
    assert download(env, "households").leaked(addresses) == []


def test_a_building_unit_and_room_is_a_detailed_address():
    table = pa.table({"pid": [1, 2, 3], "a": ["燕山街道和平社区1号楼1单元101室", "和平社区2号楼2单元102室", "幸福村3栋1单元"]})
    found = risk_scan.scan(table, {"a": "sensitive"}, privacy_unit="pid")["identifier_findings"]
    assert [(f["column"], f["kind"], f["matches"]) for f in found] == [("a", "address", 3)]


def test_work_numbers_of_a_small_staff_link_and_are_dropped():
    """30 employees × 5 yearly checks: 工号 (declared sensitive, 30 values) links the checks into 30
    persons and never leaves, not even as a category."""
    rows = [(f"E{100 + e}", DISTRICTS[e % 3], "脂肪肝" if e % 2 else "正常") for e in range(30) for _year in range(5)]
    table = pa.table({"check_id": pa.array(range(1, len(rows) + 1), pa.int64()), "工号": [r[0] for r in rows],
                      "district": [r[1] for r in rows], "finding": [r[2] for r in rows]})
    pol = _policy({"check_id": ColumnPolicy("check_id", "int", "sensitive"), "工号": ColumnPolicy("工号", "text", "sensitive"),
                   "district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "finding": ColumnPolicy("finding", "text", "sensitive")}, unit="check_id")
    pol.columns.pop("pid")
    der = _derive(table, pol)
    assert der.recipe["persons"] == 30 and "工号" in der.recipe["persons_linked_by"]
    assert "工号" not in der.table.column_names
    assert "links that person's rows" in {d["column"]: d["reason"] for d in der.recipe["dropped"]}["工号"]


# -- homogeneity (l-diversity) --------------------------------------------------------------------------------
def test_a_category_shared_by_a_whole_class_is_hidden_there():
    n = 300
    rng = random.Random(241)
    table = pa.table({"pid": pa.array(range(1, n + 7), pa.int64()),
                      "district": [DISTRICTS[i % 3] for i in range(n)] + ["钢城区"] * 6,
                      "sex": ["男" if i % 2 else "女" for i in range(n)] + ["女"] * 6,
                      "diagnosis": [rng.choice(("感冒", "高血压", "糖尿病")) for _ in range(n)] + ["艾滋病"] * 6})
    pol = _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "sex": ColumnPolicy("sex", "text", "quasi_identifier"),
                   "diagnosis": ColumnPolicy("diagnosis", "text", "sensitive")})
    der = _derive(table, pol)
    by_class: dict[tuple, set] = {}
    for d, s, x in zip(*(der.table.column(c).to_pylist() for c in ("district", "sex", "diagnosis")), strict=True):
        by_class.setdefault((d, s), set()).add(x)
    assert all(len(v - {"*"}) >= 2 or v == {"*"} for v in by_class.values()), by_class
    assert "艾滋病" not in der.table.column("diagnosis").to_pylist()
    assert der.recipe["homogeneous_classes_hidden"] == {"diagnosis": 1}
    assert {"感冒", "高血压", "糖尿病"} <= set(der.table.column("diagnosis").to_pylist())
