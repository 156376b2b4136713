"""Neighbouring demo workspaces for the differential tests (issue 12, "Must show").

D is the demo data; D′ is D plus ONE person (every row of that person: one ``residents``
row and more ``clinic_visits`` rows than the contribution caps allow). Both are copies of
the same demo workspace (same keys, same users), both get the same new dataset versions
registered through ``SandboxAdmin.add_dataset`` (the path ``sandbox demo`` uses), the same
bounding seeds and the same approvals, so the only difference is that person.

:func:`outcome` runs one request through ``Sandbox.run_query`` and reduces it to what the
caller and the log may show independently of the data: status, error code, the charge,
the audit actions appended and the released column names (never the released numbers).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sandbox.demo.data import write_demo_files
from sandbox.demo.setup import policy_text, setup_demo
from sandbox.errors import SandboxError
from sandbox.governance import dataset_caps
from sandbox.governance.workflow import SETTING_GROUP as WORKFLOW_SETTINGS
from sandbox.service.operations import SandboxAdmin
from sandbox.service.pipeline import QueryFailed, QueryRefused, QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store.users import User, find_user
from sandbox.store.workspace import transaction

#: Every query asks for this ε (the approvals allow far more in total).
EPSILON = 0.05

#: The person added to D′: the largest id an int64 privacy unit can hold.
EXTRA_ID = 2**63 - 1

# very long (the default text limit, sandbox.governance.policy.DEFAULT_TEXT_MAX_LENGTH), non-ASCII, RTL, emoji, flags
LONG = ("济南·Ωμέγα·עברית·العربية·😀🇨🇳‮" * 300)[:1000]
ODD = "O'Brien \"q\" \\ \\\\ %_ ' OR 1=1 -- /* */ ; \t\n\r\x00 \u200b 😀"
NUL = "\x00"


def _residents_row(variant: str) -> dict[str, Any]:
    if variant == "nulls":  # NULL wherever the type allows it
        return {"person_id": EXTRA_ID, "name": None, "id_number": None, "phone": None,
                "district": None, "age": None, "sex": None, "education": None,
                "employment": None, "income": None}
    if variant == "bounds":  # exactly at every declared bound, public values only
        return {"person_id": EXTRA_ID, "name": "边界", "id_number": "370102190001010000",
                "phone": "13800000000", "district": "商河县", "age": 100, "sex": "女",
                "education": "研究生", "employment": "在职", "income": 500000.0}
    # "extreme": beyond every bound, text no policy foresaw
    return {"person_id": EXTRA_ID, "name": LONG, "id_number": ODD, "phone": "",
            "district": LONG, "age": 2**62, "sex": ODD, "education": "",
            "employment": NUL, "income": 1.7976931348623157e308}


def _visit_rows(variant: str) -> list[dict[str, Any]]:
    """More rows than max_partitions × max_rows_per_partition (3 × 10) allow."""
    edges = [dt.date(2023, 1, 1), dt.date(2024, 12, 31)]
    if variant == "nulls":
        rows = [{"visit_date": None, "department": None, "cost": None} for _ in range(30)]
        rows += [{"visit_date": d, "department": "内科", "cost": None} for d in edges]
        return rows
    if variant == "bounds":
        depts = ["内科", "外科", "儿科", "妇产科", "眼科"]
        return [{"visit_date": edges[i % 2], "department": depts[i % len(depts)],
                 "cost": 5000.0 if i % 3 else 0.0} for i in range(40)]
    dates = [*edges, dt.date(2022, 12, 31), dt.date(2025, 1, 1), dt.date(1, 1, 1),
             dt.date(9999, 12, 31), dt.date(2024, 2, 29), None, *BEYOND_PYTHON_DATES]
    depts = ["内科", LONG, ODD, "", NUL, None, "急诊科", "内科 ", "內科"]
    costs = [5000.0, 0.0, -0.0, 5000.000001, -1e-300, 1.7976931348623157e308,
             -1.7976931348623157e308, float("inf"), float("-inf"), float("nan"), None, 4999.99]
    return [{"visit_date": dates[i % len(dates)], "department": depts[i % len(depts)],
             "cost": costs[i % len(costs)]} for i in range(36)]


#: date32 values Python's ``datetime.date`` cannot hold, as days since 1970-01-01: legal in
#: Arrow, Parquet and DuckDB: years 10000, 0 and 275 760; years ±5.4 million (beyond
#: DuckDB's TIMESTAMP range); DuckDB's last finite dates; its 'infinity' and '-infinity'.
BEYOND_PYTHON_DATES = [2_932_897, -719_163 - 1, 100_000_000, 2_000_000_000, -2_000_000_000,
                       2**31 - 2, -(2**31 - 2), 2**31 - 1, -(2**31 - 1)]


def _date_array(values: list[Any]) -> pa.Array:
    days = [None if v is None else v if isinstance(v, int) else (v - dt.date(1970, 1, 1)).days
            for v in values]
    return pa.array(days, pa.int32()).cast(pa.date32())


def add_person(residents: pa.Table, visits: pa.Table, variant: str) -> tuple[pa.Table, pa.Table]:
    """``residents`` and ``clinic_visits`` with the extra person's rows appended."""
    res_row = pa.Table.from_pylist([_residents_row(variant)], schema=residents.schema)
    rows = _visit_rows(variant)
    columns = {"person_id": pa.array([EXTRA_ID] * len(rows), pa.int64()),
               "visit_date": _date_array([r["visit_date"] for r in rows]),
               "department": pa.array([r["department"] for r in rows], pa.string()),
               "cost": pa.array([r["cost"] for r in rows], pa.float64())}
    vis_row = pa.table(columns).select(visits.schema.names).cast(visits.schema)
    return pa.concat_tables([residents, res_row]), pa.concat_tables([visits, vis_row])


