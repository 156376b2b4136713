"""Load test: many concurrent researchers against ``sandbox serve`` over loopback HTTP.

    python bench/bench_load.py                                  # 30 clients, 60 s, 100,000 rows
    python bench/bench_load.py --clients 30 --seconds 10        # a quick run
    python bench/bench_load.py --data-dir /tmp/load-ws --rows 1000000 --threads 16

Builds a demo workspace (``sandbox demo --no-serve``; reused when ``--data-dir`` already holds
one), starts ``sandbox serve --threads T`` as a subprocess, and through the API has the demo
researcher apply and the demo owner approve a new approval with a budget large enough for the
run (ε 1000, δ 1e-3, at most ε 1 a query): the demo approval's ε 10 would run out within
seconds, and an approval's budget cannot be raised after it is granted.

Then ``--clients`` threads, each with its own keep-alive ``requests.Session``, send for
``--seconds`` a seeded mix of:

* ``release`` (55 %): SQL no one sent before (new WHERE constants), ε ∈ {0.005, 0.01, 0.02}:
  a real release (guard, DuckDB, OpenDP noise, ledger charge, audit append with fsync);
* ``cached`` (15 %): an exact repeat of an earlier release, answered from the release cache;
* ``refused`` (10 %): out-of-scope or identifier SQL, refused with 400 and logged;
* ``budget`` (20 %): ``GET /api/v1/approvals/<id>/budget``.

Automatic suspension after repeated out-of-scope refusals (第二十六条) is switched off for the
run (setting ``auto_suspend_refusals`` = 0, restored afterwards), or the refused share would
suspend the researcher within a second.

Reports requests, throughput, p50/p95/p99 latency per kind and overall, 5xx responses (must be
0) and other errors; then stops the server (SIGTERM: final signed checkpoint) and checks that
the budget was never overspent (every budget read and the final one), that every release a
client received is in the audit log at its receipt's index, that the log verifies with the
public key (``sandbox audit verify``) and that the ledger equals the logged charges
(``sandbox audit replay --data-dir``). Prints a table, writes ``bench/results/load.json`` and
exits 1 if any 5xx or failed check.

Clients and server share the machine: on 2 cores the 30 client threads (Python, one GIL)
take CPU from the server, so the figures are a floor, not a capacity.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KINDS = ("release", "cached", "refused", "budget")
WEIGHTS = (55, 15, 10, 20)
EPSILONS = (0.005, 0.01, 0.02)
RELEASE_TEMPLATES = (
    "SELECT COUNT(*) FROM residents WHERE age > {a} AND income > {b}",
    "SELECT district, COUNT(*) FROM residents WHERE age > {a} AND income > {b} GROUP BY district",
    "SELECT district, AVG(income) FROM residents WHERE age > {a} AND income > {b} GROUP BY district",
    "SELECT department, COUNT(*) FROM clinic_visits WHERE cost > {c} GROUP BY department",
    "SELECT department, AVG(cost) FROM clinic_visits WHERE cost > {c} GROUP BY department",
)
REFUSED = (  # (SQL, the refusal code expected)
    ("SELECT COUNT(*) FROM tax_records", "out_of_scope"),
    ("SELECT name FROM residents", "identifier_column"),
    ("SELECT district, COUNT(*) FROM residents GROUP BY phone", "identifier_column"),
)
APPROVAL = {"epsilon_total": 1000.0, "delta_total": 1e-3, "epsilon_per_query": 1.0}
START_TIMEOUT = 120.0


# -- processes ------------------------------------------------------------------------------
def sandbox_cli(*args: Any, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "sandbox.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)
    if check and proc.returncode != 0:
        raise SystemExit(f"sandbox {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                         f"{proc.stdout}\n{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, threads: int, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.cli", "serve", "--data-dir", str(data_dir), "--port", str(port),
             "--threads", str(threads)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise SystemExit("sandbox serve did not start:\n" + log_path.read_text(errors="replace"))


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM: waitress stops and the server signs its final checkpoint."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- workspace set-up -----------------------------------------------------------------------
def prepare_workspace(data_dir: Path, rows: int) -> dict[str, Any]:
    creds_path = data_dir / "demo-credentials.json"
    if creds_path.exists():
        print(f"reusing the workspace {data_dir}", file=sys.stderr)
    else:
        print(f"building a demo workspace with {rows:,} residents in {data_dir} …", file=sys.stderr)
        sandbox_cli("demo", "--rows", rows, "--no-serve", "--data-dir", data_dir)
    return json.loads(creds_path.read_text())


def set_auto_suspension(data_dir: Path, value: int | None) -> int:
    """Set ``auto_suspend_refusals`` (None: leave it); returns the value it had."""
    from sandbox.governance import workflow
    from sandbox.store.workspace import Workspace, transaction

    conn = Workspace.open(data_dir).connect()
    try:
        old = workflow.SETTING_GROUP.get(conn, "auto_suspend_refusals")
        if value is not None:
            with transaction(conn):
                workflow.SETTING_GROUP.set(conn, "auto_suspend_refusals", value)
        return old
    finally:
        conn.close()


def grant_large_budget(url: str, creds: dict[str, Any]) -> int:
    """The researcher applies, the owner approves: a new approval, logged like any other."""
    researcher = {"Authorization": f"Bearer {creds['researcher']['token']}"}
    owner = {"Authorization": f"Bearer {creds['owner']['token']}"}
    r = requests.post(url + "/api/v1/applications", headers=researcher, timeout=60, json={
        "datasets": ["residents", "clinic_visits"], "scenario": "Load test (bench/bench_load.py)",
        "purpose": "Measure throughput and latency under concurrent researchers.",
        "commitment_accepted": True})
    r.raise_for_status()
    decision = {"decision": "approve", **APPROVAL, "reason": "load test",
                "expires": (date.today() + timedelta(days=30)).isoformat()}
    r = requests.post(f"{url}/api/v1/applications/{r.json()['application_id']}/decision", headers=owner,
                      timeout=60, json=decision)
    r.raise_for_status()
    return int(r.json()["approval_id"])


# -- the load -------------------------------------------------------------------------------
@dataclass
class Shared:
    url: str
    token: str
    approval: int
    deadline: float
    released_bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))


@dataclass
class ClientLog:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    attempts: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # 5xx
    other_errors: list[str] = field(default_factory=list)  # transport errors, unexpected answers
    receipts: list[tuple[str, int, float]] = field(default_factory=list)  # query_id, log_index, ε
    overspent: list[dict[str, Any]] = field(default_factory=list)
    cache_misses: int = 0  # a repeat the cache did not answer (counted, not an error)


def new_release(shared: Shared, rnd: random.Random) -> dict[str, Any]:
    n = next(shared.counter)
    # (a, b) and c differ for every n: the release cache has never seen this SQL
    sql = RELEASE_TEMPLATES[n % len(RELEASE_TEMPLATES)].format(
        a=n % 90, b=(n // 90) * 50, c=f"{n % 500}.{n // 500:05d}")
    return {"approval_id": shared.approval, "sql": sql, "epsilon": rnd.choice(EPSILONS)}


def check_budget(budget: dict[str, Any], log: ClientLog) -> None:
    eps, delta = budget["epsilon"], budget["delta"]
    if eps["spent"] > eps["total"] + 1e-9 or delta["spent"] > delta["total"] + 1e-15:
        log.overspent.append(budget)


def client(shared: Shared, seed: int, log: ClientLog) -> None:
    rnd = random.Random(seed)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {shared.token}"
    budget_url = f"{shared.url}/api/v1/approvals/{shared.approval}/budget"
    query_url = shared.url + "/api/v1/queries"
    while time.monotonic() < shared.deadline:
        kind = rnd.choices(KINDS, WEIGHTS)[0]
        body: dict[str, Any] | None = None
        expected_code = None
        if kind == "cached":
            with shared.lock:
                body = rnd.choice(shared.released_bodies) if shared.released_bodies else None
            if body is None:
                kind = "release"
        if kind == "release":
            body = new_release(shared, rnd)
        elif kind == "refused":
            sql, expected_code = rnd.choice(REFUSED)
            body = {"approval_id": shared.approval, "sql": sql, "epsilon": 0.01}
        log.attempts += 1
        start = time.perf_counter()
        try:
            if kind == "budget":
                r = session.get(budget_url, timeout=120)
            else:
                r = session.post(query_url, json=body, timeout=120)
        except requests.RequestException as err:
            log.other_errors.append(f"{kind}: {type(err).__name__}: {err}"[:300])
            continue
        elapsed = time.perf_counter() - start
        log.statuses[r.status_code] += 1
        if r.status_code >= 500:
            log.server_errors.append(f"{kind}: {r.status_code} {r.text[:200]}")
            continue
        log.latencies[kind].append(elapsed)
        try:
            out = r.json()
        except ValueError:
            log.other_errors.append(f"{kind}: {r.status_code} not JSON: {r.text[:200]}")
            continue
        if kind in ("release", "cached"):
            if r.status_code != 200:
                log.other_errors.append(f"{kind}: {r.status_code} {r.text[:200]}")
                continue
            check_budget(out["budget"], log)
            if out["cached"]:
                if kind == "release":
                    log.other_errors.append(f"release answered from the cache: {body}")
            else:
                log.receipts.append((out["query_id"], out["receipt"]["log_index"], out["epsilon_spent"]))
                if kind == "cached":
                    log.cache_misses += 1
                else:
                    with shared.lock:
                        shared.released_bodies.append(body)
        elif kind == "refused":
            code = out.get("error", {}).get("code")
            if r.status_code != 400 or code != expected_code:
                log.other_errors.append(f"refused: expected 400 {expected_code}, got {r.status_code} {code}")
        elif r.status_code != 200:
            log.other_errors.append(f"budget: {r.status_code} {r.text[:200]}")
        else:
            check_budget(out, log)
    session.close()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]  # nearest rank


def summary(values: list[float], seconds: float) -> dict[str, Any]:
    """Count, rate and latency percentiles (nearest rank) in milliseconds."""
    v = sorted(values)
    out: dict[str, Any] = {"count": len(v), "per_second": round(len(v) / seconds, 1)}
    for name, q in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
        out[name] = round(percentile(v, q) * 1000, 1) if v else None
    out["mean_ms"] = round(sum(v) / len(v) * 1000, 1) if v else None
    return out


# -- checks after the run -------------------------------------------------------------------
def audit_checks(data_dir: Path, work: Path, approval: int, receipts: list[tuple[str, int, float]]) -> dict[str, Any]:
    log = work / "audit.jsonl"
    sandbox_cli("audit", "export", log, "--data-dir", data_dir)
    key = work / "log-key.pem"
    key.write_text(sandbox_cli("keys", "public", "--data-dir", data_dir).stdout)
    verify = sandbox_cli("audit", "verify", log, "--public-key", key, "--json", check=False)
    replay = sandbox_cli("audit", "replay", log, "--data-dir", data_dir, "--json", check=False)
    replayed = json.loads(replay.stdout)
    lines = log.read_bytes().splitlines()
    unlogged = []
    for query_id, seq, _eps in receipts:
        entry = json.loads(lines[seq]) if seq < len(lines) else {}
        if entry.get("action") != "query.released" or entry["details"].get("query_id") != query_id:
            unlogged.append(query_id)
    logged: dict[str, float] = {}
    actions: Counter = Counter()
    for line in lines:
        e = json.loads(line)
        if e["action"] in ("query.released", "query.failed") and e["details"].get("approval_id") == approval:
            logged[e["details"]["query_id"]] = float(e["details"]["epsilon"])
            actions[e["action"]] += 1
    conn = sqlite3.connect(f"file:{data_dir / 'sandbox.db'}?mode=ro", uri=True)
    try:
        ledger = dict(conn.execute("SELECT query_id, epsilon FROM ledger WHERE approval_id = ?", (approval,)))
    finally:
        conn.close()
    ledger_sum, logged_sum = sum(ledger.values()), sum(logged.values())
    return {
        "log_entries": len(lines),
        "verify_ok": verify.returncode == 0,
        "verify": _verify_summary(verify),
        "replay_ok": replay.returncode == 0 and replayed.get("ok") is True,
        "replay_ledger_differences": replayed.get("ledger_differences"),
        "replay_inconsistencies": replayed.get("inconsistencies"),
        "releases_received": len(receipts),
        "releases_logged": actions["query.released"],
        "failures_logged": actions["query.failed"],  # charged engine failures (the client saw 500)
        "charges_logged": len(logged),
        "charges_in_ledger": len(ledger),
        "receipts_not_in_log": len(unlogged),
        "ledger_epsilon": ledger_sum,
        "logged_epsilon": logged_sum,
        "ledger_equals_log": set(ledger) == set(logged) and abs(ledger_sum - logged_sum) <= 1e-9,
    }


def _verify_summary(proc: subprocess.CompletedProcess[str]) -> Any:
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        return (proc.stdout + proc.stderr).strip()[:500]
    keep = ("ok", "entries", "checkpoint_size", "unsigned_tail", "kind", "seq", "message")
    return {k: out[k] for k in keep if k in out}


# -- main -----------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=30, help="concurrent client threads (default 30)")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of the measured run (default 60)")
    ap.add_argument("--rows", type=int, default=100_000, help="demo residents when building (default 100,000)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="workspace to build or reuse (default: a temporary one, deleted afterwards)")
    ap.add_argument("--threads", type=int, default=8, help="sandbox serve --threads (default 8, as serve)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = ap.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="sandbox-load-"))
    data_dir = (args.data_dir or scratch / "ws").expanduser().resolve()
    creds = prepare_workspace(data_dir, args.rows)
    old_threshold = set_auto_suspension(data_dir, 0)
    server, url = start_server(data_dir, args.threads, scratch / "serve.log")
    server_cpu = None
    try:
        approval = grant_large_budget(url, creds)
        shared = Shared(url, creds["researcher"]["token"], approval, 0.0)
        warm = ClientLog()
        for template in RELEASE_TEMPLATES:  # load each table into the server's cache
            r = requests.post(url + "/api/v1/queries", timeout=300, json={
                "approval_id": approval, "sql": template.format(a=0, b=-1, c=-1), "epsilon": 0.01},
                headers={"Authorization": f"Bearer {shared.token}"})
            r.raise_for_status()
            out = r.json()
            warm.receipts.append((out["query_id"], out["receipt"]["log_index"], out["epsilon_spent"]))
        load_before = os.getloadavg()
        cpu_before = process_cpu(server.pid)
        print(f"running {args.clients} clients for {args.seconds:g} s against {url} "
              f"(serve --threads {args.threads}) …", file=sys.stderr)
        logs = [ClientLog() for _ in range(args.clients)]
        t0 = time.monotonic()
        shared.deadline = t0 + args.seconds
        threads = [threading.Thread(target=client, args=(shared, args.seed * 1000 + i, logs[i]), daemon=True)
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        load_after = os.getloadavg()
        final_budget = requests.get(f"{url}/api/v1/approvals/{approval}/budget", timeout=60,
                                    headers={"Authorization": f"Bearer {shared.token}"}).json()
        cpu_after = process_cpu(server.pid)
        if cpu_before is not None and cpu_after is not None:
            server_cpu = {k: round(cpu_after[k] - cpu_before[k], 1) for k in cpu_after}
    finally:
        stop_server(server)
        set_auto_suspension(data_dir, old_threshold)

    receipts = [r for log in logs for r in log.receipts] + warm.receipts
    checks = audit_checks(data_dir, scratch, approval, receipts)
    overspent = [b for log in logs for b in log.overspent]
    final_ok = final_budget["epsilon"]["spent"] <= final_budget["epsilon"]["total"] + 1e-9
    checks.update({
        "budget_reads_overspent": len(overspent),
        "final_budget": {"epsilon": final_budget["epsilon"], "delta": final_budget["delta"],
                         "releases": final_budget["releases"]},
        "final_spent_within_total": final_ok,
        "budget_endpoint_equals_log": abs(final_budget["accounting"]["basic"]["epsilon"]
                                          - checks["logged_epsilon"]) <= 1e-9,
    })

    per_kind = {k: summary([x for log in logs for x in log.latencies[k]], elapsed) for k in KINDS}
    overall = summary([x for log in logs for k in KINDS for x in log.latencies[k]], elapsed)
    statuses: Counter = Counter()
    for log in logs:
        statuses.update(log.statuses)
    server_errors = [e for log in logs for e in log.server_errors]
    other = [e for log in logs for e in log.other_errors]
    requests_total = sum(log.attempts for log in logs)
    ok = (not server_errors and not overspent and final_ok and checks["verify_ok"] and checks["replay_ok"]
          and checks["ledger_equals_log"] and checks["receipts_not_in_log"] == 0
          and checks["budget_endpoint_equals_log"] and checks["releases_logged"] == len(receipts))
    report = {
        "command": " ".join(["python", "bench/bench_load.py", *sys.argv[1:]]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "clients": args.clients, "seconds": round(elapsed, 1), "serve_threads": args.threads,
        "rows": creds_rows(data_dir), "mix_percent": dict(zip(KINDS, WEIGHTS, strict=True)),
        "requests": requests_total, "throughput_per_second": round(requests_total / elapsed, 1),
        "server_cpu_seconds": server_cpu,
        "server_cpu_ms_per_request": (round(sum(server_cpu.values()) / requests_total * 1000, 1)
                                      if server_cpu and requests_total else None),
        "latency": {**per_kind, "overall": overall},
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors_5xx": len(server_errors), "server_error_examples": server_errors[:5],
        "other_errors": len(other), "other_error_examples": other[:5],
        "cache_misses_on_repeats": sum(log.cache_misses for log in logs),
        "checks": checks,
        "ok": ok,
    }
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {args.out}")
    if ok:
        shutil.rmtree(scratch if args.data_dir is None else scratch / "serve.log", ignore_errors=True)
    else:
        print(f"kept {scratch} (the server's log, the audit export) for inspection", file=sys.stderr)
    return 0 if ok else 1


def process_cpu(pid: int) -> dict[str, float] | None:
    """CPU seconds (user + system) of the server process and of its children (the engine
    workers), from ``/proc``; None where there is no ``/proc``. CPU per request is the
    figure a shared machine distorts least: the others' load stretches wall time only."""
    tick = os.sysconf("SC_CLK_TCK")

    def stat(p: Path) -> tuple[int, float] | None:
        try:
            fields = p.read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick  # ppid, utime + stime

    own = stat(Path(f"/proc/{pid}/stat"))
    if own is None:
        return None
    children = 0.0
    for p in Path("/proc").glob("[0-9]*/stat"):
        found = stat(p)
        if found is not None and found[0] == pid:
            children += found[1]
    return {"server": own[1], "engine_workers": children}


