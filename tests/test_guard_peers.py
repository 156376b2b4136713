"""SmartNoise SQL's own validator test cases, run through our guard as peer cases.

Source: /work/shared/peers/smartnoise-data (``smartnoise_queries.json`` with the metadata
YAML files it names, from opendp/smartnoise-sdk, see its SOURCE_COMMIT). Each case says
whether SmartNoise's validator accepts it. We do not aim to agree everywhere: our design
accepts things SmartNoise refuses on purpose (aggregates over expressions with derived
bounds, HAVING on aggregates not selected, subqueries that only filter) and refuses things
it accepts (``TOP``, a T-SQL form the DuckDB dialect does not read; ``RAND()``;
``COUNT(unit)``). The test pins the agreement figures and the list of deliberate
divergences, so any change in behaviour is visible.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from query_guard import Catalog, ColumnInfo, GuardError, Scenario, TableInfo, plan

PEERS = Path("/work/shared/peers/smartnoise-data")
CASES = PEERS / "smartnoise_queries.json"

TYPES = {"int": "int", "float": "float", "string": "text", "boolean": "bool", "datetime": "date"}

#: Deliberate divergences, by SQL, with the reason (see docs/guard.md).
DIVERGENT_ACCEPTS = {  # SmartNoise accepts, we refuse
    "SELECT TOP 5 educ, AVG(income) FROM PUMS.PUMS GROUP BY educ": "TOP is T-SQL; researchers write LIMIT (sql_syntax)",
    "SELECT PI(), RAND(), POWER(AVG(age), 2) FROM PUMS.PUMS": "RAND() is not on the allow-list: a release must be reproducible from its plan",
    "SELECT COUNT(DeviceID) AS Devices FROM Telemetry.Crashes": "COUNT(unit): the unit is usable only as COUNT(DISTINCT unit)",
    "SELECT SUM(Crashes) AS Crashes, COUNT(DeviceID) AS Devices FROM Telemetry.Crashes": "COUNT(unit): the unit is usable only as COUNT(DISTINCT unit)",
    "SELECT sex as educ, educ as sex, COUNT(*) AS n FROM PUMS.PUMS GROUP BY sex, educ HAVING sex > 2": "educ is text: DuckDB would convert each released key to a number (implicit_cast, issue 12)",
}
DIVERGENT_REFUSALS = {  # SmartNoise refuses, we accept
    "SELECT SUM(Age + Income) FROM PUMS.PUMS": "identifiers are case-insensitive and bounds of Age + Income are derived",
    "SELECT SUM(CASE WHEN age > 90 THEN 1 ELSE 0 END) AS age FROM PUMS.PUMS": "bounds of a CASE with literal results are derived ([0, 1])",
    "SELECT SUM(age + 1) * 1 AS age FROM PUMS.PUMS": "bounds of age + 1 are derived ([1, 101])",
    "SELECT educ, COUNT(DISTINCT pid) AS n FROM PUMS.PUMS GROUP BY educ HAVING COUNT(*) > 50": "a HAVING aggregate not selected is measured as a hidden output",
}


def parse_yaml(text: str) -> dict:
    """The indentation-only YAML subset of SmartNoise metadata files (no PyYAML here)."""
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        key = key.strip().strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.strip():
            parent[key] = _scalar(value.strip())
        else:
            parent[key] = {}
            stack.append((indent, parent[key]))
    return root


def _scalar(text: str) -> object:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def peer_catalog(metadata: str, drop_income_lower: bool = False) -> tuple[Catalog, Scenario]:
    meta = parse_yaml((PEERS / metadata).read_text(encoding="utf-8"))
    tables = {}
    for _db, schemas in meta.items():
        for schema, tabs in schemas.items():
            for table, spec in tabs.items():
                name = f"{schema}.{table}".lower()
                unit = "__row"
                columns = {}
                for col, cspec in spec.items():
                    if not isinstance(cspec, dict):
                        continue
                    if cspec.get("private_id"):
                        unit = col.lower()
                    lower = cspec.get("lower")
                    if drop_income_lower and col == "income":
                        lower = None
                    columns[col.lower()] = ColumnInfo(
                        name=col.lower(),
                        type=TYPES.get(cspec.get("type"), "text"),
                        lower=None if lower is None else float(lower),
                        upper=None if cspec.get("upper") is None else float(cspec["upper"]),
                    )
                ids = int(spec.get("max_ids", 1))
                tables[name] = TableInfo(
                    name=name,
                    privacy_unit=unit,
                    columns=columns,
                    max_partitions=ids,
                    max_rows_per_partition=ids,
                    one_row_per_unit=unit == "__row",
                    bounding_seed="peer",
                )
    return Catalog(tables), Scenario(datasets=frozenset(tables))


def outcome(case: dict) -> tuple[str, str]:
    catalog, scenario = peer_catalog(
        case["metadata"], drop_income_lower="income.lower removed" in case["note"]
    )
    try:
        plan(case["sql"], scenario, catalog)
    except GuardError as err:
        assert err.code != "internal_error", case["sql"]
        return "reject", err.code
    return "accept", ""


def load_cases() -> list[dict]:
    return json.loads(CASES.read_text(encoding="utf-8"))


pytestmark = pytest.mark.skipif(not CASES.exists(), reason="peer cases not present")


def test_smartnoise_peer_figures():
    cases = load_cases()
    accepted = [c for c in cases if c["expect"] == "accept"]
    refused = [c for c in cases if c["expect"] == "reject"]
    ours = {c["sql"]: outcome(c) for c in cases}
    agree_accept = [c["sql"] for c in accepted if ours[c["sql"]][0] == "accept"]
    agree_refuse = [c["sql"] for c in refused if ours[c["sql"]][0] == "reject"]
    missed = {c["sql"] for c in accepted} - set(agree_accept)
    extra = {c["sql"] for c in refused} - set(agree_refuse)
    print(
        f"\nSmartNoise peers: accepted {len(agree_accept)}/{len(accepted)},"
        f" refused {len(agree_refuse)}/{len(refused)}"
    )
    assert missed == set(DIVERGENT_ACCEPTS), sorted(missed)
    assert extra == set(DIVERGENT_REFUSALS), sorted(extra)
