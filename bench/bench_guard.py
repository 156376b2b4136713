"""Guard benchmarks: planning time over the fixture set, and the engine cost of the rewrite.

    python bench/bench_guard.py                      # planning + engine at 1M persons
    python bench/bench_guard.py --persons 10000000   # engine at 10M persons (~18M rows)
    python bench/bench_guard.py --data uniform       # stress: 0–20 visits per person
    python bench/bench_guard.py --skip-engine        # planning only

1. Planning: every SQL case in tests/fixtures/guard/*.sql is planned ``--plan-runs`` times
   (after one warm-up); the table shows the median per-case time for accepted, refused and
   all cases (target: ≤ 5 ms for a typical query).
2. Engine: ``clinic_visits`` from the demo's generator (several visits per person) with
   the ``__rowid`` column the sandbox engine adds, run through the product's engine and
   execution path. Per query: the unrewritten SQL ("raw"); the self-contained rewritten
   query ("inline": clamping, fixed point, the bounding pass inline); the first run
   through ``sandbox.engine.execution`` (which computes the per-version keep column when the
   grouping is new: the one-time cost); and later runs over the cached keep column
   ("materialised", median of ``--runs``). Ratio = materialised / raw (target ≤ 1.5).

Prints tables and writes bench/results/guard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from query_guard import Catalog, GuardError, Scenario, plan  # noqa: E402
from query_guard.catalog import table_from_policy  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "guard"
POLICIES = ROOT / "sandbox" / "demo" / "policies"
RESULTS = ROOT / "bench" / "results" / "guard.json"

ENGINE_QUERIES = [
    ("count", "SELECT COUNT(*) FROM clinic_visits"),
    (
        "count 2024 by dept",
        "SELECT department, COUNT(*) FROM clinic_visits WHERE visit_date >= DATE '2024-01-01'"
        " GROUP BY department",
    ),
    ("count by dept", "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"),
    ("avg cost by dept", "SELECT department, AVG(cost) FROM clinic_visits GROUP BY department"),
    (
        "sum, stddev by month",
        "SELECT month(visit_date) AS m, SUM(cost), STDDEV(cost) FROM clinic_visits GROUP BY m",
    ),
    (
        "distinct persons by dept",
        "SELECT department, COUNT(DISTINCT person_id) FROM clinic_visits GROUP BY department",
    ),
]


def catalog() -> tuple[Catalog, Scenario]:
    tables = {}
    for name in ("residents", "clinic_visits"):
        with (POLICIES / f"{name}.toml").open("rb") as fh:
            info = table_from_policy(tomllib.load(fh), bounding_seed="bench-seed", version="b1")
        tables[info.name] = info
    return Catalog(tables), Scenario(datasets=frozenset(tables))


def bench_planning(runs: int) -> dict:
    from test_guard_support import CATALOG, SCENARIOS, all_cases

    rows = []
    for case in all_cases():
        scenario = SCENARIOS[case.expect.get("scenario", "default")]
        times = []
        for i in range(runs + 1):
            start = time.perf_counter()
            try:
                plan(case.sql, scenario, CATALOG)
            except GuardError:
                pass
            if i:  # first run is the warm-up
                times.append((time.perf_counter() - start) * 1000)
        rows.append({"case": case.id, "outcome": case.outcome, "ms": statistics.median(times)})

    def summary(selected: list[dict]) -> dict:
        ms = sorted(r["ms"] for r in selected)
        return {
            "cases": len(ms),
            "median_ms": statistics.median(ms),
            "p90_ms": ms[int(0.9 * (len(ms) - 1))],
            "max_ms": ms[-1],
        }

    result = {
        "accepted": summary([r for r in rows if r["outcome"] == "accept"]),
        "refused": summary([r for r in rows if r["outcome"] == "refuse"]),
        "all": summary(rows),
        "slowest": sorted(rows, key=lambda r: -r["ms"])[:5],
    }
    print(f"\nPlanning time over {len(rows)} fixture cases (median of {runs} runs each)")
    print(f"{'cases':<10}{'n':>6}{'median ms':>12}{'p90 ms':>10}{'max ms':>10}")
    for key in ("accepted", "refused", "all"):
        s = result[key]
        print(
            f"{key:<10}{s['cases']:>6}{s['median_ms']:>12.2f}{s['p90_ms']:>10.2f}"
            f"{s['max_ms']:>10.2f}"
        )
    return result


def make_visits(persons: int, data: str, seed: int = 7):
    """``demo``: the product's own clinic_visits generator (Poisson, 1.2–4.2 visits per
    person by age, capped at 20). ``uniform``: 0–20 visits per person, uniformly — a
    stress case where about half the people exceed the bounds."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    if data == "demo":
        from sandbox.demo.data import visits_chunk

        chunks = []
        for start in range(0, persons, 1_000_000):
            n = min(1_000_000, persons - start)
            ages = rng.integers(0, 101, size=n)
            chunks.append(visits_chunk(start, n, ages, rng))
        return pa.concat_tables(chunks).combine_chunks()
    per_person = rng.integers(0, 21, size=persons)
    person_id = np.repeat(np.arange(1, persons + 1, dtype=np.int64), per_person)
    n = len(person_id)
    departments = np.array(["内科", "外科", "儿科", "妇产科", "眼科", "口腔科", "急诊科", "中医科"])
    dept = departments[rng.integers(0, len(departments), size=n)]
    days = rng.integers(19358, 19358 + 731, size=n).astype("int32")  # 2023-01-01 + 0..730
    cost = rng.gamma(2.0, 300.0, size=n)
    mask = rng.random(n) < 0.02
    return pa.table(
        {
            "person_id": person_id,
            "visit_date": pa.array(days, type=pa.int32()).cast(pa.date32()),
            "department": pa.array(dept),
            "cost": pa.array(cost, mask=mask),
        }
    )


