"""Engine files (docs/decisions/0013, issue 16) and publish-time bounding (issue 18).

The engine reads each version's Parquet-encrypted engine file in place, inside one
allowed directory, instead of every worker decrypting every table into its memory. These
tests hold the lockdown (no other file, no setting, one SELECT), fail-closed reading of
changed or swapped files, key rotation, and the persisted keep columns that replace the
first-use stall.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import query_guard
from sandbox.engine import execution
from sandbox.engine.embedded import Engine, ParquetTable
from sandbox.engine.execution import InProcessExecutor, KeepColumns, engine_request, execute
from sandbox.errors import EngineFailure, SandboxError
from sandbox.governance import datasets
from sandbox.service.operations import rotate_master_key
from sandbox.service.pipeline import QueryRequest
from sandbox.service.prepare import Preparer
from sandbox.service.query_service import Sandbox
from sandbox.store.users import find_user
from tests.test_workflow_support import demo_copy

GENERIC = "the query could not be executed by the engine"
BOUNDED = "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"


def _query(sb: Sandbox, creds: dict, sql: str) -> dict:
    researcher = find_user(sb.conn(), "researcher")
    return sb.run_query(researcher, QueryRequest(creds["researcher"]["approval_id"], sql, 0.5))


def _source(sb: Sandbox, name: str) -> ParquetTable:
    src = sb.tables.source(datasets.get_version(sb.conn(), name))
    assert isinstance(src, ParquetTable)
    return src


@pytest.fixture
def demo_sb(demo_template, tmp_path):
    return demo_copy(demo_template, tmp_path)


def test_the_query_path_holds_no_decrypted_table(demo_sb):
    sb, creds = demo_sb
    assert _query(sb, creds, BOUNDED)["rows"]
    assert sb.tables._tables == {}  # TableCache.get (whole tables) was never used
    src = _source(sb, "residents")
    assert src.key is not None and src.path.startswith(str(datasets.engine_dir(sb.ws.data_dir).resolve()))
    residents = datasets.get_version(sb.conn(), "residents")
    first_id = sb.tables.get(residents).column("id_number")[0].as_py()
    raw = Path(src.path).read_bytes()
    assert first_id.encode() not in raw and b"id_number" not in raw  # footer and pages encrypted


HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('{d}/../../../../etc/hostname')",
    "SELECT * FROM read_blob('{d}/../*.enc')",
    "SELECT * FROM read_blob('{d}/../sandbox.db')",
    "SELECT * FROM read_parquet('{outside}')",
    "SELECT * FROM '{outside}'",
    "SELECT * FROM glob('/etc/*')",
    "COPY (SELECT 1) TO '{d}/escape.csv'",
    "ATTACH '{d}/escape.db' AS x",
    "PRAGMA add_parquet_key('x', 'AAAAAAAAAAAAAAAAAAAAAA==')",
    "SET allowed_directories = ['/']",
    "SET enable_external_access = true",
    "SET force_mbedtls_unsafe = true",
    "SELECT 1; COPY (SELECT 1) TO '{d}/escape2.csv'",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_the_engine_reads_no_file_outside_its_directory(demo_sb, tmp_path, template):
    sb, _ = demo_sb
    d = datasets.engine_dir(sb.ws.data_dir).resolve()
    src = _source(sb, "residents")
    outside = tmp_path / "outside.parquet"
    duckdb.sql("COPY (SELECT 42 AS secret) TO '" + str(outside) + "'")
    sql = template.format(d=d, outside=outside)
    with pytest.raises(EngineFailure) as info:
        sb.engine.execute(sql, {"residents": src})
    assert info.value.message == GENERIC
    assert not list(d.glob("escape*"))
    sb.engine.self_check()


@pytest.mark.parametrize("sql", [
    "SELECT COUNT(*) FROM read_csv('/etc/passwd')",
    "SELECT COUNT(*) FROM read_parquet('{d}/x.parquet')",
    "SELECT COUNT(*) FROM '/etc/passwd'",
    "SELECT COUNT(*) FROM glob('{d}/*')",
])
def test_the_guard_accepts_no_sql_that_names_a_file(demo_sb, sql):
    sb, creds = demo_sb
    d = datasets.engine_dir(sb.ws.data_dir)
    with pytest.raises(SandboxError) as info:
        _query(sb, creds, sql.format(d=d))
    assert not isinstance(info.value, EngineFailure)  # refused by the guard, before any engine


def test_self_check_refuses_an_escaped_directory_or_writer(tmp_path):
    engine = Engine(allowed_directory=tmp_path)
    engine.self_check()
    engine.allowed_directory = "/"  # the lock no longer matches what was meant
    with pytest.raises(RuntimeError, match="allowed_directories"):
        engine.self_check()
    unsafe = Engine.__new__(Engine)
    unsafe.allowed_directory = None
    unsafe._con = duckdb.connect(":memory:")
    unsafe._con.execute("SET force_mbedtls_unsafe = true")
    unsafe._con.execute("SET enable_external_access = false")
    unsafe._con.execute("SET python_enable_replacements = false")
    unsafe._con.execute("SET lock_configuration = true")
    with pytest.raises(RuntimeError, match="force_mbedtls_unsafe"):
        unsafe.self_check()


def test_a_changed_engine_file_fails_closed(demo_sb, caplog):
    sb, creds = demo_sb
    path = _source(sb, "clinic_visits").path
    blob = bytearray(Path(path).read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit in a data page
    Path(path).write_bytes(bytes(blob))
    fresh = Sandbox(sb.ws)
    with pytest.raises(EngineFailure) as info:
        fresh.engine.execute("SELECT SUM(cost) FROM clinic_visits", {"clinic_visits": _source(fresh, "clinic_visits")})
    assert info.value.message == GENERIC


def test_an_engine_file_swapped_for_another_fails_closed(demo_sb):
    sb, _ = demo_sb
    res, vis = _source(sb, "residents"), _source(sb, "clinic_visits")
    salt = vis.path.rsplit("-", 1)[1]
    shutil.copyfile(res.path, vis.path)  # same name, same salt: another version's content
    fresh = Sandbox(sb.ws)
    src = _source(fresh, "clinic_visits")
    assert src.path.endswith(salt)
    with pytest.raises(EngineFailure):
        fresh.engine.execute("SELECT COUNT(*) FROM clinic_visits", {"clinic_visits": src})


def test_rotation_keeps_engine_files_readable_under_the_new_master_only(demo_sb):
    sb, creds = demo_sb
    before = _query(sb, creds, "SELECT COUNT(*) FROM residents")
    assert before["rows"]
    files = sorted(p.name for p in datasets.engine_dir(sb.ws.data_dir).glob("*.parquet"))
    result = rotate_master_key(sb)
    assert result["destroyed"]
    fresh = Sandbox(sb.ws)  # the retired master is gone: keys come only from the re-wrapped data keys
    assert sorted(p.name for p in datasets.engine_dir(sb.ws.data_dir).glob("*.parquet")) == files
    assert _query(fresh, creds, BOUNDED)["rows"]


def test_publish_time_bounding_is_persisted_and_reused(demo_sb, monkeypatch):
    sb, creds = demo_sb
    progress = Preparer(sb, sb.engine, sb.tables).run_once(sb.conn())
    assert progress["state"] == "ready" and progress["done"] == progress["total"] > 2
    keep_files = list(datasets.engine_dir(sb.ws.data_dir).glob("clinic_visits-v*-keep*.parquet"))
    assert keep_files

    approval = creds["researcher"]["approval_id"]
    from sandbox.governance import workflow

    scenario = workflow.get_approval(sb.conn(), approval).scenario
    versions = datasets.latest_versions(sb.conn())
    plan = query_guard.plan("SELECT department, COUNT(*) FROM clinic_visits WHERE cost > 100 GROUP BY department",
                            scenario, datasets.build_catalog(versions))
    req = engine_request(plan, versions, scope=f"approval:{approval}")  # what the preparer stored
    computed = execute(sb.engine, _NoStore(sb.tables), KeepColumns(), req).to_pydict()

    ranking = execution._compute

    def no_ranking(engine, spec, tables):
        if tables[spec.dataset].num_rows == 0:  # the free check on empty tables (service)
            return ranking(engine, spec, tables)
        raise AssertionError("the keep query ran again: the persisted column was not used")

    fresh = Sandbox(sb.ws)
    monkeypatch.setattr(execution, "_compute", no_ranking)
    loaded = InProcessExecutor(fresh.engine, fresh.tables).run(req).to_pydict()
    assert _rows(loaded) == _rows(computed)  # a parallel GROUP BY returns groups in any order
    # a researcher's first bounded query on the version pays no ranking
    assert _query(fresh, creds, BOUNDED)["rows"]


def _rows(table: dict) -> list[tuple]:
    return sorted(zip(*(table[name] for name in sorted(table)), strict=True))


class _NoStore:
    """The sandbox's table cache without the persisted keep columns (computes afresh)."""

    def __init__(self, cache):
        self.source = self.get = cache.source