# -- workspaces -----------------------------------------------------------------------
NARROW_SCOPE = {  # tests/test_guard_support.py SCENARIOS["narrow"], as an approval scope
    "datasets": ["residents"],
    "columns": {"residents": ["district", "age", "income"]},
    "aggregates": ["count", "mean"],
    "group_by": {"residents": ["district"]},
    "bounds": {"residents.income": [0.0, 200000.0]},
}
DEFAULT_SCOPE = {"datasets": ["residents", "clinic_visits"]}


@dataclass
class Env:
    """One workspace of a neighbouring pair."""

    name: str
    sb: Sandbox
    researcher: User
    approvals: dict[str, int] = field(default_factory=dict)


def demo_tables(rows: int) -> tuple[pa.Table, pa.Table]:
    """The demo's tables, byte-identical to what ``sandbox demo --rows`` registers."""
    with tempfile.TemporaryDirectory() as tmp:
        res, vis = Path(tmp) / "r.parquet", Path(tmp) / "v.parquet"
        write_demo_files(rows, res, vis)
        return pq.read_table(res), pq.read_table(vis)


def build_env(template: Path, root: Path, name: str, rows: int,
              tables: tuple[pa.Table, pa.Table]) -> Env:
    """A copy of the demo workspace with ``tables`` registered as the new version of each
    dataset (published), generous caps, no automatic suspension, and two approvals:
    ``default`` (both datasets) and ``narrow`` (the guard fixtures' narrow scenario)."""
    shutil.copytree(template, root)
    sb, _creds = setup_demo(root, rows=rows, url="http://127.0.0.1:0", say=lambda _m: None)
    admin = SandboxAdmin(sb)
    conn = sb.conn()
    owner, researcher = find_user(conn, "owner"), find_user(conn, "researcher")
    assert owner is not None and researcher is not None
    for dataset, table in zip(("residents", "clinic_visits"), tables, strict=True):
        admin.add_dataset(dataset, table, policy_text(dataset),
                          policy_path=f"sandbox/demo/policies/{dataset}.toml", actor=owner)
        # issue 14: a version whose scan has findings is acknowledged explicitly and co-signed
        admin.publish(owner, dataset, "neighbouring-dataset tests", regulator=find_user(conn, "regulator"))
        dataset_caps.set_cap(sb, owner, dataset, {"epsilon_total": 1000.0, "delta_total": 0.01,
                                                  "reason": "neighbouring-dataset tests"})
    with transaction(conn):
        WORKFLOW_SETTINGS.set(conn, "auto_suspend_refusals", 0)
    env = Env(name, sb, researcher)
    for label, scope in (("default", DEFAULT_SCOPE), ("narrow", NARROW_SCOPE)):
        app_id = admin.apply(researcher, {"datasets": scope["datasets"], "scenario": f"neighbours {label}",
                                          "purpose": "neighbouring-dataset differential tests",
                                          "commitment_accepted": True})
        env.approvals[label] = admin.approve(owner, app_id, scope, epsilon_total=900.0,
                                             delta_total=1e-3, epsilon_per_query=1.0)
    return env


def share_bounding_seeds(source: Env, target: Env) -> None:
    """Give ``target``'s latest versions the bounding seeds of ``source``'s, so every person
    of D keeps the same rows in D′ (the seeds are random per registered version)."""
    seeds = dict(source.sb.conn().execute(
        "SELECT d.name, v.bounding_seed FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
        "WHERE v.id IN (SELECT MAX(id) FROM dataset_versions GROUP BY dataset_id)").fetchall())
    conn = target.sb.conn()
    with transaction(conn):
        for name, seed in seeds.items():
            conn.execute(
                "UPDATE dataset_versions SET bounding_seed = ? WHERE id = (SELECT MAX(v.id) FROM "
                "dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.name = ?)", (seed, name))