def creds_rows(data_dir: Path) -> int | None:
    conn = sqlite3.connect(f"file:{data_dir / 'sandbox.db'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT row_count FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
                           "WHERE d.name = 'residents' ORDER BY v.version DESC LIMIT 1").fetchone()
        return int(row[0]) if row else None
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def print_table(r: dict[str, Any]) -> None:
    print(f"\n{r['clients']} clients, {r['seconds']} s, serve --threads {r['serve_threads']}, "
          f"{r['rows'] or '?'} residents; load average {r['load_average_before'][0]} → "
          f"{r['load_average_after'][0]} on {r['cpus']} CPUs")
    print(f"\n{'kind':<10}{'count':>8}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for kind, s in r["latency"].items():
        print(f"{kind:<10}{s['count']:>8}{s['per_second']:>9}{s['p50_ms']!s:>9}{s['p95_ms']!s:>9}"
              f"{s['p99_ms']!s:>9}{s['max_ms']!s:>9}")
    c = r["checks"]
    if r["server_cpu_seconds"]:
        cpu = r["server_cpu_seconds"]
        print(f"\nCPU during the run: server {cpu['server']} s, engine workers {cpu['engine_workers']} s; "
              f"{r['server_cpu_ms_per_request']} ms per request (server + workers)")
    print(f"\nrequests {r['requests']}, throughput {r['throughput_per_second']} req/s; "
          f"5xx {r['server_errors_5xx']}, other errors {r['other_errors']}; statuses {r['statuses']}")
    print(f"budget: spent ε {c['final_budget']['epsilon']['spent']:.4f} of {c['final_budget']['epsilon']['total']:g} "
          f"(never overspent: {c['budget_reads_overspent'] == 0 and c['final_spent_within_total']})")
    print(f"audit: {c['log_entries']} entries, verify {'OK' if c['verify_ok'] else 'FAILED'}, "
          f"replay {'OK' if c['replay_ok'] else 'FAILED'}; releases received {c['releases_received']}, "
          f"logged {c['releases_logged']} (+{c['failures_logged']} charged failures), charges in the "
          f"ledger {c['charges_in_ledger']}, receipts not in the log {c['receipts_not_in_log']}; "
          f"ledger == log: {c['ledger_equals_log']}")
    print("RESULT: " + ("OK" if r["ok"] else "FAILED"))


if __name__ == "__main__":
    sys.exit(main())
