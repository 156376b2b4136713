"""Peak memory of ``sandbox serve`` with its engine workers, query latency and first use (issues 16, 18).

    git worktree add /tmp/base main                      # the code before the change
    python bench/bench_memory.py --rows 1000000 --code /tmp/base --label before
    python bench/bench_memory.py --rows 1000000 --label after
    python bench/bench_memory.py --rows 10000000 --code /tmp/base --label before
    python bench/bench_memory.py --rows 10000000 --label after

A demo workspace with ``--rows`` residents is built once per row count (by ``--code``'s
demo generator the first time; cached under ``--cache``) and copied afresh for every run,
so an "after" run also migrates a workspace written by the old code. Then, as a user
drives it: ``sandbox serve --engine-workers 2`` as a subprocess, ``POST /api/v1/queries``
over HTTP (a fresh ε per request, so no release cache answers), while a sampler reads the
resident memory (``/proc/PID/statm``) of the server and every child process every 50 ms.

Reported: peak RSS of the server, of each worker and of their sum (sampled together);
the first bounded query on the version after start-up (the first-use stall of decision
0004), and the median of ``--runs`` runs of each query after that.

Prints a table and writes bench/results/memory-<label>-<rows>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PAGE = os.sysconf("SC_PAGE_SIZE")

QUERIES = [
    ("count", "SELECT COUNT(*) FROM residents"),
    ("count by district", "SELECT district, COUNT(*) FROM residents GROUP BY district"),
    ("avg income by district", "SELECT district, AVG(income) FROM residents GROUP BY district"),
    ("visits: count by dept", "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"),
]
#: bounded (several rows per person): the first one after start-up pays the keep query
FIRST_USE = "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"
#: unbounded (one row per person): the very first query, before FIRST_USE
WARM_UP = "SELECT COUNT(*) FROM residents WHERE age > 30"

PREPARE = r"""
import json, sys
from pathlib import Path
from sandbox.governance import datasets
from sandbox.governance import ledger
from sandbox.demo.setup import setup_demo
from sandbox.service.operations import SandboxAdmin
from sandbox.store.users import find_user
from sandbox.store.workspace import transaction
ws, rows = Path(sys.argv[1]), int(sys.argv[2])
sb, creds = setup_demo(ws, rows=rows, url="-", say=lambda _m: None)
conn = sb.conn()
researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
admin = SandboxAdmin(sb)
app_id = admin.apply(researcher, {"datasets": ["residents", "clinic_visits"], "scenario": "bench",
                                  "purpose": "bench", "commitment_accepted": True})
approval = admin.approve(owner, app_id, {"datasets": ["residents", "clinic_visits"]},
                         epsilon_total=1e9, delta_total=1e-3, epsilon_per_query=10.0)
with transaction(conn):
    for v in datasets.latest_versions(conn):
        ledger.set_global_cap(conn, v.version_id, 1e9, 0.5, now=sb.now)