# -- outcomes -------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """What may not depend on the data (the released figures are left out)."""

    status: str  # released | refused | failed | error
    code: str | None
    epsilon: float
    delta: float
    actions: tuple[str, ...]
    columns: tuple[str, ...] = ()
    cached: bool = False

    def short(self) -> str:
        return (f"{self.status}/{self.code} ε={self.epsilon:g} δ={self.delta:g} "
                f"log={list(self.actions)} cols={list(self.columns)}")


def _last_seq(conn) -> int:
    return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_entries").fetchone()[0]


def _charged(conn, approval_id: int) -> tuple[float, float, int]:
    row = conn.execute("SELECT COALESCE(SUM(epsilon), 0), COALESCE(SUM(delta), 0), COUNT(*) "
                       "FROM ledger WHERE approval_id = ?", (approval_id,)).fetchone()
    return float(row[0]), float(row[1]), int(row[2])


def outcome(env: Env, sql: str, scenario: str = "default", epsilon: float = EPSILON) -> Outcome:
    """Run one request on ``env`` and reduce it to its data-independent :class:`Outcome`."""
    sb = env.sb
    conn = sb.conn()
    approval_id = env.approvals[scenario]
    seq0, (eps0, delta0, _n0) = _last_seq(conn), _charged(conn, approval_id)
    columns: tuple[str, ...] = ()
    cached = False
    try:
        response = sb.run_query(env.researcher, QueryRequest(approval_id, sql, epsilon))
        status, code = "released", None
        columns, cached = tuple(response["columns"]), bool(response.get("cached"))
        json.dumps(response, allow_nan=False)  # what the API would serialise
    except QueryRefused as err:
        status, code = "refused", err.code
    except QueryFailed as err:
        status, code = "failed", err.code
    except SandboxError as err:
        status, code = "refused", err.code
    except Exception as err:  # noqa: BLE001 - any other exception is itself an outcome
        status, code = "error", type(err).__name__
    eps1, delta1, _n1 = _charged(conn, approval_id)
    actions = tuple(r[0] for r in conn.execute(
        "SELECT json_extract(entry, '$.action') FROM audit_entries WHERE seq > ? ORDER BY seq", (seq0,)))
    return Outcome(status, code, round(eps1 - eps0, 12), round(delta1 - delta0, 18), actions,
                   columns, cached)


# -- a pair of neighbouring workspaces, shared by the differential and red-team tests --------------
@dataclass
class Pair:
    """D and its neighbours D′ (D plus one person, one workspace per variant)."""

    d: Env
    neighbours: list[Env]
    tables: tuple[pa.Table, pa.Table] = ()  # type: ignore[assignment]  # D's residents and visits

    @property
    def extreme(self) -> Env:
        return self.neighbours[0]


def build_pair(template: Path, root: Path, variants: tuple[str, ...], rows: int,
               shape: Any = None) -> Pair:
    """D, and one D′ per variant with D's bounding seeds; ``shape`` (table → table), if
    given, is applied to each D′ table (e.g. to cut text to a length limit)."""
    residents, visits = demo_tables(rows)
    d = build_env(template, root / "D", "D", rows, (residents, visits))
    neighbours = []
    for variant in variants:
        tables = add_person(residents, visits, variant)
        if shape is not None:
            tables = (shape(tables[0]), shape(tables[1]))
        env = build_env(template, root / variant, f"D′[{variant}]", rows, tables)
        share_bounding_seeds(d, env)
        neighbours.append(env)
    return Pair(d, neighbours, (residents, visits))


def close_pair(pair: Pair) -> None:
    for env in (pair.d, *pair.neighbours):
        env.sb.close()


def assert_same(pair: Pair, sql: str, *, allow_failed: bool = False) -> Outcome:
    """Identical outcome class, charge and audit actions on D and every D′; no stray exception;
    unless ``allow_failed``, no accepted query is charged and then fails."""
    on_d = outcome(pair.d, sql)
    others = [(env.name, outcome(env, sql)) for env in pair.neighbours]
    diffs = [f"{name}: {o.short()}" for name, o in others if o != on_d]
    assert not diffs, f"outcome differs for {sql!r}\n  D: {on_d.short()}\n  " + "\n  ".join(diffs)
    assert on_d.status != "error", f"{sql!r}: an exception escaped: {on_d.short()}"
    if not allow_failed:
        assert on_d.status != "failed", f"{sql!r}: charged and failed on every dataset: {on_d.short()}"
    if on_d.status == "refused":  # besides it, the after-query alert pass's entries (issue 19),
        # the same on D and every D′ (compared above): alerts depend on requests, not data
        own = tuple(a for a in on_d.actions if a.startswith("query."))
        assert on_d.epsilon == 0 and own == ("query.refused",), on_d.short()
    return on_d
