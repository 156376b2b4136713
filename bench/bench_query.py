"""Latency of a DP query through the service layer vs the same exact aggregate on raw DuckDB.

    python bench/bench_query.py --rows 1000000 --runs 15
    python bench/bench_query.py --rows 1000000 --demo-memory 10000000   # + peak RSS of the demo
    python bench/bench_query.py --rows 100000 --runs 200 --code /tmp/before --out bench/results/query-before.json

``--code DIR`` imports ``sandbox`` from another checkout (e.g. a ``git worktree`` of an
earlier commit), so the same yardstick measures before and after a change; issue 12's
"what charging first costs" is the median and p99 of both.

Prints a table of medians and ratios and writes bench/results/query.json. Both sides run
in one process, on the same Arrow table, in the same run. The service side is the whole
walk: approval check, guard, engine, OpenDP noise, budget charge, audit append with fsync.
Each run asks for a slightly different ε, so the release cache never answers (it answers a
repeat at another confidence level too, since issue 13); the calibration is redone each
run.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

from sandbox.demo.setup import setup_demo  # noqa: E402
from sandbox.service.operations import SandboxAdmin  # noqa: E402
from sandbox.service.pipeline import QueryRequest  # noqa: E402
from sandbox.store.users import find_user  # noqa: E402

QUERIES = [
    ("count", "SELECT COUNT(*) FROM residents"),
    ("count by district", "SELECT district, COUNT(*) FROM residents GROUP BY district"),
    ("avg income by district", "SELECT district, AVG(income) FROM residents GROUP BY district"),
    ("visits: count", "SELECT COUNT(*) FROM clinic_visits"),
    ("visits: count by dept", "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"),
    ("visits: avg cost by dept", "SELECT department, AVG(cost) FROM clinic_visits GROUP BY department"),
]


def timings_ms(fn, runs: int) -> tuple[float, float]:
    """Median and 99th percentile (nearest rank) of ``runs`` calls, after one warm-up."""
    fn()  # warm-up (loads and caches the dataset version)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, max(0, round(0.99 * len(times)) - 1))]


def demo_peak_memory(rows: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sandbox.cli", "demo", "--data-dir", tmp, "--rows", str(rows),
                        "--no-serve"], check=True, capture_output=True)
        elapsed = time.perf_counter() - t
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"rows": rows, "seconds": round(elapsed, 1), "peak_rss_mib": round(peak_kib / 1024)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--demo-memory", type=int, default=0, help="also measure `sandbox demo --rows N` peak RSS")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "query.json")
    ap.add_argument("--code", type=Path, default=ROOT, help="import sandbox from this checkout (default: this one)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        print(f"building a demo workspace with {args.rows:,} residents …", file=sys.stderr)
        sb, creds = setup_demo(Path(tmp) / "ws", rows=args.rows, url="-", say=lambda _m: None)
        conn = sb.conn()
        researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
        admin = SandboxAdmin(sb)
        app_id = admin.apply(researcher, {"datasets": ["residents", "clinic_visits"], "scenario": "bench",
                                          "purpose": "bench", "commitment_accepted": True})
        approval = admin.approve(owner, app_id, {"datasets": ["residents", "clinic_visits"]},
                                 epsilon_total=1e9, delta_total=1e-3, epsilon_per_query=10.0)
        from sandbox.governance import ledger
        from sandbox.governance.datasets import latest_versions
        from sandbox.store.workspace import transaction

        versions = {v.name: v for v in latest_versions(conn)}
        with transaction(conn):  # lift the collusion cap: the runs spend far more than a study
            for v in versions.values():
                ledger.set_global_cap(conn, v.version_id, 1e9, 0.5, now=sb.now)
        raw_tables = {name: sb.tables.get(v) for name, v in versions.items()}
        raw = duckdb.connect()
        for name, table in raw_tables.items():
            raw.register(name, table)

        results = []
        for label, sql in QUERIES:
            counter = iter(range(10**9))

            def via_service(sql=sql, counter=counter):
                # another ε each run: the release cache answers a repeat, and (issue 13) a
                # repeat at another confidence too, free; the calibration is redone
                epsilon = 0.5 - next(counter) * 1e-9
                sb.run_query(researcher, QueryRequest(approval, sql, epsilon, 0.95))

            def via_duckdb(sql=sql):
                raw.execute(sql).fetchall()

            service_ms, service_p99 = timings_ms(via_service, args.runs)
            duck_ms, _ = timings_ms(via_duckdb, args.runs)
            results.append({"query": label, "sql": sql, "service_ms": round(service_ms, 2),
                            "service_p99_ms": round(service_p99, 2),
                            "raw_duckdb_ms": round(duck_ms, 2), "ratio": round(service_ms / duck_ms, 2)})

    print(f"\n{'query':<28}{'service ms':>12}{'p99 ms':>9}{'raw DuckDB ms':>15}{'ratio':>8}")
    for r in results:
        print(f"{r['query']:<28}{r['service_ms']:>12.2f}{r['service_p99_ms']:>9.2f}"
              f"{r['raw_duckdb_ms']:>15.2f}{r['ratio']:>7.2f}x")
    report = {"rows": args.rows, "runs": args.runs, "code": str(CODE), "machine": platform.platform(),
              "python": platform.python_version(), "duckdb": duckdb.__version__, "results": results}
    if args.demo_memory:
        print(f"\nmeasuring `sandbox demo --rows {args.demo_memory:,}` …", file=sys.stderr)
        report["demo_memory"] = demo_peak_memory(args.demo_memory)
        print(f"sandbox demo --rows {args.demo_memory:,}: {report['demo_memory']['seconds']} s, "
              f"peak RSS {report['demo_memory']['peak_rss_mib']:,} MiB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