def test_engine_rejects_parquet_outside_its_directory(tmp_path):
    engine = Engine(allowed_directory=tmp_path / "engine")
    with pytest.raises(EngineFailure):
        engine.execute("SELECT 1 FROM t", {"t": ParquetTable(str(tmp_path / "x.parquet"), 1)})
    assert engine.execute("SELECT 1 AS a", {"t": pa.table({"a": [1]})}).num_rows == 1


def test_raising_the_tier_replaces_the_plaintext_engine_file(demo_template, tmp_path):
    from sandbox.web import create_app
    from tests.test_workflow_catalog import register_permits
    from tests.test_workflow_support import bearer

    sb, creds = demo_copy(demo_template, tmp_path)
    register_permits(sb, "unconditional")
    v = datasets.get_version(sb.conn(), "permits")
    plain = sb.tables.source(v)
    assert isinstance(plain, ParquetTable) and plain.key is None  # open data: a plain engine file
    r = create_app(sb).test_client().post(
        "/api/v1/datasets/permits/tier", headers=bearer(creds["owner"]["token"]),
        json={"tier": "conditional", "basis": "contains fees of identifiable firms"})
    assert r.status_code == 200
    assert not Path(plain.path).exists()
    v = datasets.get_version(sb.conn(), "permits")
    enc = sb.tables.source(v)
    assert enc.key is not None and enc.path != plain.path
    assert sb.engine.execute("SELECT COUNT(*) AS n FROM permits", {"permits": enc}).column("n")[0].as_py() == 300


def test_a_worker_reads_engine_files_and_nothing_else(demo_sb, tmp_path):
    from sandbox.engine.execution import EngineRequest
    from sandbox.engine.pool import EnginePool, PoolSettings

    sb, _ = demo_sb
    v = datasets.get_version(sb.conn(), "residents")
    outside = tmp_path / "outside.csv"
    outside.write_text("secret\n42\n")
    with EnginePool(sb.ws.data_dir, sb.ws.keys_dir, settings=PoolSettings(workers=1)) as pool:
        n = pool.run(EngineRequest((v,), "SELECT COUNT(*) AS n FROM residents")).column("n")[0].as_py()
        assert n == v.row_count
        for sql in (f"SELECT * FROM read_csv('{outside}')", "SELECT * FROM read_text('/etc/hostname')",
                    f"SELECT * FROM read_blob('{sb.ws.root}/sandbox.db')",
                    f"COPY residents TO '{datasets.engine_dir(sb.ws.data_dir)}/leak.csv'"):
            with pytest.raises(EngineFailure) as info:
                pool.run(EngineRequest((v,), sql))
            assert info.value.message == GENERIC
    assert not (datasets.engine_dir(sb.ws.data_dir) / "leak.csv").exists()
