"""Cost of the alert pass the API runs after every query (issue 18).

    python bench/bench_alerts.py                 # 300 releases in the history, 20 passes
    python bench/bench_alerts.py --releases 500 --passes 50

A demo workspace (5,000 residents), one approval, ``--releases`` releases of SQL that differ
in their WHERE constants (so differencing families exist, as in a real study), then
``alerts.after_query`` timed ``--passes`` times: the work ``POST /api/v1/queries`` does after
the release (budget levels, refusal bursts, differencing and averaging patterns). Prints the
cold pass (parse caches empty) and the warm median, writes bench/results/alerts.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.demo.setup import setup_demo  # noqa: E402
from sandbox.governance import alerts, ledger, where_families, workflow  # noqa: E402
from sandbox.governance.datasets import latest_versions  # noqa: E402
from sandbox.service.operations import SandboxAdmin  # noqa: E402
from sandbox.service.pipeline import QueryRequest  # noqa: E402
from sandbox.store.users import find_user  # noqa: E402
from sandbox.store.workspace import transaction  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--releases", type=int, default=300)
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "alerts.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sb, _creds = setup_demo(Path(tmp) / "ws", rows=5000, url="-", say=lambda _m: None)
        conn = sb.conn()
        researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
        admin = SandboxAdmin(sb)
        app_id = admin.apply(researcher, {"datasets": ["residents"], "scenario": "bench",
                                          "purpose": "bench", "commitment_accepted": True})
        aid = admin.approve(owner, app_id, {"datasets": ["residents"]}, epsilon_total=1000.0,
                            delta_total=1e-3, epsilon_per_query=1.0)
        with transaction(conn):
            for v in latest_versions(conn):
                ledger.set_global_cap(conn, v.version_id, 1e9, 0.5, now=sb.now)
        rng = random.Random(1)
        for _ in range(args.releases):
            sql = (f"SELECT district, COUNT(*) FROM residents WHERE age > {rng.randint(0, 90)} "
                   f"AND income > {rng.randint(0, 400_000)} GROUP BY district")
            sb.run_query(researcher, QueryRequest(aid, sql, 0.01))
        approval = workflow.get_approval(conn, aid)
        assert approval is not None
        where_families.where_variants.cache_clear()
        where_families.where_parts.cache_clear()
        t = time.perf_counter()
        alerts.after_query(sb, researcher, aid)
        cold = (time.perf_counter() - t) * 1e3
        warm = []
        for _ in range(args.passes):
            t = time.perf_counter()
            alerts.after_query(sb, researcher, aid)
            warm.append((time.perf_counter() - t) * 1e3)
    report = {"releases": args.releases, "passes": args.passes, "cold_ms": round(cold, 2),
              "warm_median_ms": round(statistics.median(warm), 2), "warm_max_ms": round(max(warm), 2)}
    print(f"alert pass after a query, {args.releases} releases in the history: cold {cold:.1f} ms, "
          f"warm median {report['warm_median_ms']} ms (max {report['warm_max_ms']} ms)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
