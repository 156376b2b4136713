"""Helpers shared by the guard tests (no tests here): the demo catalog and scenarios, the
fixture-file reader, and a DuckDB runner for engine queries over small Arrow tables.

The catalog is built from the demo policies the product ships
(``sandbox/demo/policies/*.toml``) plus ``tests/fixtures/guard/tax_records.toml``, a
dataset that exists but is outside the test scenario.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from query_guard import Catalog, Scenario
from query_guard.catalog import table_from_policy

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "guard"
POLICIES = ROOT / "sandbox" / "demo" / "policies"
SEED = "test-seed-v1"


def load_catalog() -> Catalog:
    tables = {}
    for path in (
        POLICIES / "residents.toml",
        POLICIES / "clinic_visits.toml",
        FIXTURES / "tax_records.toml",
    ):
        with path.open("rb") as fh:
            info = table_from_policy(tomllib.load(fh), bounding_seed=SEED, version="v1")
        tables[info.name] = info
    return Catalog(tables)


CATALOG = load_catalog()

SCENARIOS: dict[str, Scenario] = {
    # both demo datasets, every non-identifier column, every aggregate
    "default": Scenario(datasets=frozenset({"residents", "clinic_visits"})),
    # a narrow approval: residents only, three columns, counts and means, by district
    "narrow": Scenario(
        datasets=frozenset({"residents"}),
        columns={"residents": frozenset({"district", "age", "income"})},
        aggregates=frozenset({"count", "mean"}),
        group_by={"residents": frozenset({"district"})},
        bounds={("residents", "income"): (0.0, 200000.0)},
    ),
}


@dataclass(frozen=True)
class Case:
    """One SQL case of a fixture file: header ``-- accept: k=v …`` or ``-- refuse: code``."""

    file: str
    line: int
    outcome: str  # "accept" | "refuse"
    expect: dict[str, str]
    sql: str
    attack: bool = False

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}"


_HEADER = re.compile(r"^-- (accept|refuse):\s*(.*)$")


def read_cases(path: Path) -> list[Case]:
    """Cases start at a header line; the SQL is everything up to the next header."""
    cases: list[Case] = []
    current: tuple[int, str, str] | None = None
    body: list[str] = []

    def close() -> None:
        if current is None:
            return
        line, outcome, rest = current
        tokens = rest.split()
        expect: dict[str, str] = {}
        attack = False
        if outcome == "refuse" and tokens and "=" not in tokens[0]:
            expect["code"] = tokens.pop(0)
        for token in tokens:
            if token == "attack":
                attack = True
            elif "=" in token:
                key, value = token.split("=", 1)
                expect[key] = value
        sql = "\n".join(body).strip("\n")
        cases.append(Case(path.name, line, outcome, expect, sql, attack))

    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _HEADER.match(text)
        if match:
            close()
            current = (number, match.group(1), match.group(2))
            body = []
        elif current is not None:
            body.append(text)
    close()
    return cases


def fixture_files() -> list[Path]:
    return sorted(FIXTURES.glob("*.sql"))


def all_cases() -> list[Case]:
    return [case for path in fixture_files() for case in read_cases(path)]


# -- engine ---------------------------------------------------------------------------


def with_rowid(table: pa.Table) -> pa.Table:
    return table.append_column("__rowid", pa.array(range(table.num_rows), type=pa.int64()))


_CONNECTIONS: dict[int, tuple[dict, duckdb.DuckDBPyConnection]] = {}


def run_engine(sql: str, tables: dict[str, pa.Table]) -> dict[str, list]:
    """Run an engine query as the sandbox engine does: tables registered by name
    (one connection per table set, reused: tests run many small queries)."""
    key = id(tables)
    if key not in _CONNECTIONS or _CONNECTIONS[key][0] is not tables:
        con = duckdb.connect(":memory:", config={"enable_external_access": False})
        for name, table in tables.items():
            con.register(name, with_rowid(table))
        _CONNECTIONS[key] = (tables, con)
    return _CONNECTIONS[key][1].sql(sql).to_arrow_table().to_pydict()


# -- checking one case ----------------------------------------------------------------


def cases(rule: str) -> list[Case]:
    """The cases of ``<rule>.sql`` and ``<rule>__invalid.sql``."""
    found = []
    for name in (f"{rule}.sql", f"{rule}__invalid.sql"):
        path = FIXTURES / name
        if path.exists():
            found.extend(read_cases(path))
    return found


def check(case: Case) -> None:
    """Plan the case's SQL and compare with its header; raise AssertionError if not."""
    import pytest

    from query_guard import GuardError, plan

    scenario = SCENARIOS[case.expect.get("scenario", "default")]
    if case.outcome == "refuse":
        with pytest.raises(GuardError) as info:
            plan(case.sql, scenario, CATALOG)
        err = info.value
        assert err.code == case.expect["code"], f"{case.id}: {err.code}: {err.message}"
        if "at" in case.expect:
            line, column = (int(x) for x in case.expect["at"].split(":"))
            assert (err.line, err.column) == (line, column), f"{case.id}: {err.message}"
        return
    p = plan(case.sql, scenario, CATALOG)
    summary = summarize(p)
    for key, value in case.expect.items():
        if key == "scenario":
            continue
        assert summary.get(key) == value, f"{case.id}: {key}={summary.get(key)} != {value}"


def summarize(p) -> dict[str, str]:
    """The plan facts fixture headers can state (all as text)."""
    first = p.measurements[0] if p.measurements else None

    def num(v: float | None) -> str:
        return "" if v is None else (f"{v:g}")

    return {
        "kinds": ",".join(m.kind for m in p.measurements),
        "groups": str(len(p.group_keys)),
        "public": "yes" if all(k.public_domain is not None for k in p.group_keys) else "no",
        "bounded": "yes" if "__kept" in p.engine_sql() else "no",
        "l0": str(p.max_partitions),
        "linf": str(p.max_rows_per_partition),
        "outputs": str(sum(1 for o in p.outputs if not o.hidden)),
        "lower": num(first.lower) if first else "",
        "upper": num(first.upper) if first else "",
        "fixed_point": str(first.fixed_point) if first else "",
    }
