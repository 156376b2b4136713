"""Real files in (issue 13): each fixture of ``tests/fixtures/files/`` (made by its
``make_files.py``, provenance there) goes the owner's and the researcher's whole way:
``sandbox datasets draft`` → ``datasets add`` with that draft → the risk report →
acknowledgement → an approval → a query through ``Sandbox.run_query`` on its Chinese columns
→ a join with its partner on the shared unit (人员编号 or 统一社会信用代码).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
import tomllib
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from sandbox.cli.main import cli
from sandbox.errors import SandboxError
from sandbox.governance import file_readers
from sandbox.governance.file_readers import (
    FileReadError,
    parse_date,
    read_bytes_with_encoding,
    read_file,
)
from sandbox.service.operations import SandboxAdmin
from sandbox.service.pipeline import QueryRequest
from sandbox.service.policy_draft import draft_policy
from sandbox.service.query_service import Sandbox
from sandbox.store.users import find_user
from sandbox.store.workspace import Workspace

FILES_DIR = Path(__file__).parent / "fixtures" / "files"
_spec = importlib.util.spec_from_file_location("make_files", FILES_DIR / "make_files.py")
assert _spec and _spec.loader
make_files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_files)

# file, dataset, encoding detected, its join partner, a query, the join
CASES = {
    "clinic_gbk.csv": ("clinic_gbk", "gbk", "residents_gb18030",
                       'SELECT "科室", COUNT(*) AS n, SUM(费用) AS cost FROM clinic_gbk GROUP BY "科室"',
                       "SELECT r.性别, COUNT(*) AS n FROM clinic_gbk c JOIN residents_gb18030 r "
                       "ON c.人员编号 = r.人员编号 GROUP BY r.性别"),
    "residents_gb18030.csv": ("residents_gb18030", "gb18030", "permits",
                              "SELECT 性别, COUNT(*) AS n, AVG(月收入) AS income FROM residents_gb18030 GROUP BY 性别",
                              "SELECT r.街道, COUNT(*) AS n FROM permits p JOIN residents_gb18030 r "
                              "ON p.人员编号 = r.人员编号 GROUP BY r.街道"),
    "permits.xlsx": ("permits", None, "residents_gb18030",
                     "SELECT 许可类型, COUNT(*) AS n, SUM(收费金额_元) AS fees FROM permits GROUP BY 许可类型",
                     "SELECT p.许可类型, AVG(r.月收入) AS income FROM permits p JOIN residents_gb18030 r "
                     "ON p.人员编号 = r.人员编号 GROUP BY p.许可类型"),
    "enterprise_registry.csv": ("enterprise_registry", "utf-8-sig", "enterprise_tax",
                                "SELECT 行业, COUNT(*) AS n FROM enterprise_registry GROUP BY 行业",
                                "SELECT r.行业, SUM(t.应纳税额) AS tax FROM enterprise_tax t JOIN enterprise_registry r "
                                "ON t.统一社会信用代码 = r.统一社会信用代码 GROUP BY r.行业"),
    "enterprise_tax.csv": ("enterprise_tax", "utf-8", "enterprise_registry",
                           "SELECT 月份, SUM(应纳税额) AS tax FROM enterprise_tax GROUP BY 月份",
                           "SELECT r.所在区县, COUNT(*) AS n FROM enterprise_tax t JOIN enterprise_registry r "
                           "ON t.统一社会信用代码 = r.统一社会信用代码 GROUP BY r.所在区县"),
}
GROUPS = {"clinic_gbk": 5, "residents_gb18030": 2, "permits": 4, "enterprise_registry": 5, "enterprise_tax": 12}


def invoke(*args: str, token: str | None = None) -> str:
    """The CLI acting as an authenticated user (issue 14: SANDBOX_TOKEN)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"SANDBOX_TOKEN": token or ""})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def world(demo_template, tmp_path_factory):
    """A copy of the demo workspace with every fixture file drafted, registered (CLI) and
    acknowledged, and one approval per file covering it and its join partner."""
    import shutil

    root = tmp_path_factory.mktemp("real-files") / "ws"
    shutil.copytree(demo_template, root)
    creds = json.loads((root / "demo-credentials.json").read_text())
    owner_token, regulator_token = creds["owner"]["token"], creds["regulator"]["token"]
    drafts, reports = {}, {}
    for file, (name, *_rest) in CASES.items():
        policy = root.parent / f"{name}.toml"
        invoke("datasets", "draft", str(FILES_DIR / file), "--owner", "owner", "-o", str(policy))
        drafts[name] = policy.read_text(encoding="utf-8")
        # the owner fills in what the draft leaves to them: the legal basis (第二十条)
        policy.write_text(drafts[name].replace('# legal_basis = ""', 'legal_basis = "《济南市公共数据开放利用办法》第二十条；测试授权"', 1),
                          encoding="utf-8")
        invoke("datasets", "add", name, str(FILES_DIR / file), "--policy", str(policy), "--data-dir", str(root),
               token=owner_token)
        reports[name] = json.loads(invoke("datasets", "risk", name, "--data-dir", str(root),
                                          token=owner_token))["report"]
        # issue 14: the owner submits (findings acknowledged explicitly), the regulator co-signs
        acked = json.loads(invoke("datasets", "ack", name, "--note", "draft reviewed", "--acknowledge-findings",
                                  "DP aggregates only; k < 5 accepted", "--data-dir", str(root), token=owner_token))
        invoke("reviews", "decide", str(acked["review_id"]), "--approve", "--reason", "reviewed",
               "--data-dir", str(root), token=regulator_token)
    sb = Sandbox(Workspace.open(root))
    admin, conn = SandboxAdmin(sb), sb.conn()
    researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
    approvals = {}
    for _file, (name, _enc, partner, _q, _j) in CASES.items():
        scope = {"datasets": [name, partner]}
        app_id = admin.apply(researcher, {**scope, "scenario": f"{name} test", "purpose": "real files",
                                          "commitment_accepted": True})
        approvals[name] = admin.approve(owner, app_id, scope, epsilon_total=10.0, delta_total=1e-6,
                                        epsilon_per_query=1.0)
    return sb, researcher, approvals, drafts, reports