sb.close()
(ws / "bench.json").write_text(json.dumps({"approval": approval, "token": creds["researcher"]["token"]}))
"""


def tree_rss(pid: int) -> dict[int, int]:
    """Resident bytes of ``pid`` and its descendants."""
    out: dict[int, int] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm", "rb") as f:
                out[p] = int(f.read().split()[1]) * PAGE
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError, IndexError):
            continue
    return out


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.stop, self.peak_total = pid, threading.Event(), 0
        self.peak_each: dict[int, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            rss = tree_rss(self.pid)
            self.peak_total = max(self.peak_total, sum(rss.values()))
            for p, b in rss.items():
                self.peak_each[p] = max(self.peak_each.get(p, 0), b)
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, token: str, body: dict) -> tuple[int, float]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/queries", data=json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    t = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as err:
        status = err.code
        print(err.read()[:300], file=sys.stderr)
    return status, (time.perf_counter() - t) * 1e3


def measure(args, code: Path, env: dict, ws: Path, meta: dict, phase: str) -> dict:
    """One server start on ``ws``: peak RSS, first bounded query, query medians."""
    port = free_port()
    log = open(ws / "serve.log", "w")
    t0 = time.perf_counter()
    server = subprocess.Popen([PY, "-c", "from sandbox.cli.main import main; main()", "serve", "--data-dir", str(ws),
                               "--port", str(port), "--engine-workers", "2"],
                              env=env, cwd=code, stdout=log, stderr=subprocess.STDOUT)
    sampler = Sampler(server.pid)
    sampler.start()
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"server exited: {(ws / 'serve.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        startup_s = time.perf_counter() - t0
        status = ws / "prepare-status.json"
        if (code / "sandbox" / "prepare.py").exists():  # wait for the background preparation
            while not (status.exists() and json.loads(status.read_text()).get("state") == "ready"):
                if server.poll() is not None:
                    raise SystemExit("server exited while preparing")
                time.sleep(0.5)
        prepared_s = time.perf_counter() - t0
        time.sleep(args.settle)
        # a fresh ε per request and per phase: no release cache answers (not even across restarts)
        offset = {"first start": 0.0, "restart": 0.01}[phase]
        eps = iter(0.5 - offset - i * 1e-9 for i in range(10**6))
        # the first query of all pays one-time costs that do not depend on the data (imports,
        # the guard's first plan, OpenDP's first calibration): take them out of the first use
        status, warm_ms = post(port, meta["token"], {"approval_id": meta["approval"], "sql": WARM_UP,
                                                      "epsilon": next(eps)})
        assert status == 200, status
        status, first_ms = post(port, meta["token"], {"approval_id": meta["approval"], "sql": FIRST_USE,
                                                       "epsilon": next(eps)})
        assert status == 200, status
        results = []
        for label, sql in QUERIES:
            times = []
            for i in range(args.runs + 1):
                status, ms = post(port, meta["token"], {"approval_id": meta["approval"], "sql": sql,
                                                         "epsilon": next(eps)})
                assert status == 200, (label, status)
                if i:
                    times.append(ms)
            results.append({"query": label, "median_ms": round(statistics.median(times), 1),
                            "max_ms": round(max(times), 1)})
    finally:
        sampler.stop.set()
        sampler.join()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    each = sorted(sampler.peak_each.items(), key=lambda kv: kv[0])
    report = {
        "label": args.label, "phase": phase, "rows": args.rows, "code": str(code), "machine": platform.platform(),
        "startup_s": round(startup_s, 1), "prepared_s": round(prepared_s, 1), "settle_s": args.settle,
        "peak_rss_total_mib": round(sampler.peak_total / 2**20),
        "peak_rss_each_mib": {str(p): round(b / 2**20) for p, b in each},
        "first_query_ms": round(warm_ms, 1), "first_bounded_query_ms": round(first_ms, 1), "queries": results,
    }
    print(f"\n{args.label} ({phase}) at {args.rows:,} residents ({code})")
    print(f"  start-up {startup_s:.1f} s, prepared after {prepared_s:.1f} s; peak RSS server+workers {report['peak_rss_total_mib']:,} MiB "
          f"(per process: {', '.join(f'{v:,}' for v in report['peak_rss_each_mib'].values())} MiB)")
    print(f"  first query after start-up (unbounded) {warm_ms:,.0f} ms; then the first bounded query "
          f"{first_ms:,.0f} ms")
    print(f"  {'query':<26}{'median ms':>11}{'max ms':>10}")
    for r in results:
        print(f"  {r['query']:<26}{r['median_ms']:>11.1f}{r['max_ms']:>10.1f}")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--code", type=Path, default=ROOT, help="run sandbox from this checkout")
    ap.add_argument("--label", default="after")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bench-memory"))
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait after start-up before the first query (background preparation)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--restart", action="store_true",
                    help="measure a second start of the same workspace (engine files already written)")
    args = ap.parse_args()
    code = args.code.resolve()
    env = {**os.environ, "PYTHONPATH": str(code)}

    cached = args.cache / f"ws-{args.rows}"
    if not (cached / "bench.json").exists():
        print(f"building a demo workspace with {args.rows:,} residents (code {code}) …", file=sys.stderr)
        shutil.rmtree(cached, ignore_errors=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([PY, "-c", PREPARE, str(cached), str(args.rows)], env=env, cwd=code, check=True)
    ws = args.cache / f"run-{args.label}-{args.rows}"
    shutil.rmtree(ws, ignore_errors=True)
    shutil.copytree(cached, ws)
    meta = json.loads((ws / "bench.json").read_text())
    reports = [measure(args, code, env, ws, meta, "first start")]
    if args.restart:
        reports.append(measure(args, code, env, ws, meta, "restart"))
    report = {"label": args.label, "rows": args.rows, "code": str(code), "runs": reports}
    out = args.out or ROOT / "bench" / "results" / f"memory-{args.label}-{args.rows}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()
