"""Guard benchmarks: planning time over the fixture set, and the engine cost of the rewrite.

    python bench/bench_guard.py                      # planning + engine at 1M persons
    python bench/bench_guard.py --persons 10000000   # engine at 10M persons (~100M rows)
    python bench/bench_guard.py --skip-engine        # planning only

1. Planning: every SQL case in tests/fixtures/guard/*.sql is planned ``--plan-runs`` times
   (after one warm-up); the table shows the median per-case time for accepted, refused and
   all cases (target: ≤ 5 ms for a typical query).
2. Engine: a synthetic ``clinic_visits``-like Arrow table (0–20 visits per person, 8
   departments, two years of dates, costs with NULLs) with the ``__rowid`` column the
   sandbox engine adds. Each query runs unrewritten (the researcher's SQL as is) and
   rewritten (``plan.engine_sql()``: clamping, fixed point, contribution bounding), median
   of ``--runs``. The same is repeated on a per-dataset-version materialisation (the
   table loaded into DuckDB sorted by the privacy unit); its one-time cost is reported
   separately.

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
POLICIES = ROOT / "sandbox" / "demo_policies"
RESULTS = ROOT / "bench" / "results" / "guard.json"

ENGINE_QUERIES = [
    ("count", "SELECT COUNT(*) FROM clinic_visits"),
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


def make_visits(persons: int, seed: int = 7):
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    per_person = rng.integers(0, 21, size=persons)
    person_id = np.repeat(np.arange(1, persons + 1, dtype=np.int64), per_person)
    n = len(person_id)
    departments = np.array(["内科", "外科", "儿科", "妇产科", "眼科", "口腔科", "急诊科", "中医科"])
    dept = departments[rng.integers(0, len(departments), size=n)]
    days = rng.integers(19358, 19358 + 731, size=n).astype("int32")  # 2023-01-01 + 0..730
    cost = rng.gamma(2.0, 300.0, size=n)
    mask = rng.random(n) < 0.02
    table = pa.table(
        {
            "person_id": person_id,
            "visit_date": pa.array(days, type=pa.int32()).cast(pa.date32()),
            "department": pa.array(dept),
            "cost": pa.array(cost, mask=mask),
        }
    )
    return table.append_column("__rowid", pa.array(np.arange(n, dtype=np.int64)))


def timed(con, sql: str, runs: int) -> float:
    con.execute(sql).fetchall()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_engine(persons: int, runs: int, threads: int) -> dict:
    import duckdb

    cat, scenario = catalog()
    start = time.perf_counter()
    table = make_visits(persons)
    generated = time.perf_counter() - start
    print(
        f"\nEngine: clinic_visits with {persons:,} persons, {table.num_rows:,} rows"
        f" (generated in {generated:.1f} s), DuckDB {duckdb.__version__}, {threads} threads,"
        f" median of {runs} runs"
    )
    con = duckdb.connect(config={"threads": threads})
    con.register("clinic_visits", table)
    results: dict = {
        "persons": persons,
        "rows": table.num_rows,
        "threads": threads,
        "arrow": [],
        "materialised": [],
    }

    def compare(label: str, bucket: list) -> None:
        print(f"\n{label}")
        print(f"{'query':<28}{'raw s':>9}{'rewritten s':>13}{'ratio':>8}")
        for name, sql in ENGINE_QUERIES:
            p = plan(sql, scenario, cat)
            raw = timed(con, sql, runs)
            rewritten = timed(con, p.engine_sql("duckdb"), runs)
            bucket.append(
                {
                    "query": name,
                    "sql": sql,
                    "raw_s": raw,
                    "rewritten_s": rewritten,
                    "ratio": rewritten / raw,
                }
            )
            print(f"{name:<28}{raw:>9.3f}{rewritten:>13.3f}{rewritten / raw:>8.2f}")

    compare("Arrow table registered per query (as sandbox.engine does today)", results["arrow"])
    results["kept_sets"] = bench_kept_sets(con, cat, scenario, runs)
    start = time.perf_counter()
    con.execute("CREATE TABLE cv_sorted AS SELECT * FROM clinic_visits ORDER BY person_id, __rowid")
    con.unregister("clinic_visits")
    con.execute("CREATE VIEW clinic_visits AS SELECT * FROM cv_sorted")
    results["materialise_s"] = time.perf_counter() - start
    print(f"\nOne-time load into DuckDB, sorted by the unit: {results['materialise_s']:.2f} s")
    compare("DuckDB table sorted by the privacy unit (same rewritten SQL)", results["materialised"])
    for key in ("arrow", "materialised"):
        results[f"{key}_median_ratio"] = statistics.median(r["ratio"] for r in results[key])
    return results


def bench_kept_sets(con, cat: Catalog, scenario: Scenario, runs: int) -> list[dict]:
    """Prototype of a per-(dataset version, grouping) bounded materialisation.

    The set of rows the bounding pass keeps depends only on the dataset version, the seed
    and the grouping (when filters are applied after bounding), so it can be computed
    once and reused: each query is then the unrewritten aggregate over kept rows. The
    kept set is taken from the plan's own ``__kept`` CTE; the one-time cost is reported.
    """
    from sqlglot import exp

    groupings = [
        (
            "department",
            "SELECT department, COUNT(*), AVG(cost) FROM clinic_visits GROUP BY department",
        ),
        (
            "month",
            "SELECT month(visit_date) AS m, COUNT(*), SUM(cost) FROM clinic_visits GROUP BY m",
        ),
    ]
    out = []
    print("\nPrototype: bounded materialisation per (dataset version, grouping)")
    print(f"{'grouping':<14}{'one-time s':>12}{'raw s':>9}{'on kept s':>11}{'ratio':>8}")
    for name, sql in groupings:
        p = plan(sql, scenario, cat)
        kept_query = p.engine_query.copy()
        kept_query.set("expressions", [exp.column("__rowid")])
        kept_query.set("group", None)
        kept_query.set("where", None)
        table = f"kept_{name}"
        start = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {kept_query.sql('duckdb')}")
        con.execute(
            f"CREATE OR REPLACE TABLE cv_{name} AS SELECT c.*, k.__rowid IS NOT NULL"
            f" AS __kept FROM clinic_visits c LEFT JOIN {table} k USING (__rowid)"
        )
        one_time = time.perf_counter() - start
        raw = timed(con, sql, runs)
        on_kept = timed(
            con,
            sql.replace("FROM clinic_visits", f"FROM cv_{name} WHERE __kept", 1).replace(
                "WHERE __kept GROUP", "WHERE __kept GROUP"
            ),
            runs,
        )
        out.append(
            {
                "grouping": name,
                "one_time_s": one_time,
                "raw_s": raw,
                "kept_s": on_kept,
                "ratio": on_kept / raw,
            }
        )
        print(f"{name:<14}{one_time:>12.2f}{raw:>9.3f}{on_kept:>11.3f}{on_kept / raw:>8.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--plan-runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-engine", action="store_true")
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
        out["engine"] = bench_engine(args.persons, args.runs, args.threads)
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
