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
import pyarrow.compute as pc
import pytest

from sandbox.governance import datasets, risk_scan
from sandbox.governance.identifiers import check_digits
from sandbox.service.operations import SandboxAdmin
from sandbox.store.users import find_user
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
    assert check_digits.resident_id_valid(number)
    assert check_digits.valid_resident_ids([number]).tolist() == [True]


@pytest.mark.parametrize("number", INVALID_IDS)
def test_wrong_check_digits_are_rejected(number):
    assert not check_digits.resident_id_valid(number)
    assert check_digits.valid_resident_ids([number]).tolist() == [False]


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



# -- enterprise and other identifiers (issue 13) ------------------------------------------------
# 91350100M000100Y43 is the example printed in GB 32100-2015; the other two are published codes of
# listed companies. Each ``*_BAD`` value is the same code with its last character changed.
CREDIT_CODES = ["91350100M000100Y43", "91110000600037341L", "914403001922038216"]
CREDIT_CODES_BAD = ["91350100M000100Y44", "91110000600037341M", "914403001922038217"]
ORG_CODES = ["M000100Y-4", "600037341", "19220382-1"]  # the 组织机构代码 inside the codes above
ORG_CODES_BAD = ["M000100Y-5", "600037342", "19220382-2"]
CARDS = ["6222021234567890128", "6222 0212 3456 7890 128", "4111111111111111", "5500005555555559"]
CARDS_BAD = ["6222021234567890127", "4111111111111112", "5500005555555558"]
PLATES = ["鲁A12345", "鲁AD12345", "鲁A12345D", "京B·8K3X7", "鲁A1234挂"]
ADDRESSES = ["山东省济南市历下区经十路17923号", "历城区花园小区3号楼2单元301室", "槐荫区经七路88号院3号楼",
             "济南市市中区英雄山路129号"]
EMAILS = ["zhang.san@example.com", "li_si+tax@mail.jinan.gov.cn"]
IPS = ["192.168.1.10", "10.0.0.1", "2001:db8::8a2e:370:7334", "fe80::1ff:fe23:4567:890a"]
COMPANIES = [f"济南{c}科技有限公司" for c in "甲乙丙丁戊己庚辛壬癸"] + ["山东某某集团股份有限公司", "章丘区绣惠种植专业合作社"]
SHOPS = [f"历下区{c}记烧烤店" for c in "甲乙丙丁戊己庚辛壬癸子丑"]
NOT_IDENTIFIERS = {  # ordinary values of the same shapes that must not be reported
    "amount": ["123456789", "1234567890", "99999.50", "1,234,567.89", "0.00"],
    "year": ["2024", "1999", "2024年", "2024/01/05", "2024年1月5日", "2024.01.05"],
    "time": ["12:30:45", "08:00", "1:2:3"],
    "version": ["v1.2.3", "3.14", "1.2.3"],
    "category": ["有限责任公司", "股份有限公司", "个体工商户", "有限责任公司（自然人独资）", "注册类型为有限责任公司",
                 "农民专业合作社", "历下区", "经十路", "3号床", "第3号", "门诊楼3层"],
}


def kinds(name: str, values, declared: str = "sensitive") -> dict[str, risk_scan.Finding]:
    column = values if isinstance(values, pa.Array) else pa.array(list(values))
    return {f.kind: f for f in risk_scan.scan_column(name, column, declared)}


def reference_credit_check(body: str) -> str:
    """Naive GB 32100-2015 §4.3 check character, written out from the standard to cross-check."""
    chars = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = [3 ** i % 31 for i in range(17)]  # 1, 3, 9, 27, 19, 26, ...: W_i = 3^(i-1) mod 31
    return chars[(31 - sum(chars.index(c) * w for c, w in zip(body, weights, strict=True)) % 31) % 31]


def test_credit_code_weights_are_the_standards():
    assert list(check_digits.CREDIT_WEIGHTS) == [3 ** i % 31 for i in range(17)]


@pytest.mark.parametrize("code", CREDIT_CODES)
def test_valid_credit_codes(code):
    assert check_digits.credit_code_valid(code) and reference_credit_check(code[:17]) == code[17]
    assert check_digits.valid_credit_codes(pa.array([code])).tolist() == [True]