@pytest.mark.parametrize("file", list(CASES))
def test_draft_register_scan_approve_query_and_join(world, file):
    sb, researcher, approvals, drafts, reports = world
    name, _enc, _partner, query, join = CASES[file]
    policy = tomllib.loads(drafts[name])
    assert policy["dataset"]["owner"] == "owner" and policy["dataset"]["name"] == name
    report = reports[name]
    # every identifier the scan finds was declared as one by the draft: nothing is "high"
    assert report["identifier_findings"] is not None
    assert all(f["severity"] == "declared" for f in report["identifier_findings"]), report
    published = {v["name"] for v in json.loads(invoke("datasets", "list", "--json", "--data-dir", str(sb.ws.root)))}
    assert name in published
    result = sb.run_query(researcher, QueryRequest(approvals[name], query, 0.5))
    assert len(result["rows"]) == GROUPS[name]  # public values: every group released
    joined = sb.run_query(researcher, QueryRequest(approvals[name], join, 0.5))
    assert joined["rows"] and all(r[0] is not None for r in joined["rows"])


def test_drafts_guess_units_identifiers_and_bounds(world):
    drafts = {n: tomllib.loads(t) for n, t in world[3].items()}
    registry, tax = drafts["enterprise_registry"], drafts["enterprise_tax"]
    assert registry["dataset"]["privacy_unit"] == tax["dataset"]["privacy_unit"] == "统一社会信用代码"
    assert registry["dataset"]["one_row_per_unit"] is True
    assert tax["dataset"]["one_row_per_unit"] is False and tax["dataset"]["max_partitions"] == 12
    assert registry["columns"]["企业名称"]["sensitivity"] == "identifier"   # one name per enterprise
    assert registry["columns"]["法定代表人"]["sensitivity"] == "identifier"  # personal names
    assert registry["columns"]["行业"]["sensitivity"] == "quasi_identifier"
    assert tax["columns"]["月份"]["public_values"] == list(range(1, 13))
    residents = drafts["residents_gb18030"]
    assert residents["columns"]["身份证号"]["sensitivity"] == "identifier"
    assert residents["columns"]["月收入"]["bounds"][0] == 0.0
    assert drafts["clinic_gbk"]["columns"]["联系电话"] == {"type": "text", "sensitivity": "identifier"}
    assert drafts["clinic_gbk"]["columns"]["就诊日期"]["bounds"] == ["2024-01-01", "2024-12-31"]
    assert drafts["permits"]["columns"]["办理时间"]["type"] == "date"  # Excel date-times


