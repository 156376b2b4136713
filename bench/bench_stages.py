"""Where the time of one release goes: the query walk, stage by stage (issue 18).

    python bench/bench_stages.py --rows 1000000 --runs 60
    python bench/bench_stages.py --rows 10000000 --runs 30 --out bench/results/stages-10m.json
    git worktree add /tmp/before 1c8863c   # the code before issue 18's changes
    python bench/bench_stages.py --code /tmp/before --out bench/results/stages-before.json

A demo workspace with ``--rows`` residents; each run is ``POST /api/v1/queries`` through
the Flask app in process (WSGI test client: routing, authentication, rate limiting, JSON
parse and encode; no socket), with a slightly different ε so that neither the release
cache nor the calibration cache answers (the worst case; a researcher who keeps an ε pays
the calibration once). Every stage is timed by wrapping the function the service calls
for it, so the figures add up to the request:

=====================  =================================================================
stage                  what is timed
=====================  =================================================================
http+auth+json         the request minus ``Sandbox.run_query`` (WSGI, token, limits, JSON)
approval               ``pipeline.check`` (approval, suspension, scope, the request's ranges)
catalog                ``datasets.latest_versions`` + ``datasets.build_catalog``
guard                  ``query_guard.plan`` (parse, rules, engine query)
calibration            ``privacy.calibrate`` (OpenDP maps, noise scales)
check_plan             ``privacy.check_plan``
empty-table check      ``pipeline.empty_table_check`` (cached per plan: ~0 after the first)
cache lookup           ``query_records.released`` (the release cache)
charge+log start       ``pipeline.charge`` (one write transaction: budget, ledger, audit)
engine                 the engine worker round trip (request, DuckDB, Arrow back)
noise                  ``privacy.release`` (OpenDP noise, intervals, constraints)
post-processing        HAVING, ORDER BY, LIMIT (``pipeline.post_process``)
audit release          the ``query.released`` append (and the UPDATE, commit)
alerts                 the after-query alert pass (``alerts.after_query``; in the API view
                       before issue 19, in ``Sandbox.run_query`` since)
other                  the rest of ``run_query`` (single flight, engine slot, response)
=====================  =================================================================

Prints a table (median and p99 per stage, per query) and writes bench/results/stages.json.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import platform
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

import privacy  # noqa: E402
import query_guard  # noqa: E402
import sandbox.service.query_service as service  # noqa: E402
from sandbox.demo.setup import setup_demo  # noqa: E402
from sandbox.governance import alerts, datasets, ledger  # noqa: E402
from sandbox.service import pipeline, query_records  # noqa: E402
from sandbox.service.operations import SandboxAdmin  # noqa: E402
from sandbox.store.users import find_user  # noqa: E402
from sandbox.store.workspace import transaction  # noqa: E402

QUERIES = [
    ("count", "SELECT COUNT(*) FROM residents"),
    ("count by district", "SELECT district, COUNT(*) FROM residents GROUP BY district"),
    ("avg income by district", "SELECT district, AVG(income) FROM residents GROUP BY district"),
    ("visits: count by dept", "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"),
]

STAGES = ["http+auth+json", "approval", "catalog", "guard", "calibration", "check_plan",
          "empty-table check", "cache lookup", "charge+log start", "engine", "noise",
          "post-processing", "audit release", "alerts", "other"]


class Timer:
    """Seconds spent per stage in the current request (wrappers add to it)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def wrap(self, stage: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[stage] += time.perf_counter() - t
        return timed


def instrument(sb, timer: Timer) -> None:
    """Wrap, in place, the functions the service calls for each stage."""
    S = service.Sandbox
    S.run_query = timer.wrap("run_query", S.run_query)
    pipeline.check = timer.wrap("approval", pipeline.check)
    pipeline.empty_table_check = timer.wrap("empty-table check", pipeline.empty_table_check)
    pipeline.charge = timer.wrap("charge+log start", pipeline.charge)
    pipeline.datasets = _Proxy(datasets, latest_versions=timer.wrap("catalog", datasets.latest_versions),
                               build_catalog=timer.wrap("catalog", datasets.build_catalog))
    pipeline.query_guard = _Proxy(query_guard, plan=timer.wrap("guard", query_guard.plan))
    pipeline.privacy = _Proxy(privacy, calibrate=timer.wrap("calibration", privacy.calibrate),
                              check_plan=timer.wrap("check_plan", privacy.check_plan))
    query_records.released = timer.wrap("cache lookup", query_records.released)
    pipeline.release = timer.wrap("noise", pipeline.release)
    pipeline.post_process = timer.wrap("post-processing", pipeline.post_process)
    alerts.after_query = timer.wrap("alerts", alerts.after_query)
    original_audit = S.audit

    def audit(self, conn, actor, action, *args, **kwargs):
        if action != "query.released":
            return original_audit(self, conn, actor, action, *args, **kwargs)
        return timer.wrap("audit release", original_audit)(self, conn, actor, action, *args, **kwargs)

    S.audit = audit
    original_slot = sb.executor.slot

    @contextlib.contextmanager
    def slot():
        with original_slot() as run:
            yield timer.wrap("engine", run)

    sb.executor.slot = slot


class _Proxy:
    """A module with some attributes replaced (the service looks them up at call time)."""

    def __init__(self, module, **replaced):
        self._module, self._replaced = module, replaced

    def __getattr__(self, name):
        return self._replaced.get(name) or getattr(self._module, name)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stages.json")
    ap.add_argument("--code", type=Path, default=ROOT, help="import sandbox from this checkout")
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
        with transaction(conn):  # lift the collusion cap: the runs spend far more than a study
            for v in datasets.latest_versions(conn):
                ledger.set_global_cap(conn, v.version_id, 1e9, 0.5, now=sb.now)
        from sandbox.web import create_app

        client = create_app(sb).test_client()
        token = creds["researcher"]["token"]
        headers = {"Authorization": f"Bearer {token}"}
        timer = Timer()
        instrument(sb, timer)

        results = []
        counter = iter(range(10**9))
        for label, sql in QUERIES:
            per_stage: dict[str, list[float]] = defaultdict(list)
            totals = []
            for i in range(args.runs + 3):
                epsilon = 0.5 - next(counter) * 1e-9
                timer.spent.clear()
                t = time.perf_counter()
                r = client.post("/api/v1/queries", json={"approval_id": approval, "sql": sql,
                                                          "epsilon": epsilon}, headers=headers)
                total = time.perf_counter() - t
                if r.status_code != 200:
                    raise SystemExit(f"{label}: {r.status_code} {r.get_json()}")
                if i < 3:
                    continue  # warm-up: first loads, plan checks, worker start
                spent = dict(timer.spent)
                run = spent.pop("run_query", 0.0)
                spent["http+auth+json"] = total - run
                spent["other"] = run - sum(v for k, v in spent.items() if k != "http+auth+json")
                for stage in STAGES:
                    per_stage[stage].append(spent.get(stage, 0.0) * 1e3)
                totals.append(total * 1e3)
            row = {"query": label, "sql": sql, "total_median_ms": round(statistics.median(totals), 2),
                   "total_p99_ms": round(percentile(totals, 0.99), 2),
                   "stages": {s: {"median_ms": round(statistics.median(v), 3),
                                  "p99_ms": round(percentile(v, 0.99), 3)} for s, v in per_stage.items()}}
            results.append(row)
            print(f"\n{label}  (total median {row['total_median_ms']} ms, p99 {row['total_p99_ms']} ms)")
            print(f"  {'stage':<20}{'median ms':>11}{'p99 ms':>10}")
            for s in STAGES:
                st = row["stages"][s]
                print(f"  {s:<20}{st['median_ms']:>11.2f}{st['p99_ms']:>10.2f}")

    report = {"rows": args.rows, "runs": args.runs, "code": str(CODE), "machine": platform.platform(),
              "python": platform.python_version(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