@pytest.mark.parametrize("code", CREDIT_CODES_BAD)
def test_wrong_credit_check_characters(code):
    assert not check_digits.credit_code_valid(code)
    assert check_digits.valid_credit_codes(pa.array([code])).tolist() == [False]


def test_generated_credit_codes_agree_with_the_reference():
    rng = np.random.default_rng(3)
    chars = check_digits.CREDIT_CHARS
    bodies = ["91" + "".join(map(str, rng.integers(0, 10, 6))) + "".join(rng.choice(list(chars), 9))
              for _ in range(300)]
    codes = [b + reference_credit_check(b) for b in bodies]
    assert check_digits.valid_credit_codes(pa.array(codes)).all()
    assert all(map(check_digits.credit_code_valid, codes))
    shifted = [c[:17] + chars[(chars.index(c[17]) + 1) % 31] for c in codes]
    assert not check_digits.valid_credit_codes(pa.array(shifted)).any()


@pytest.mark.parametrize("code", ORG_CODES)
def test_valid_organization_codes(code):
    assert check_digits.organization_code_valid(code)
    assert check_digits.valid_org_codes(pa.array([code.replace("-", "")])).tolist() == [True]


@pytest.mark.parametrize("code", ORG_CODES_BAD)
def test_wrong_organization_check_characters(code):
    assert not check_digits.organization_code_valid(code)
    assert check_digits.valid_org_codes(pa.array([code.replace("-", "")])).tolist() == [False]


@pytest.mark.parametrize(("number", "valid"), [(c, True) for c in CARDS] + [(c, False) for c in CARDS_BAD])
def test_luhn(number, valid):
    assert check_digits.luhn_valid(number) is valid
    digits = number.replace(" ", "")
    assert check_digits.valid_luhn(pa.array([digits])).tolist() == [valid]


@pytest.mark.parametrize(("column", "values", "kind"), [
    ("code", CREDIT_CODES * 4, "credit_code"),
    ("统一社会信用代码", CREDIT_CODES, "credit_code"),
    ("org", ORG_CODES * 4, "organization_code"),
    ("card", CARDS * 3, "bank_card"),
    ("plate", PLATES * 3, "licence_plate"),
    ("addr", ADDRESSES * 3, "address"),
    ("mail", EMAILS * 6, "email"),
    ("ip", IPS * 3, "ip_address"),
    ("企业名称", COMPANIES, "company_name"),
    ("shop", SHOPS, "company_name"),
    ("法定代表人", ["张伟", "李娜", "王芳"] * 4, "legal_representative"),
    ("legal_rep", ["欧阳娜娜", "赵强"] * 6, "legal_representative"),
])
def test_whole_value_columns_are_found(column, values, kind):
    found = kinds(column, values)
    assert set(found) == {kind}
    f = found[kind]
    assert f.matches == len(values) and f.share == 1.0 and not f.embedded and f.severity == "high"
    assert kinds(column, values, "identifier")[kind].severity == "declared"


@pytest.mark.parametrize(("values", "kind"), [
    (CREDIT_CODES_BAD * 4, "credit_code"), (ORG_CODES_BAD * 4, "organization_code"),
    (CARDS_BAD * 4, "bank_card"),
])
def test_wrong_check_digits_are_not_reported(values, kind):
    assert kind not in kinds("code", values)


def test_same_shaped_serials_are_not_reported():
    """A check passes by chance for 1 in 10–31 serials; such a column stays under CHECKSUM_SHARE."""
    serials = pa.array(np.arange(6222021234567000, 6222021234567000 + 2000), pa.int64())
    nine_digit = pa.array(np.arange(100_000_000, 100_002_000), pa.int64())
    orders = [f"9137{n:014d}" for n in range(2000)]
    assert kinds("serial", serials) == {} and kinds("amount", nine_digit) == {} and kinds("order", orders) == {}


def test_resident_ids_are_not_also_cards_or_credit_codes():
    found = kinds("id", VALID_IDS * 10)
    assert set(found) == {"resident_id"}


@pytest.mark.parametrize("column", sorted(NOT_IDENTIFIERS))
def test_ordinary_values_are_not_identifiers(column):
    assert kinds(column, NOT_IDENTIFIERS[column] * 5) == {}


def test_a_personal_name_column_without_a_header_hint_stays_a_name_column():
    assert set(kinds("doctor", NAMES * 3)) == {"chinese_name"}
    assert kinds("法人类型", ["企业法人", "机关法人", "社团法人"] * 5) == {}


