"""Audit-log benchmark: durable appends, verifying an export, proof generation.

    python bench/bench_audit.py --entries 1000000          # the issue's targets
    python bench/bench_audit.py --entries 20000 --single 1000   # quick run
    python bench/bench_audit.py --entries 1000000 --keep        # prints the scratch folder
    python bench/bench_audit.py --entries 1000000 --reuse DIR   # rerun without rebuilding

Measures, on the workspace's own storage setup (SQLite WAL, ``synchronous=FULL``, so each
COMMIT is fsynced before it returns):

* durable single appends/s: each append is its own BEGIN IMMEDIATE … COMMIT;
* batched appends/s: ``--batch`` entries per committed transaction;
* building a log of ``--entries`` entries, exporting it, verifying the export offline
  (``audit_log.verify.verify_file``, as ``sandbox audit verify`` does), in full and with
  ``--integrity-only``; wall time and CPU time of all processes (CPU time is what other
  load on a shared machine distorts least);
* inclusion and consistency proof generation at that size (median and p99 over
  ``--proofs`` random indices), plus checking each proof.

Targets (issue 5): ≥ 2,000 durable appends/s, verify 1M entries < 30 s, inclusion proof
< 2 ms. Prints a table and writes ``bench/results/audit.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit_log import proofs, store  # noqa: E402
from audit_log.checkpoint import open_checkpoint  # noqa: E402
from audit_log.hashing import hash_leaf  # noqa: E402
from audit_log.verify import verify_file  # noqa: E402
from keys import KeyRing  # noqa: E402

T0 = datetime(2025, 3, 1, tzinfo=UTC)
ORIGIN = "bench.example/audit"


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def create(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    conn.execute("BEGIN")
    for statement in store.SCHEMA_STATEMENTS:
        conn.execute(statement)
    conn.execute("COMMIT")
    return conn


def release_details(i: int) -> dict:
    """A realistic ``query.released`` entry (~600 bytes canonical)."""
    return {
        "approval_id": 1 + i % 50,
        "query_id": f"q_{i:012d}",
        "sql": "SELECT district, COUNT(*), AVG(income) FROM residents WHERE age >= 18 GROUP BY district",
        "plan_fingerprint": hashlib.sha256(f"plan {i % 997}".encode()).hexdigest(),
        "dataset_versions": {
            "residents": "sha256:" + hashlib.sha256(f"v{i % 7}".encode()).hexdigest()
        },
        "mechanisms": [
            {"column": "count", "mechanism": "laplace", "scale": 2.0},
            {"column": "avg_income", "mechanism": "laplace", "scale": 153.25},
        ],
        "epsilon": 0.1 + (i % 5) / 10,
        "delta": 1e-6,
        "budget_after": {
            "epsilon_spent": round(0.3 * (i // 50 + 1), 9),
            "delta_spent": 1e-6 * (i // 50 + 1),
        },
        "values": [["历下区", 10234.5 + i % 100], ["市中区", 9876.25]],
    }


def append(conn: sqlite3.Connection, i: int) -> store.AppendedEntry:
    return store.append(
        conn,
        actor=f"researcher{i % 50}",
        role="researcher",
        action="query.released",
        subject=f"query:q_{i:012d}",
        details=release_details(i),
        now=T0 + timedelta(milliseconds=250 * i),
    )


def bench_single(path: Path, n: int) -> float:
    conn = create(path)
    for i in range(50):  # warm up
        conn.execute("BEGIN IMMEDIATE")
        append(conn, i)
        conn.execute("COMMIT")
    start = time.perf_counter()
    for i in range(50, 50 + n):
        conn.execute("BEGIN IMMEDIATE")
        append(conn, i)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def bench_batched(path: Path, n: int, batch: int) -> float:
    conn = create(path)
    start = time.perf_counter()
    for first in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(first, min(n, first + batch)):
            append(conn, i)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def build(conn: sqlite3.Connection, n: int, report_every: int = 100_000) -> float:
    start = time.perf_counter()
    batch = 10_000
    for first in range(store.size(conn), n, batch):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(first, min(n, first + batch)):
            append(conn, i)
        conn.execute("COMMIT")
        if (first + batch) % report_every == 0:
            print(
                f"  built {first + batch:,} entries ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
    return time.perf_counter() - start


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the verify workers): a figure
    that other load on the machine inflates far less than wall time."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def fsync_rate(folder: Path, n: int = 300) -> float:
    """Raw small-write fsyncs per second on the scratch disk: the ceiling for durable
    single appends (one fsync per COMMIT in WAL mode)."""
    path = folder / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, b"x" * 512)
            os.fsync(fd)
        return n / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entries", type=int, default=1_000_000, help="log size for verify and proofs"
    )
    parser.add_argument("--single", type=int, default=3_000, help="durable single appends to time")
    parser.add_argument(
        "--batch", type=int, default=100, help="entries per transaction when batched"
    )
    parser.add_argument("--proofs", type=int, default=2_000, help="proofs to time")
    parser.add_argument(
        "--workers", type=int, default=None, help="verify processes (default: auto)"
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="scratch folder of an earlier --keep run: reuse its log (skips the long build)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit.json")
    args = parser.parse_args()

    scratch = args.reuse or Path(tempfile.mkdtemp(prefix="bench-audit-", dir=args.dir))
    if args.reuse:
        args.keep = True
    results: dict = {
        "command": "python bench/bench_audit.py " + " ".join(sys.argv[1:]),
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
        },
        "storage": "SQLite WAL, synchronous=FULL (fsync at each COMMIT)",
        "load_average_at_start": os.getloadavg(),
        "targets": {"durable_appends_per_s": 2000, "verify_1m_s": 30, "inclusion_proof_ms": 2},
    }
    try:
        results["fsync_per_s"] = round(fsync_rate(scratch))
        for stale in [*scratch.glob("single.db*"), *scratch.glob("batched.db*")]:
            stale.unlink()  # a --reuse run measures appends on fresh databases
        print("durable single appends …", file=sys.stderr)
        results["durable_single_appends_per_s"] = round(
            bench_single(scratch / "single.db", args.single)
        )
        print("batched appends …", file=sys.stderr)
        results["durable_batched_appends_per_s"] = round(
            bench_batched(scratch / "batched.db", max(args.single * 3, 5 * args.batch), args.batch)
        )
        results["batch_size"] = args.batch

        print(f"building a log of {args.entries:,} entries …", file=sys.stderr)
        if (scratch / "big.db").exists():
            conn = connect(scratch / "big.db")
            print(f"  reusing {store.size(conn):,} entries", file=sys.stderr)
        else:
            conn = create(scratch / "big.db")
        results["build_s"] = round(build(conn, args.entries), 1)
        ring = KeyRing.open_or_create(scratch / "keys", b"bench passphrase")
        signer = ring.log_signer()
        note = store.issue_checkpoint(conn, signer, ORIGIN, datetime.now(UTC))
        cp = open_checkpoint(note, [signer.public_key_pem()])

        start = time.perf_counter()
        exported = store.export_jsonl(conn, scratch / "log.jsonl")
        results["export_s"] = round(time.perf_counter() - start, 2)
        results["export_bytes"] = (scratch / "log.jsonl").stat().st_size

        print("verifying the export …", file=sys.stderr)
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        report = verify_file(scratch / "log.jsonl", [signer.public_key_pem()], workers=args.workers)
        results["verify_s"] = round(time.perf_counter() - start, 2)
        results["verify_cpu_s"] = round(_cpu_seconds() - cpu_before, 1)
        cpu_before = _cpu_seconds()
        start = time.perf_counter()
        verify_file(
            scratch / "log.jsonl", [signer.public_key_pem()], workers=args.workers, encoding=False
        )
        results["verify_integrity_only_s"] = round(time.perf_counter() - start, 2)
        results["verify_integrity_only_cpu_s"] = round(_cpu_seconds() - cpu_before, 1)
        results["verify_workers"] = args.workers or "auto"
        assert report.entries == exported.entries == args.entries

        n = cp.size
        rng = random.Random(5)
        inclusion_ms, check_ms = [], []
        for _ in range(args.proofs):
            index = rng.randrange(n)
            t = time.perf_counter()
            proof = store.inclusion_proof(conn, index, n)
            inclusion_ms.append((time.perf_counter() - t) * 1000)
            leaf = hash_leaf(store.entry_bytes(conn, index))
            t = time.perf_counter()
            proofs.verify_inclusion(leaf, index, n, proof, cp.root_hash)
            check_ms.append((time.perf_counter() - t) * 1000)
        consistency_ms = []
        for _ in range(max(1, args.proofs // 4)):
            old = rng.randrange(1, n + 1)
            t = time.perf_counter()
            store.consistency_proof(conn, old, n)
            consistency_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        store.root(conn, n)
        results["root_ms"] = round((time.perf_counter() - t) * 1000, 3)
        results["inclusion_proof_ms"] = {
            "median": round(statistics.median(inclusion_ms), 3),
            "p99": round(pct(inclusion_ms, 0.99), 3),
        }
        results["inclusion_verify_ms"] = {"median": round(statistics.median(check_ms), 3)}
        results["consistency_proof_ms"] = {
            "median": round(statistics.median(consistency_ms), 3),
            "p99": round(pct(consistency_ms, 0.99), 3),
        }
        results["entries"] = n
        results["load_average_at_end"] = os.getloadavg()
        results["db_bytes"] = sum(p.stat().st_size for p in scratch.glob("big.db*"))
        conn.close()
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {scratch}", file=sys.stderr)

    rows = [
        ("raw fsyncs/s on this disk (ceiling)", results["fsync_per_s"], ""),
        ("durable single appends/s", results["durable_single_appends_per_s"], "≥ 2,000"),
        (
            f"durable batched appends/s (batch {args.batch})",
            results["durable_batched_appends_per_s"],
            "",
        ),
        (f"build {results['entries']:,} entries (s)", results["build_s"], ""),
        ("export (s)", results["export_s"], ""),
        (f"verify {results['entries']:,} entries (s)", results["verify_s"], "< 30 for 1M"),
        ("verify CPU time, all processes (s)", results["verify_cpu_s"], ""),
        ("verify --integrity-only (s)", results["verify_integrity_only_s"], ""),
        ("verify --integrity-only CPU time (s)", results["verify_integrity_only_cpu_s"], ""),
        (
            "load average at start / end",
            f"{results['load_average_at_start'][0]:.1f} / {results['load_average_at_end'][0]:.1f}",
            "",
        ),
        (
            "inclusion proof median / p99 (ms)",
            f"{results['inclusion_proof_ms']['median']} / {results['inclusion_proof_ms']['p99']}",
            "< 2",
        ),
        (
            "consistency proof median / p99 (ms)",
            f"{results['consistency_proof_ms']['median']} / {results['consistency_proof_ms']['p99']}",
            "",
        ),
        ("inclusion proof check median (ms)", results["inclusion_verify_ms"]["median"], ""),
        ("root at full size (ms)", results["root_ms"], ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value!s:>14}  {target}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
