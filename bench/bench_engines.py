"""DuckDB vs Spark (local mode) on the same guard plans and the same Parquet files.

    python bench/bench_engines.py --rows 1000000 --runs 5
    python bench/bench_engines.py --rows 1000000 10000000 --runs 3 --out bench/results/engines.json

For each size the demo generator writes residents (one row per person) and clinic visits
(several rows per person, about 3× as many rows), then each engine runs in its own
process: DuckDB over Arrow tables read from the files (as the sandbox's engine does),
Spark local[2] over the Parquet files (as a Spark dataset). Both run the guard's
self-contained engine query (bounding pass included, no materialisation, so the two do
the same work), and the exact result only: noise is the same OpenDP step on either.

Reported per query: median latency of ``--runs`` runs after one warm-up; per engine: peak
resident memory (VmHWM) of the Python process and, for Spark, of its JVM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = [
    ("count", "SELECT COUNT(*) FROM residents"),
    ("avg income by district", "SELECT district, AVG(income) FROM residents GROUP BY district"),
    ("median age", "SELECT MEDIAN(age) FROM residents"),
    ("visits: count by dept (bounded)", "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"),
    ("visits: avg cost by dept (bounded)", "SELECT department, AVG(cost) FROM clinic_visits GROUP BY department"),
]


def plans():
    from query_guard import Catalog, Scenario, plan
    from query_guard.catalog import table_from_policy

    tables = {}
    for name in ("residents", "clinic_visits"):
        with (ROOT / "sandbox" / "demo" / "policies" / f"{name}.toml").open("rb") as fh:
            info = table_from_policy(tomllib.load(fh), bounding_seed="bench-seed", version="v1")
        tables[info.name] = info
    scenario = Scenario(datasets=frozenset(tables))
    only = os.environ.get("BENCH_QUERIES", "")
    chosen = [(label, sql) for label, sql in QUERIES if not only or label in only.split(",")]
    return [(label, plan(sql, scenario, Catalog(tables))) for label, sql in chosen]


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(") ")[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run_engine(engine: str, folder: Path, runs: int) -> dict:
    """One engine in this process: median ms per query and peak memory."""
    result: dict = {"engine": engine, "queries": {}}
    if engine == "duckdb":
        import pyarrow.parquet as pq

        from sandbox.engine.embedded import Engine, EngineLimits, with_rowid

        eng = Engine(EngineLimits(memory_limit="16GB", threads=2, timeout_seconds=3600))
        tables = {n: with_rowid(pq.read_table(folder / f"{n}.parquet")) for n in ("residents", "clinic_visits")}
        for label, p in plans():
            sql = p.engine_sql("duckdb")
            result["queries"][label] = median_ms(lambda sql=sql: eng.execute(sql, tables), runs)
        result["peak_mib"] = {"python": vm_hwm_mib(os.getpid())}
        return result
    from sandbox.engine.spark import SparkEngine, SparkSettings
    from sandbox.engine.spark_sql import spark_sql

    eng = SparkEngine(SparkSettings(master="local[2]", timeout_seconds=3600,
                                    conf={"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": "4"}))
    for n in ("residents", "clinic_visits"):
        eng.register(n, f"parquet:{folder / n}.parquet")
    for label, p in plans():
        sql = spark_sql(p.engine_query, frozenset({"visit_date"}))
        result["queries"][label] = median_ms(lambda sql=sql: eng.execute(sql), runs)
    jvm = max((vm_hwm_mib(c) for c in _descendants(os.getpid())), default=0.0)
    result["peak_mib"] = {"python": vm_hwm_mib(os.getpid()), "jvm": jvm}
    eng.stop()
    return result


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for c in children(todo.pop()):
            found.append(c)
            todo.append(c)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--engines", nargs="+", default=["duckdb", "spark"])
    ap.add_argument("--queries", default="", help="comma-separated query labels (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "engines.json")
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "FOLDER", "RUNS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        engine, folder, runs = args.child
        print(json.dumps(run_engine(engine, Path(folder), int(runs))))
        return
    from sandbox.demo.data import write_demo_files

    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "runs": args.runs,
              "sizes": []}
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            t = time.perf_counter()
            _, visits = write_demo_files(rows, folder / "residents.parquet", folder / "clinic_visits.parquet")
            size = {"persons": rows, "visit_rows": visits, "generate_s": round(time.perf_counter() - t, 1),
                    "engines": {}}
            for engine in args.engines:
                out = subprocess.run([sys.executable, __file__, "--child", engine, str(folder), str(args.runs)],
                                     capture_output=True, text=True, check=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT), "BENCH_QUERIES": args.queries})
                size["engines"][engine] = json.loads(out.stdout.strip().splitlines()[-1])
            report["sizes"].append(size)
        print(f"\n{rows:,} persons, {visits:,} visit rows (median ms of {args.runs} runs)")
        print(f"{'query':40} " + " ".join(f"{e:>10}" for e in args.engines))
        for label in size["engines"][args.engines[0]]["queries"]:
            print(f"{label:40} " + " ".join(f"{size['engines'][e]['queries'][label]:10.0f}" for e in args.engines))
        for e in args.engines:
            print(f"peak MiB {e}: {size['engines'][e]['peak_mib']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