FREE_TEXT = ("客户济南华信科技有限公司，法定代表人张伟，车牌鲁A12345，住经十路88号3单元301室，邮箱zhang.san@example.com，"
             "登录IP 192.168.1.10，卡号6222021234567890128，信用代码91350100M000100Y43，机构代码M000100Y-4")


def test_free_text_with_every_kind():
    notes = [FREE_TEXT if i % 4 == 0 else "复诊，无异常" for i in range(40)]
    found = kinds("note", notes)
    assert set(found) == {"company_name", "legal_representative", "licence_plate", "address", "email",
                          "ip_address", "bank_card", "credit_code", "organization_code"}
    for f in found.values():
        assert f.embedded and f.matches == 10 and f.share == 0.25


def test_free_text_findings_are_reported_and_fail_the_scan():
    t = clean_table(rows=40)
    t = t.set_column(t.column_names.index("note"), "note",
                     pa.array([FREE_TEXT if i % 4 == 0 else "复诊" for i in range(40)]))
    report = risk_scan.scan(t, SENSITIVITIES, privacy_unit="person_id")
    assert report["passed"] is False
    assert any("bank card numbers" in p and "inside text" in p for p in report["problems"])
    assert {f["kind"] for f in risk_scan.summary(report)["findings"]} >= {"credit_code", "bank_card", "address"}


def test_enterprise_examples_are_masked():
    columns = {"code": CREDIT_CODES * 4, "org": ORG_CODES * 4, "card": CARDS * 3, "plate": PLATES * 3,
               "addr": ADDRESSES * 3, "mail": EMAILS * 6, "ip": IPS * 3, "企业名称": COMPANIES,
               "法定代表人": NAMES, "note": [FREE_TEXT] * 4}
    t = pa.table({"person_id": pa.array(range(12)), **{k: pa.array((v * 12)[:12]) for k, v in columns.items()}})
    report = risk_scan.scan(t, {}, privacy_unit="person_id")
    assert len(report["identifier_findings"]) >= len(columns)
    text = json.dumps(report, ensure_ascii=False)
    for value in CREDIT_CODES + ORG_CODES + CARDS + PLATES + ADDRESSES + EMAILS + IPS + COMPANIES + NAMES:
        assert value not in text and value.replace(" ", "").replace("-", "") not in text
    for f in report["identifier_findings"]:
        assert "*" in f["example"]


def test_scan_of_100k_rows_is_fast():
    """Smoke test: the whole scan of 100,000 mixed rows (13 columns) stays well under a few seconds.

    On the reference machine 1M rows take about 1.2–1.7 s (``time_scan(1_000_000)``), 1.24× before
    the enterprise kinds were added; the bound here is loose so that a loaded CI runner passes.
    """
    assert time_scan(100_000, repeats=1) < 5.0


def benchmark_table(rows: int, seed: int = 7) -> pa.Table:
    """The demo residents table plus free text, amounts and years: what the timing is measured on.

    ``python -c "from tests.test_risk_scan import time_scan; print(time_scan(1_000_000))"``
    """
    from sandbox.demo.data import residents_chunk

    rng = np.random.default_rng(seed)
    t = residents_chunk(0, rows, rng)
    fees = pc.cast(pa.array(rng.integers(10, 100_000, rows)), pa.string())
    days = pc.cast(pa.array(rng.integers(1, 28, rows)), pa.string())
    note = pc.binary_join_element_wise("2024年3月", days, "日复诊，费用", fees, "元，无异常", "")
    t = t.append_column("note", note)
    t = t.append_column("amount", pa.array(rng.integers(0, 10**9, rows), pa.int64()))
    return t.append_column("year", pa.array(rng.integers(1990, 2025, rows), pa.int64()))


BENCH_SENSITIVITIES = {"name": "identifier", "id_number": "identifier", "phone": "identifier",
                       "district": "quasi_identifier", "age": "quasi_identifier", "sex": "quasi_identifier"}


def time_scan(rows: int, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of :func:`risk_scan.scan` on :func:`benchmark_table`."""
    import time

    t = benchmark_table(rows)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        risk_scan.scan(t, BENCH_SENSITIVITIES, privacy_unit="person_id")
        best = min(best, time.perf_counter() - start)
    return best
