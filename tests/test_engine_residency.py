"""The residency budget of decision 0013 (amended): versions that fit are held decrypted in
memory (fast), larger ones are read in place from their engine files, least recently used
evicted first; both forms give the engine the same rows in the same order."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sandbox.engine import tables
from sandbox.engine.embedded import ROWID, Engine, EngineLimits, ParquetTable
from sandbox.engine.pool import default_resident_bytes
from sandbox.governance import datasets
from tests.test_workflow_support import demo_copy


@pytest.fixture
def demo_sb(demo_template, tmp_path):
    return demo_copy(demo_template, tmp_path)


def _versions(sb):
    conn = sb.conn()
    return datasets.get_version(conn, "residents"), datasets.get_version(conn, "clinic_visits")


def _sizes(sb):
    residents, visits = _versions(sb)
    cache = tables.TableCache(sb.ws.data_dir, sb.tables.decryptor)
    return (tables.estimate_bytes(cache.source(residents)), tables.estimate_bytes(cache.source(visits)))


def test_the_size_estimate_is_close_to_the_decrypted_table(demo_sb):
    sb, _ = demo_sb
    residents, _visits = _versions(sb)
    estimate, _ = _sizes(sb)
    actual = sb.tables.get(residents).nbytes
    assert 0.5 * actual <= estimate <= 2 * actual


def test_a_version_under_the_budget_is_served_from_memory(demo_sb):
    sb, _ = demo_sb
    residents, visits = _versions(sb)
    r, v = _sizes(sb)
    cache = tables.TableCache(sb.ws.data_dir, sb.tables.decryptor, resident_bytes=r + v + 1)
    assert isinstance(cache.source(residents), pa.Table)
    assert isinstance(cache.source(visits), pa.Table)
    assert cache.resident() == [residents.version_id, visits.version_id]
    assert cache.source(residents) is cache.source(residents)  # held, not reloaded


def test_a_version_over_the_budget_is_read_in_place(demo_sb):
    sb, _ = demo_sb
    residents, visits = _versions(sb)
    r, v = _sizes(sb)
    cache = tables.TableCache(sb.ws.data_dir, sb.tables.decryptor, resident_bytes=min(r, v) - 1)
    assert isinstance(cache.source(residents), ParquetTable)
    assert isinstance(cache.source(visits), ParquetTable)
    assert cache.resident() == []


def test_the_least_recently_used_version_is_evicted(demo_sb):
    sb, _ = demo_sb
    residents, visits = _versions(sb)
    r, v = _sizes(sb)
    cache = tables.TableCache(sb.ws.data_dir, sb.tables.decryptor, resident_bytes=max(r, v))  # one at a time
    assert isinstance(cache.source(residents), pa.Table)
    assert cache.resident() == [residents.version_id]
    assert isinstance(cache.source(visits), pa.Table)
    assert cache.resident() == [visits.version_id]  # residents evicted
    assert isinstance(cache.source(residents), pa.Table)
    assert cache.resident() == [residents.version_id]


def test_budget_zero_reads_everything_in_place(demo_sb):
    sb, _ = demo_sb
    residents, _ = _versions(sb)
    assert isinstance(tables.TableCache(sb.ws.data_dir, sb.tables.decryptor).source(residents), ParquetTable)


def test_both_forms_give_the_same_rows_in_the_same_order(demo_sb):
    """Why: keep flags are indexed by row id and persisted once for both forms."""
    sb, _ = demo_sb
    _, visits = _versions(sb)
    engine = Engine(allowed_directory=datasets.engine_dir(sb.ws.data_dir))
    in_place = tables.TableCache(sb.ws.data_dir, sb.tables.decryptor).source(visits)
    in_memory = tables.TableCache(sb.ws.data_dir, sb.tables.decryptor, resident_bytes=2**40).source(visits)
    assert isinstance(in_memory, pa.Table)
    sql = f"SELECT * FROM t ORDER BY {ROWID}"
    a = engine.execute(sql, {"t": in_place})
    b = engine.execute(sql, {"t": in_memory})
    assert a.num_rows == b.num_rows == visits.row_count
    assert a.equals(b.select(a.column_names).cast(a.schema))


def test_the_default_budget_is_an_eighth_of_the_engine_limit_unless_configured(monkeypatch):
    monkeypatch.delenv("SANDBOX_RESIDENT_MEMORY", raising=False)
    assert default_resident_bytes(EngineLimits(memory_limit="4GB")) == 5 * 10**8
    assert default_resident_bytes(EngineLimits(memory_limit="2GiB")) == 2**28
    monkeypatch.setenv("SANDBOX_RESIDENT_MEMORY", "1GiB")
    assert default_resident_bytes(EngineLimits()) == 2**30
    monkeypatch.setenv("SANDBOX_RESIDENT_MEMORY", "0")
    assert default_resident_bytes(EngineLimits()) == 0


def test_only_text_columns_with_public_values_are_dictionary_encoded(demo_sb):
    """Why: the held table's form follows the policy alone, never the values."""
    sb, _ = demo_sb
    residents, _ = _versions(sb)
    table = tables.TableCache(sb.ws.data_dir, sb.tables.decryptor, resident_bytes=2**40).source(residents)
    for name in table.column_names:
        declared = residents.policy.columns.get(name)
        public_text = declared is not None and declared.type == "text" and declared.public_values is not None
        assert pa.types.is_dictionary(table.schema.field(name).type) == public_text, name
    assert any(pa.types.is_dictionary(f.type) for f in table.schema)


def test_a_worker_gives_the_same_answers_held_or_in_place(demo_sb):
    """Through the worker pool: the budget reaches the worker, and the answer is the same."""
    from sandbox.engine.execution import EngineRequest
    from sandbox.engine.pool import EnginePool, PoolSettings

    sb, _ = demo_sb
    residents, visits = _versions(sb)
    sql = ("SELECT r.district, COUNT(*) AS n, MAX(v.cost) AS c FROM clinic_visits v "
           "JOIN residents r ON r.person_id = v.person_id GROUP BY r.district ORDER BY r.district")
    answers = []
    for budget in (0, 2**40):
        with EnginePool(sb.ws.data_dir, sb.ws.keys_dir,
                        settings=PoolSettings(workers=1, resident_bytes=budget)) as pool:
            assert pool.resident_bytes == budget
            answers.append(pool.run(EngineRequest((residents, visits), sql)))
    assert answers[0].num_rows > 1 and answers[0].equals(answers[1])