def timed(run, runs: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class _Tables:
    """The sandbox's TableCache, for one in-memory table."""

    def __init__(self, table):
        self.table = table

    def get(self, _version):
        return self.table


def bench_engine(persons: int, runs: int, threads: int, data: str, with_inline: bool = True) -> dict:
    """Through the product's own path: sandbox.engine.embedded.Engine (locked down, Arrow tables
    registered per query) and sandbox.engine.execution (keep columns cached per version)."""
    from types import SimpleNamespace

    import duckdb

    from sandbox.engine.embedded import Engine, EngineLimits, with_rowid
    from sandbox.engine.execution import KeepColumns, engine_request, execute

    cat, scenario = catalog()
    start = time.perf_counter()
    table = with_rowid(make_visits(persons, data))
    generated = time.perf_counter() - start
    print(
        f"\nEngine: clinic_visits ({data} data) with {persons:,} persons, {table.num_rows:,} rows"
        f" (generated in {generated:.1f} s), DuckDB {duckdb.__version__}, {threads} threads,"
        f" median of {runs} runs"
    )
    engine = Engine(EngineLimits(threads=threads, timeout_seconds=600, memory_limit="16GB"))
    tables = {"clinic_visits": table}
    cache, keep = _Tables(table), KeepColumns()
    versions = [SimpleNamespace(name="clinic_visits", version_id=1)]
    rows = []
    print(
        f"{'query':<26}{'raw s':>8}{'inline s':>10}{'keep once s':>13}{'materialised s':>16}{'ratio':>7}"
    )
    for name, sql in ENGINE_QUERIES:
        p = plan(sql, scenario, cat)
        raw = timed(lambda sql=sql: engine.execute(sql, tables), runs)
        inline = (
            timed(lambda p=p: engine.execute(p.engine_sql("duckdb"), tables), max(1, runs // 3))
            if with_inline
            else float("nan")
        )
        req = engine_request(p, versions)
        start = time.perf_counter()
        execute(engine, cache, keep, req)  # computes the keep column if this grouping is new
        once = time.perf_counter() - start
        fast = timed(lambda req=req: execute(engine, cache, keep, req), runs)
        rows.append({"query": name, "sql": sql, "raw_s": raw, "inline_s": inline,
                     "first_s": once, "materialised_s": fast, "ratio": fast / raw})
        print(f"{name:<26}{raw:>8.3f}{inline:>10.3f}{once:>13.2f}{fast:>16.3f}{fast / raw:>7.2f}")
    return {
        "persons": persons,
        "rows": table.num_rows,
        "data": data,
        "threads": threads,
        "queries": rows,
        "median_ratio": statistics.median(r["ratio"] for r in rows),
        "max_ratio": max(r["ratio"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plan-runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-engine", action="store_true")
    parser.add_argument("--skip-inline", action="store_true",
                        help="skip timing the self-contained query (slow at 10M persons)")
    parser.add_argument("--data", choices=["demo", "uniform"], default="demo",
                        help="visits per person: the demo generator's, or uniform 0–20 (stress)")
    args = parser.parse_args()
    out = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg(),
        },
        "planning": bench_planning(args.plan_runs),
    }
    if not args.skip_engine:
        out["engine"] = bench_engine(
            args.persons, args.runs, args.threads, args.data, with_inline=not args.skip_inline
        )
    out["machine"]["load_average_at_end"] = os.getloadavg()
    print(
        f"load average start {out['machine']['load_average_at_start']},"
        f" end {out['machine']['load_average_at_end']} (other work on the machine inflates"
        " times)"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