def test_credit_codes_stay_text_with_valid_check_digits():
    registry = read_file(FILES_DIR / "enterprise_registry.csv", types={"统一社会信用代码": "text"})
    codes = registry.column("统一社会信用代码").to_pylist()
    with open(FILES_DIR / "enterprise_registry.csv", encoding="utf-8-sig", newline="") as f:
        assert codes == [row["统一社会信用代码"] for row in csv.DictReader(f)]
    assert len(set(codes)) == 200 and all(make_files.credit_code_valid(c) for c in codes)
    assert not make_files.credit_code_valid(codes[0][:17] + ("0" if codes[0][17] != "0" else "1"))
    assert registry.schema.field("注册资本_万元").type == pa.int64()  # header （万元） normalised


@pytest.mark.parametrize("file, encoding", [(f, c[1]) for f, c in CASES.items()])
def test_encodings_are_detected(file, encoding):
    table, used = read_bytes_with_encoding((FILES_DIR / file).read_bytes(), file)
    assert used == encoding and table.num_rows > 100
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in table.column_names)


def test_gb18030_only_characters_and_a_wrong_declared_encoding():
    names = read_file(FILES_DIR / "residents_gb18030.csv").column("姓名").to_pylist()
    assert "𠮷" in names[0]  # four bytes in GB18030, not in GBK
    with pytest.raises(FileReadError, match=r"residents_gb18030\.csv, row \d+: .*not valid gbk"):
        read_file(FILES_DIR / "residents_gb18030.csv", encoding="gbk")
    with pytest.raises(FileReadError, match=r"clinic_gbk\.csv, row 1: .*not valid utf-8"):
        read_file(FILES_DIR / "clinic_gbk.csv", encoding="utf-8")


@pytest.mark.parametrize("text, expected", [
    ("2024/01/05", dt.date(2024, 1, 5)), ("2024/1/5", dt.date(2024, 1, 5)), ("2024-1-5", dt.date(2024, 1, 5)),
    ("2024-01-05", dt.date(2024, 1, 5)), ("2024.01.05", dt.date(2024, 1, 5)), ("2024年1月5日", dt.date(2024, 1, 5)),
    ("2024年01月05日", dt.date(2024, 1, 5)), ("20240105", dt.date(2024, 1, 5)),
    ("2024/1/5 8:05", dt.datetime(2024, 1, 5, 8, 5)), ("2024-01-05T08:05:09", dt.datetime(2024, 1, 5, 8, 5, 9)),
    ("2024年1月5日 14:30", dt.datetime(2024, 1, 5, 14, 30)), ("2024年1月5日14时30分", dt.datetime(2024, 1, 5, 14, 30)),
    ("2024/13/01", None), ("2024-02-30", None), ("01/05/2024", None), ("明天", None),
])
def test_chinese_date_forms(text, expected):
    assert parse_date(text) == expected


def test_numeric_looking_codes_are_text_when_declared_or_inferred():
    data = "编号,电话,邮编,数量\n007,13812345678,250001,3\n010,15900001111,250002,4\n".encode("gbk")
    inferred = file_readers.read_bytes(data, "codes.csv")
    assert inferred.column("编号").to_pylist() == ["007", "010"]          # leading zeros
    assert inferred.column("电话").to_pylist() == ["13812345678", "15900001111"]
    assert inferred.column("数量").type == pa.int64()
    declared = file_readers.read_bytes(data, "codes.csv", types={"邮编": "text", "数量": "text"})
    assert declared.column("邮编").to_pylist() == ["250001", "250002"] and declared.column("数量").type == pa.string()


def test_errors_name_the_file_row_and_column():
    data = "人员编号,费用\nR1,12.5\nR2,十二元\n".encode("gb18030")
    with pytest.raises(FileReadError) as err:
        file_readers.read_bytes(data, "fees.csv", types={"人员编号": "text", "费用": "float"})
    assert err.value.message.startswith("fees.csv, row 3, column '费用': '十二元' is not a number")
    with pytest.raises(FileReadError, match=r"fees\.csv, row 3: has 3 fields but the header has 2"):
        file_readers.read_bytes(b"a,b\n1,2\n1,2,3\n", "fees.csv")
    with pytest.raises(FileReadError, match=r"dup\.csv, row 1: headers '金额（元）' and '金额_元' both become"):
        file_readers.read_bytes("金额（元）,金额_元\n1,2\n".encode(), "dup.csv")
    with pytest.raises(FileReadError, match=r"data\.json: unsupported file type '\.json'"):
        file_readers.read_bytes(b"{}", "data.json")
    with pytest.raises(FileReadError, match=r"bad\.xlsx: not a readable \.xlsx"):
        file_readers.read_bytes(b"PK\x03\x04 not really", "bad.xlsx")


