"""The risk scan at registration (第十二条) on synthetic data with planted identifiers.

Planted: valid resident ID numbers (``fixtures/workflow/resident_ids.txt``, check digits per
GB 11643-1999), the same numbers with a wrong check digit (must NOT count), mainland mobile
numbers as text and as integers, Chinese personal names (single and compound surnames),
and identifiers embedded in free text. A clean dataset must pass.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from sandbox import datasets, risk_scan
from sandbox.operations import SandboxAdmin
from sandbox.users import find_user
from tests.test_workflow_support import FIXTURES, audit_entries, demo_copy

VALID_IDS = (FIXTURES / "resident_ids.txt").read_text().split()
INVALID_IDS = (FIXTURES / "resident_ids_invalid.txt").read_text().split()
NAMES = ["王伟", "李娜", "张敏", "刘洋", "陈静", "杨磊", "黄丽", "赵强", "吴军", "周杰", "欧阳娜娜", "司马光明"]
MOBILES = ["13812345678", "15900001111", "18653112345", "17705310000", "19912345678"]
DISTRICTS = ["历下区", "市中区", "槐荫区", "天桥区"]
AGE_BANDS = ["18-29", "30-44", "45-59", "60+"]
EDUCATION = ["小学", "初中", "高中", "本科"]  # 高中 starts with a surname: a category, not a name


def clean_table(rows: int = 400, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "person_id": pa.array(np.arange(rows), pa.int64()),
        "district": pa.array([DISTRICTS[i] for i in rng.integers(0, 4, rows)]),
        "age_band": pa.array([AGE_BANDS[i] for i in rng.integers(0, 4, rows)]),
        "education": pa.array([EDUCATION[i] for i in rng.integers(0, 4, rows)]),
        "note": pa.array(["复诊，无异常" if i % 3 else "首诊 2024-03-01 费用 120 元" for i in range(rows)]),
        "cost": pa.array(rng.uniform(0, 500, rows)),
        "visits": pa.array(rng.integers(0, 30, rows), pa.int64()),
    })


SENSITIVITIES = {"person_id": "sensitive", "district": "quasi_identifier", "age_band": "quasi_identifier",
                 "education": "sensitive", "note": "sensitive", "cost": "sensitive", "visits": "sensitive"}


def planted_table() -> pa.Table:
    t = clean_table()
    n = t.num_rows
    notes = t.column("note").to_pylist()
    for i, id_number in enumerate(VALID_IDS[:5]):
        notes[i * 7] = f"患者身份证{id_number}，复诊"  # embedded in free text
    t = t.set_column(t.column_names.index("note"), "note", pa.array(notes))
    planted = {
        "contact": pa.array([MOBILES[i % len(MOBILES)] if i % 2 == 0 else "无" for i in range(n)]),
        "doctor": pa.array([NAMES[i % len(NAMES)] for i in range(n)]),
        "case_ref": pa.array([INVALID_IDS[i % len(INVALID_IDS)] for i in range(n)]),  # wrong check digits
        "phone_int": pa.array([int(MOBILES[i % len(MOBILES)]) for i in range(n)], pa.int64()),
        "id_card": pa.array([VALID_IDS[i % len(VALID_IDS)] for i in range(n)]),
    }
    for name, column in planted.items():
        t = t.append_column(name, column)
    return t


PLANTED_SENSITIVITIES = {**SENSITIVITIES, "contact": "sensitive", "doctor": "public", "case_ref": "sensitive",
                         "phone_int": "sensitive", "id_card": "identifier"}


@pytest.mark.parametrize("number", VALID_IDS)
def test_valid_check_digits_are_recognised(number):
    assert risk_scan.resident_id_valid(number)
    assert risk_scan._valid_ids([number]).tolist() == [True]


@pytest.mark.parametrize("number", INVALID_IDS)
def test_wrong_check_digits_are_rejected(number):
    assert not risk_scan.resident_id_valid(number)
    assert risk_scan._valid_ids([number]).tolist() == [False]


def test_clean_dataset_passes():
    report = risk_scan.scan(clean_table(), SENSITIVITIES, privacy_unit="person_id", dataset="clean")
    assert report["identifier_findings"] == []
    qi = report["quasi_identifiers"]
    assert qi["columns"] == ["district", "age_band"] and qi["k"] >= risk_scan.K_MIN
    assert qi["unique_persons"] == 0 and qi["classes"] == 16
    assert report["passed"] is True and report["problems"] == []


def test_planted_identifiers_are_found():
    report = risk_scan.scan(planted_table(), PLANTED_SENSITIVITIES, privacy_unit="person_id")
    found = {(f["column"], f["kind"]): f for f in report["identifier_findings"]}
    assert set(found) == {
        ("note", "resident_id"), ("contact", "mobile"), ("doctor", "chinese_name"), ("phone_int", "mobile"),
        ("id_card", "resident_id"),
    }
    note = found[("note", "resident_id")]
    assert note["matches"] == 5 and note["embedded"] is True and note["severity"] == "high"
    contact = found[("contact", "mobile")]
    assert contact["matches"] == 200 and contact["embedded"] is False and contact["share"] == 0.5
    assert found[("doctor", "chinese_name")]["matches"] == 400
    assert found[("id_card", "resident_id")]["severity"] == "declared"  # declared identifier: info only
    assert report["passed"] is False
    assert sum("declare it identifier" in p for p in report["problems"]) == 4


def test_report_examples_are_masked():
    text = json.dumps(risk_scan.scan(planted_table(), PLANTED_SENSITIVITIES, privacy_unit="person_id"),
                      ensure_ascii=False)
    for value in VALID_IDS + MOBILES + NAMES:
        assert value not in text


def test_unique_quasi_identifier_combinations_are_measured():
    t = clean_table(rows=40)
    districts = t.column("district").to_pylist()
    districts[0] = "莱芜区"  # the only person in this district
    t = t.set_column(1, "district", pa.array(districts))
    qi = risk_scan.uniqueness(t, ["district", "age_band"], "person_id")
    assert qi["k"] == 1 and qi["unique_persons"] >= 1 and qi["persons_below_k_min"] >= 1
    assert qi["persons"] == 40


def test_persons_with_several_rows_count_once():
    t = pa.table({"person_id": [1, 1, 1, 2, 2, 3], "district": ["a", "a", "a", "a", "a", "b"]})
    qi = risk_scan.uniqueness(t, ["district"], "person_id")
    assert (qi["persons"], qi["classes"], qi["k"], qi["unique_persons"]) == (3, 2, 1, 1)


def test_registration_stores_the_report_and_waits_for_acknowledgement(demo_template, tmp_path):
    sb, _ = demo_copy(demo_template, tmp_path)
    owner = find_user(sb.conn(), "owner")
    policy = (FIXTURES / "clinic_notes.toml").read_text(encoding="utf-8")
    t = planted_table().select(["person_id", "district", "age_band", "note", "contact", "doctor", "cost"])
    version = SandboxAdmin(sb).add_dataset("clinic_notes", t, policy, actor=owner)
    assert not version.published
    kinds = {(f["column"], f["kind"]) for f in version.risk_report["identifier_findings"]}
    assert kinds == {("note", "resident_id"), ("contact", "mobile"), ("doctor", "chinese_name")}
    (entry,) = audit_entries(sb, "dataset.registered")[-1:]
    assert entry["details"]["risk"]["passed"] is False
    assert "clinic_notes" not in {v.name for v in datasets.latest_versions(sb.conn())}
