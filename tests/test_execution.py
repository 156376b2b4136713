"""Materialised contribution bounding (sandbox/engine/execution.py, docs/decisions/0004).

The materialised query over the cached keep column must give exactly what the
self-contained engine query gives, for every accepted fixture that bounds contributions
(single datasets, joins, LEFT JOINs, filters, quantiles, distinct counts), on data with
heavy contributors; the keep column is computed once per grouping and reused across
filters; and which rows are kept depends on row content, not on row position.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pyarrow as pa
import pytest
from test_guard_engine import RES, visits
from test_guard_support import CATALOG, SCENARIOS, all_cases

from query_guard import GuardError, plan
from sandbox.engine.embedded import Engine, with_rowid
from sandbox.engine.execution import KeepColumns, engine_request, execute

HEAVY = {"residents": RES, "clinic_visits": visits(heavy=True)}


class Tables:
    """Stands in for the sandbox's TableCache: name → table with ``__rowid``."""

    def __init__(self, tables: dict[str, pa.Table]):
        self.tables = {name: with_rowid(t) for name, t in tables.items()}

    def get(self, v) -> pa.Table:
        return self.tables[v.name]


VERSIONS = [SimpleNamespace(name=n, version_id=i) for i, n in enumerate(HEAVY, start=1)]


def bounded_plans() -> list:
    out = []
    for case in all_cases():
        if case.outcome != "accept":
            continue
        try:
            p = plan(case.sql, SCENARIOS[case.expect.get("scenario", "default")], CATALOG)
        except GuardError:
            continue
        if p.materialisation is not None and set(p.datasets) <= set(HEAVY):
            out.append(pytest.param(p, id=case.id))
    return out


def _sorted_rows(table: pa.Table) -> list:
    data = table.to_pydict()
    rows = list(zip(*data.values(), strict=True)) if data else []
    return sorted(tuple(repr(v) for v in row) for row in rows)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.mark.parametrize("p", bounded_plans())
def test_materialised_query_equals_self_contained_query(p, engine):
    tables = Tables(HEAVY)
    direct = engine.execute(p.engine_sql(), {v.name: tables.get(v) for v in VERSIONS})
    materialised = execute(engine, tables, KeepColumns(), engine_request(p, VERSIONS))
    assert _sorted_rows(materialised) == _sorted_rows(direct)


def test_enough_bounded_cases_are_compared():
    assert len(bounded_plans()) >= 30


def test_keep_column_is_computed_once_per_grouping(engine):
    tables, keep = Tables(HEAVY), KeepColumns()
    scenario = SCENARIOS["default"]
    by_dept = [
        "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department",
        "SELECT department, SUM(cost) FROM clinic_visits WHERE cost > 100 GROUP BY department",
        "SELECT department AS d, AVG(cost) FROM clinic_visits WHERE visit_date >= '2024-01-01' GROUP BY d",
    ]
    columns = {plan(sql, scenario, CATALOG).materialisation.column for sql in by_dept}
    assert len(columns) == 1  # the filters do not enter the keep query
    for sql in by_dept:
        execute(engine, tables, keep, engine_request(plan(sql, scenario, CATALOG), VERSIONS))
    assert len(keep) == 1
    by_month = plan("SELECT month(visit_date) AS m, COUNT(*) FROM clinic_visits GROUP BY m", scenario, CATALOG)
    execute(engine, tables, keep, engine_request(by_month, VERSIONS))
    assert len(keep) == 2


def test_least_recently_used_keep_columns_are_evicted(engine):
    tables, keep = Tables(HEAVY), KeepColumns(max_columns=1)
    scenario = SCENARIOS["default"]
    for sql in ("SELECT COUNT(*) FROM clinic_visits",
                "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"):
        execute(engine, tables, keep, engine_request(plan(sql, scenario, CATALOG), VERSIONS))
    assert len(keep) == 1


def test_kept_rows_depend_on_content_not_position(engine):
    """PRIVACY: a neighbouring dataset shifts other people's row positions; their kept
    rows (and so every sum) must not change with it."""
    heavy = visits(heavy=True)
    order = list(range(heavy.num_rows))
    random.Random(3).shuffle(order)
    shuffled = heavy.take(pa.array(order))  # renumbered: __rowid follows the new order
    sql = "SELECT department, COUNT(*), SUM(cost), AVG(cost) FROM clinic_visits GROUP BY department"
    p = plan(sql, SCENARIOS["default"], CATALOG)
    first = execute(engine, Tables({"residents": RES, "clinic_visits": heavy}), KeepColumns(),
                    engine_request(p, VERSIONS))
    second = execute(engine, Tables({"residents": RES, "clinic_visits": shuffled}), KeepColumns(),
                     engine_request(p, VERSIONS))
    assert _sorted_rows(first) == _sorted_rows(second)


def test_bounding_happens_before_the_filter(engine):
    """The heavy person (50 visits of cost 4000 in each of 5 departments) keeps 3 groups
    × 10 rows whatever the filter; a filter can only remove kept rows, never bring back
    dropped ones."""
    scenario = SCENARIOS["default"]
    tables = Tables(HEAVY)
    light = Tables({"residents": RES, "clinic_visits": visits()})
    sql = "SELECT department, COUNT(*) FROM clinic_visits WHERE cost >= 3999 GROUP BY department"
    p = plan(sql, scenario, CATALOG)
    out = execute(engine, tables, KeepColumns(), engine_request(p, VERSIONS)).to_pydict()
    base = execute(engine, light, KeepColumns(), engine_request(p, VERSIONS)).to_pydict()
    base_rows = dict(zip(base["__g0"], base["__rows"], strict=True))
    extra = sorted(n - base_rows.get(d, 0) for d, n in zip(out["__g0"], out["__rows"], strict=True))
    assert [e for e in extra if e] == [10, 10, 10]


def test_the_groups_a_person_keeps_are_chosen_per_person(demo):
    """Issue 13 (bias): with L0 = 3 the groups a person keeps were chosen by the key's hash
    alone, so everyone above the bound dropped the *same* departments (外科 kept 72 % of its
    visits, 眼科 100 %). Chosen per person, every department keeps about the same share."""
    import duckdb

    from sandbox.engine.execution import InProcessExecutor
    from sandbox.governance import datasets, workflow
    from sandbox.store.users import find_user

    sb, creds = demo
    conn = sb.conn()
    researcher = find_user(conn, "researcher")
    approval = workflow.active_approval(conn, researcher, creds["researcher"]["approval_id"], now=sb.now)
    versions = datasets.latest_versions(conn)
    p = plan("SELECT department, COUNT(*) FROM clinic_visits GROUP BY department", approval.scenario,
             datasets.build_catalog(versions))
    bounded = InProcessExecutor(sb.engine, sb.tables).run(engine_request(p, versions)).to_pydict()
    key = p.group_keys[0].column
    table = sb.tables.get(next(v for v in versions if v.name == "clinic_visits"))
    con = duckdb.connect()
    con.register("v", table)
    truth = dict(con.execute("SELECT department, COUNT(*) FROM v GROUP BY 1").fetchall())
    kept = {k: n / truth[k] for k, n in zip(bounded[key], bounded["__rows"], strict=True) if k in truth}
    assert len(kept) == len(truth)
    assert max(kept.values()) - min(kept.values()) < 0.08, kept