def test_a_policy_type_the_cells_do_not_fit_is_refused_by_datasets_add(world, tmp_path):
    sb = world[0]
    policy = world[3]["clinic_gbk"].replace('[columns."费用"]', '[columns."费用"]\n# made wrong').replace(
        'type = "float"', 'type = "int"')
    path = tmp_path / "wrong.toml"
    path.write_text(policy, encoding="utf-8")
    owner_token = json.loads((sb.ws.root / "demo-credentials.json").read_text())["owner"]["token"]
    result = CliRunner().invoke(cli, ["datasets", "add", "clinic_gbk", str(FILES_DIR / "clinic_gbk.csv"),
                                      "--policy", str(path), "--data-dir", str(sb.ws.root)],
                                env={"SANDBOX_TOKEN": owner_token})
    assert result.exit_code == 1
    assert "clinic_gbk.csv, row 2, column '费用':" in result.output and "is not a whole number" in result.output


def test_parquet_with_chinese_headers_and_integer_codes(tmp_path):
    path = tmp_path / "codes.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"区县 ": ["历下区"], "电话": pa.array([13812345678], pa.int64())}), path)
    table = read_file(path, types={"电话": "text"})
    assert table.column_names == ["区县", "电话"] and table.column("电话").to_pylist() == ["13812345678"]


def test_draft_refuses_an_unknown_unit():
    table = read_file(FILES_DIR / "enterprise_tax.csv")
    with pytest.raises(ValueError, match="not a column"):
        draft_policy(table, name="t", privacy_unit="nope")
    assert issubclass(FileReadError, SandboxError)


def _form_values(html: str) -> dict[str, str]:
    """What the browser would post: inputs, selected options, checked boxes and textareas."""
    import html as html_lib
    import re

    form = html[html.index('id="policy-form"'):]
    values = {m[0]: html_lib.unescape(m[1]) for m in re.findall(r'<input id="[^"]*" name="([^"]+)" value="([^"]*)"', form)}
    for name, body in re.findall(r'<select id="[^"]*" name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option(?: value="([^"]*)")? selected>([^<]*)</option>', body)
        if chosen:
            values[name] = html_lib.unescape(chosen[1] or chosen[2])
    for name, body in re.findall(r'<textarea id="[^"]*" name="([^"]+)"[^>]*>([^<]*)</textarea>', form):
        values[name] = html_lib.unescape(body)
    if re.search(r'name="one_row_per_unit" value="1" checked', form):
        values["one_row_per_unit"] = "1"
    values["policy_text"] = ""
    return values


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_console_upload_drafts_the_policy_form_from_an_xlsx(demo_template, tmp_path, lang):
    import io

    from sandbox.web import create_app
    from tests.test_console import client_for, token
    from tests.test_workflow_support import demo_copy

    sb, _creds = demo_copy(demo_template, tmp_path)
    c = client_for(create_app(sb, {"TESTING": True}), "owner", lang=lang)
    page = c.get("/owner/datasets/new").get_data(as_text=True)
    assert 'accept=".csv,.xlsx,.parquet"' in page
    resp = c.post("/owner/datasets/new", data={"csrf_token": token(page), "name": "permits",
                                               "file": (io.BytesIO((FILES_DIR / "permits.xlsx").read_bytes()),
                                                        "permits.xlsx")}, content_type="multipart/form-data")
    assert resp.status_code == 303, resp.get_data(as_text=True)
    form = c.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="draft-note"' in form and 'id="draft-toml"' in form
    assert ("建议的依据" if lang == "zh-CN" else "Why these suggestions") in form
    values = _form_values(form)
    assert values["privacy_unit"] == "人员编号" and values["col:申请人电话:sensitivity"] == "identifier"
    assert values["col:区县:public_values"].splitlines()[0] == "历下区"
    assert values["col:收费金额_元:high"] == "300"
    ok = c.post(resp.headers["Location"], data={"csrf_token": token(form), **values, "title": "Permits"})
    assert ok.status_code == 303, ok.get_data(as_text=True)[-3000:]
    version = SandboxAdmin(sb).sb.conn().execute(
        "SELECT row_count FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.name = 'permits'"
    ).fetchone()
    assert version["row_count"] == 300
