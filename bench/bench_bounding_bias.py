"""Contribution bounding's bias, per group: truth, bounded truth, releases, coverage.

    git worktree add /tmp/bias-before a6361d6      # the commit before per-person bounding
    python bench/bench_bounding_bias.py --code /tmp/bias-before --out bench/results/bounding-bias-before.json
    python bench/bench_bounding_bias.py --out bench/results/bounding-bias-after.json

For each department of the demo's clinic visits: the true count and number of distinct
patients; the *bounded truth* (the engine's exact result after each person keeps at most
L0 departments and L∞ visits per department); the mean of 200 noisy releases of the bounded
truth; and how often the 95 % interval held the bounded truth and the truth. The interval
covers the noise only, so its coverage of the truth shows the bias bounding adds. Noise
is drawn by ``privacy.release`` on the engine's exact result (the service's own step), so
the release cache plays no part. ``--code DIR`` imports the sandbox from another checkout.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

import duckdb  # noqa: E402

import query_guard  # noqa: E402
from privacy import release  # noqa: E402
from sandbox.demo.setup import setup_demo  # noqa: E402
from sandbox.engine.execution import InProcessExecutor, engine_request  # noqa: E402
from sandbox.governance import datasets, workflow  # noqa: E402
from sandbox.store.users import find_user  # noqa: E402

QUERIES = {
    "visits": ("SELECT department, COUNT(*) FROM clinic_visits GROUP BY department",
               "SELECT department, COUNT(*) FROM v GROUP BY 1"),
    "patients": ("SELECT department, COUNT(DISTINCT person_id) FROM clinic_visits GROUP BY department",
                 "SELECT department, COUNT(DISTINCT person_id) FROM v GROUP BY 1"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--releases", type=int, default=200)
    ap.add_argument("--epsilon", type=float, default=1.0)
    ap.add_argument("--code", type=Path, default=ROOT, help="import sandbox from this checkout")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bounding-bias.json")
    args = ap.parse_args()

    report: dict = {"rows": args.rows, "releases": args.releases, "epsilon": args.epsilon, "code": str(CODE)}
    with tempfile.TemporaryDirectory() as tmp:
        sb, creds = setup_demo(Path(tmp) / "ws", rows=args.rows, url="-", say=lambda _m: None)
        conn = sb.conn()
        researcher = find_user(conn, "researcher")
        approval = workflow.active_approval(conn, researcher, creds["researcher"]["approval_id"], now=sb.now)
        versions = datasets.latest_versions(conn)
        catalog = datasets.build_catalog(versions)
        visits = sb.tables.get(next(v for v in versions if v.name == "clinic_visits"))
        raw = duckdb.connect()
        raw.register("v", visits)
        executor = InProcessExecutor(sb.engine, sb.tables)
        for name, (sql, truth_sql) in QUERIES.items():
            plan = query_guard.plan(sql, approval.scenario, catalog)
            exact = executor.run(engine_request(plan, versions)).to_pydict()
            key = plan.group_keys[0].column
            bounded = {k: n for k, n in zip(exact[key], exact[_count_column(exact, key)], strict=True)}
            truth = dict(raw.execute(truth_sql).fetchall())
            draws: dict[str, list[float]] = {k: [] for k in truth}
            held_bounded = dict.fromkeys(truth, 0)
            held_truth = dict.fromkeys(truth, 0)
            for _ in range(args.releases):
                rel = release(plan, exact, epsilon=args.epsilon, delta=1e-7)
                value_col = rel.columns[1]
                for r, row in enumerate(rel.rows):
                    k = row[0]
                    if k not in truth:
                        continue
                    lo, hi = rel.intervals[value_col][r]
                    draws[k].append(float(row[1]))
                    held_bounded[k] += lo <= bounded.get(k, 0) <= hi
                    held_truth[k] += lo <= truth[k] <= hi
            report[name] = [
                {"department": k, "truth": truth[k], "bounded": bounded.get(k, 0),
                 "kept": round(bounded.get(k, 0) / truth[k], 3),
                 "mean_release": round(statistics.fmean(draws[k]), 1),
                 "covers_bounded": round(held_bounded[k] / args.releases, 3),
                 "covers_truth": round(held_truth[k] / args.releases, 3)}
                for k in sorted(truth)]
    for name in QUERIES:
        print(f"\n{name}: {'department':<8}{'truth':>8}{'bounded':>9}{'kept':>7}{'mean':>10}"
              f"{'cov(bounded)':>14}{'cov(truth)':>12}")
        for r in report[name]:
            print(f"{'':<{len(name) + 2}}{r['department']:<8}{r['truth']:>8}{r['bounded']:>9}{r['kept']:>7.3f}"
                  f"{r['mean_release']:>10.1f}{r['covers_bounded']:>14.1%}{r['covers_truth']:>12.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nwrote {args.out}")


def _count_column(exact: dict, key: str) -> str:
    """The engine column holding the (bounded) count or distinct count."""
    stats = [c for c in exact if c not in (key, "__rows") and c.startswith("__m")]
    return stats[0] if stats else "__rows"


if __name__ == "__main__":
    main()
