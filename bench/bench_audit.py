"""Audit-log benchmark: durable appends, verifying an export, proof generation, for each
cryptography profile side by side (issue 17: ``intl`` = SHA-256 + Ed25519, ``sm`` = SM3 +
SM2).

    python bench/bench_audit.py --entries 1000000          # the issue's targets, both profiles
    python bench/bench_audit.py --entries 20000 --single 1000   # quick run
    python bench/bench_audit.py --entries 1000000 --profiles sm  # one profile only
    python bench/bench_audit.py --entries 1000000 --keep        # prints the scratch folder
    python bench/bench_audit.py --entries 1000000 --reuse DIR   # rerun without rebuilding

Measures, on the workspace's own storage setup (SQLite WAL, ``synchronous=FULL``, so each
COMMIT is fsynced before it returns):

* durable single appends/s: each append is its own BEGIN IMMEDIATE … COMMIT;
* batched appends/s: ``--batch`` entries per committed transaction;
* group-commit appends/s (issue 18): ``--writers`` threads (and one thread) each calling
  ``GroupCommitter.run`` with one append, which returns only once the COMMIT holding it
  is fsynced: what the sandbox's charges and releases do under concurrent load;
* building a log of ``--entries`` entries, exporting it, verifying the export offline
  (``audit_log.verify.verify_file``, as ``sandbox audit verify`` does), in full and with
  ``--integrity-only``; wall time and CPU time of all processes (CPU time is what other
  load on a shared machine distorts least);
* inclusion and consistency proof generation at that size (median and p99 over
  ``--proofs`` random indices), plus checking each proof.

* signing a checkpoint and checking its signature (Ed25519 or SM2).

``--appends-only`` stops after the appends (a quick run of the issue 18 targets).

Targets (issue 18): ≥ 5,000 durable appends/s with 16 concurrent writers, ≥ 1,500/s with one,
through group commit. Targets (issue 5): ≥ 2,000 durable appends/s, verify 1M entries < 30 s, inclusion proof
< 2 ms. Prints one table with a column per profile and writes ``bench/results/audit.json``
(``profiles.intl``, ``profiles.sm``; the ``intl`` figures also at the top level, as before).
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
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit_log import proofs, store  # noqa: E402
from audit_log.checkpoint import open_checkpoint  # noqa: E402
from audit_log.group_commit import GroupCommitter  # noqa: E402
from audit_log.hashing import PROFILE_TREE_HASH  # noqa: E402
from audit_log.verify import verify_file  # noqa: E402
from keys import KeyRing, verify_signature  # noqa: E402

T = TypeVar("T")
T0 = datetime(2025, 3, 1, tzinfo=UTC)
ORIGIN = "bench.example/audit"


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


PROFILE = {"name": "intl"}  # the profile being measured (set by ``run_profile``)


def create(path: Path) -> sqlite3.Connection:
    """A fresh log in the profile being measured (SM3 tree for ``sm``)."""
    conn = connect(path)
    conn.execute("BEGIN")
    for statement in store.SCHEMA_STATEMENTS:
        conn.execute(statement)
    if PROFILE["name"] == "sm":
        store.set_tree_hash(conn, "sm3")
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


def bench_single(path: Path, n: int, rounds: int = 5) -> dict:
    """Durable single appends (each its own BEGIN IMMEDIATE … COMMIT), in ``rounds``
    rounds with the disk's fsync rate probed between them: on a shared machine the disk
    rate moves from second to second, so each round is set beside the disk it had."""
    conn = create(path)
    for i in range(50):  # warm up
        conn.execute("BEGIN IMMEDIATE")
        append(conn, i)
        conn.execute("COMMIT")
    per_round = max(1, n // rounds)
    rates, fsyncs, wal_syncs, floors = [], [], [], []
    user = system = 0.0
    i = 50
    for _ in range(rounds):
        fsyncs.append(fsync_rate(path.parent, 100))
        wal_syncs.append(wal_sync_rate(path.parent, 100))
        floors.append(sqlite_commit_rate(path.parent, 100))
        usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(per_round):
            conn.execute("BEGIN IMMEDIATE")
            append(conn, i)
            conn.execute("COMMIT")
            i += 1
        rates.append(per_round / (time.perf_counter() - start))
        after = resource.getrusage(resource.RUSAGE_SELF)
        user += after.ru_utime - usage.ru_utime
        system += after.ru_stime - usage.ru_stime
    conn.close()
    return {
        "median": round(statistics.median(rates)),
        "best_round": round(max(rates)),
        "rounds": [round(r) for r in rates],
        "fsync_per_s_between_rounds": [round(r) for r in fsyncs],
        "wal_like_fdatasync_per_s_between_rounds": [round(r) for r in wal_syncs],
        "one_row_sqlite_commits_per_s_between_rounds": [round(r) for r in floors],
        "user_cpu_us_per_append": round(user / (per_round * rounds) * 1e6, 1),
        "system_cpu_us_per_append": round(system / (per_round * rounds) * 1e6, 1),
    }


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


def shared_connection(path: Path) -> sqlite3.Connection:
    """A committer's connection: used by each batch's leader in turn."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def bench_single_vs_group(path: Path, n: int, rounds: int) -> dict:
    """One writer, alternating rounds of own-transaction appends and group-commit appends
    on the same log, so both meet the same disk (its rate moves from second to second)."""
    conn = create(path)
    gc = GroupCommitter(partial(shared_connection, path))
    per_round = max(1, n // rounds)
    direct, group = [], []
    i = 0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(per_round):
            conn.execute("BEGIN IMMEDIATE")
            append(conn, i)
            conn.execute("COMMIT")
            i += 1
        direct.append(per_round / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(per_round):
            gc.run(partial(append, i=i))
            i += 1
        group.append(per_round / (time.perf_counter() - start))
    gc.close()
    conn.close()
    return {"own_transaction": [round(r) for r in direct], "group_commit": [round(r) for r in group],
            "own_transaction_median": round(statistics.median(direct)),
            "group_commit_median": round(statistics.median(group))}


def bench_group(path: Path, n: int, writers: int) -> dict:
    """``writers`` threads, each appending through one :class:`GroupCommitter` and
    waiting for its durable COMMIT before the next append (as a request handler does)."""
    create(path).close()
    gc = GroupCommitter(partial(shared_connection, path))
    for i in range(20):  # warm up (opens the writer's connection)
        gc.run(partial(append, i=i))
    per_writer = max(1, n // writers)
    latencies: list[float] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        mine = []
        for k in range(per_writer):
            i = 20 + w * per_writer + k
            t = time.perf_counter()
            gc.run(partial(append, i=i))
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    batches_before, usage = gc.batches, resource.getrusage(resource.RUSAGE_SELF)
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    total = per_writer * writers
    batches = gc.batches - batches_before
    gc.close()
    check = connect(path)
    assert store.size(check) == total + 20, "an acknowledged append is missing"
    check.close()
    return {
        "writers": writers,
        "appends": total,
        "per_s": round(total / elapsed),
        "commits": batches,
        "appends_per_commit": round(total / batches, 1),
        "latency_ms_p50": round(pct(latencies, 0.50) * 1000, 2),
        "latency_ms_p99": round(pct(latencies, 0.99) * 1000, 2),
        "cpu_us_per_append": round(
            ((after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)) / total * 1e6, 1
        ),
    }


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


def wal_sync_rate(folder: Path, n: int = 300, pages: int = 7) -> float:
    """fdatasyncs/s after writing ``pages`` 4 KiB frames in place, cycling through a
    preallocated file: what a COMMIT costs SQLite once its WAL has been through a
    checkpoint (an append writes ~7 pages: table, four indexes, subtrees, header)."""
    path = folder / "wal.probe"
    frame = b"w" * 4120
    size = 1000 * len(frame)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, bytes(size), 0)
        os.fsync(fd)
        pos = 0
        start = time.perf_counter()
        for _ in range(n):
            for _ in range(pages):
                os.pwrite(fd, frame, pos)
                pos = (pos + len(frame)) % size
            os.fdatasync(fd)
        return n / (time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink()


def sqlite_commit_rate(folder: Path, n: int = 300) -> float:
    """Durable commits/s of a one-row INSERT on the same storage setup: what any single
    durable append could reach at best through SQLite here (locks, WAL frame, fsync)."""
    path = folder / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER PRIMARY KEY, y BLOB)")
        start = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (y) VALUES (?)", (bytes(32),))
            conn.execute("COMMIT")
        return n / (time.perf_counter() - start)
    finally:
        conn.close()
        for stale in folder.glob("floor.db*"):
            stale.unlink()


def _disk_read_bytes() -> int:
    """Bytes this process read from storage (not from the page cache), for telling
    a proof that waited for the disk from one that waited for a CPU."""
    try:
        with open("/proc/self/io") as fh:
            fields = dict(line.split(": ") for line in fh.read().splitlines())
        return int(fields["read_bytes"])
    except (OSError, KeyError, ValueError):
        return 0


def timed(work: Callable[[], T]) -> tuple[T, tuple[float, float]]:
    """``work()`` and (wall ms, CPU ms of this thread): a wall time far above the CPU time
    is time spent waiting, for the disk or for a CPU that other processes had."""
    t, c = time.perf_counter(), time.thread_time()
    result = work()
    return result, ((time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000)


def summary(samples: list[tuple[float, float]]) -> dict[str, float]:
    wall = [w for w, _ in samples]
    cpu = [c for _, c in samples]
    return {
        "median": round(statistics.median(wall), 3),
        "p99": round(pct(wall, 0.99), 3),
        "max": round(max(wall), 3),
        "cpu_median": round(statistics.median(cpu), 3),
        "cpu_p99": round(pct(cpu, 0.99), 3),
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_profile(profile: str, args: argparse.Namespace, scratch: Path) -> dict:
    """Every measure for one cryptography profile, on logs in ``scratch``."""
    PROFILE["name"] = profile
    th = PROFILE_TREE_HASH[profile]
    scratch.mkdir(parents=True, exist_ok=True)
    results: dict = {"profile": profile, "tree_hash": th.name}
    for stale in [*scratch.glob("single.db*"), *scratch.glob("batched.db*")]:
        stale.unlink()  # a --reuse run measures appends on fresh databases
    print(f"[{profile}] durable single appends …", file=sys.stderr)
    single = bench_single(scratch / "single.db", args.single, args.rounds)
    results["durable_single_appends_per_s"] = single["median"]
    results["durable_single_appends"] = single
    results["load_average_after_appends"] = os.getloadavg()
    print(f"[{profile}] batched appends …", file=sys.stderr)
    results["durable_batched_appends_per_s"] = round(
        bench_batched(scratch / "batched.db", max(args.single * 3, 5 * args.batch), args.batch)
    )
    results["batch_size"] = args.batch
    for writers in sorted({1, args.writers}):
        print(f"[{profile}] group-commit appends, {writers} writer(s) …", file=sys.stderr)
        for stale in scratch.glob("group.db*"):
            stale.unlink()
        count = args.single if writers == 1 else max(args.single * 3, 200 * writers)
        results[f"group_commit_{writers}"] = bench_group(scratch / "group.db", count, writers)
    for stale in scratch.glob("alternate.db*"):
        stale.unlink()
    print(f"[{profile}] one writer, own transaction and group commit alternating …", file=sys.stderr)
    results["single_vs_group"] = bench_single_vs_group(scratch / "alternate.db", args.single, 2 * args.rounds)
    results["load_average_after_appends"] = os.getloadavg()
    if args.appends_only:
        return results

    print(f"[{profile}] building a log of {args.entries:,} entries …", file=sys.stderr)
    if (scratch / "big.db").exists():
        conn = connect(scratch / "big.db")
        print(f"  reusing {store.size(conn):,} entries", file=sys.stderr)
    else:
        conn = create(scratch / "big.db")
    results["build_s"] = round(build(conn, args.entries), 1)
    ring = KeyRing.open_or_create(scratch / "keys", b"bench passphrase", profile=profile)
    signer = ring.log_signer()
    results["signature"] = signer.algorithm
    note = store.issue_checkpoint(conn, signer, ORIGIN, datetime.now(UTC))
    cp = open_checkpoint(note, [signer.public_key_pem()])
    body = cp.body().encode()
    sign_ms, check_sig_ms = [], []
    for _ in range(200):
        t = time.perf_counter()
        sig = signer.sign(body)
        sign_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        verify_signature(signer.public_key_bytes, body, sig)
        check_sig_ms.append((time.perf_counter() - t) * 1000)
    results["checkpoint_sign_ms"] = round(statistics.median(sign_ms), 3)
    results["checkpoint_signature_check_ms"] = round(statistics.median(check_sig_ms), 3)

    start = time.perf_counter()
    exported = store.export_jsonl(conn, scratch / "log.jsonl")
    results["export_s"] = round(time.perf_counter() - start, 2)
    results["export_bytes"] = (scratch / "log.jsonl").stat().st_size

    print(f"[{profile}] verifying the export …", file=sys.stderr)
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    report = verify_file(scratch / "log.jsonl", [signer.public_key_pem()], workers=args.workers)
    results["verify_s"] = round(time.perf_counter() - start, 2)
    results["verify_cpu_s"] = round(_cpu_seconds() - cpu_before, 1)
    assert report.tree_hash == th.name
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    verify_file(
        scratch / "log.jsonl", [signer.public_key_pem()], workers=args.workers, encoding=False
    )
    results["verify_integrity_only_s"] = round(time.perf_counter() - start, 2)
    results["verify_integrity_only_cpu_s"] = round(_cpu_seconds() - cpu_before, 1)
    results["verify_workers"] = args.workers or "auto"
    results["load_average_after_verify"] = os.getloadavg()
    assert report.entries == exported.entries == args.entries

    n = cp.size
    rng = random.Random(5)
    inclusion: list[tuple[float, float]] = []
    check_ms = []
    read_before = _disk_read_bytes()
    for _ in range(args.proofs):
        index = rng.randrange(n)
        proof, sample = timed(partial(store.inclusion_proof, conn, index, n))
        inclusion.append(sample)
        leaf = th.hash_leaf(store.entry_bytes(conn, index))
        t = time.perf_counter()
        proofs.verify_inclusion(leaf, index, n, proof, cp.root_hash, th)
        check_ms.append((time.perf_counter() - t) * 1000)
    results["inclusion_disk_read_kib"] = (_disk_read_bytes() - read_before) // 1024
    consistency: list[tuple[float, float]] = []
    for _ in range(max(1, args.proofs // 4)):
        old = rng.randrange(1, n + 1)
        consistency.append(timed(partial(store.consistency_proof, conn, old, n))[1])
    t = time.perf_counter()
    store.root(conn, n)
    results["root_ms"] = round((time.perf_counter() - t) * 1000, 3)
    results["inclusion_proof_ms"] = summary(inclusion)
    results["inclusion_verify_ms"] = {"median": round(statistics.median(check_ms), 3)}
    results["consistency_proof_ms"] = summary(consistency)
    results["entries"] = n
    results["load_average_at_end"] = os.getloadavg()
    results["db_bytes"] = sum(p.stat().st_size for p in scratch.glob("big.db*"))
    conn.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entries", type=int, default=1_000_000, help="log size for verify and proofs"
    )
    parser.add_argument("--single", type=int, default=3_000, help="durable single appends to time")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds the single appends are split into"
    )
    parser.add_argument(
        "--batch", type=int, default=100, help="entries per transaction when batched"
    )
    parser.add_argument(
        "--writers", type=int, default=16, help="concurrent writers for group commit"
    )
    parser.add_argument(
        "--appends-only", action="store_true", help="measure the appends only (no big log)"
    )
    parser.add_argument("--proofs", type=int, default=2_000, help="proofs to time")
    parser.add_argument(
        "--workers", type=int, default=None, help="verify processes (default: auto)"
    )
    parser.add_argument(
        "--profiles",
        default="intl,sm",
        help="cryptography profiles to measure, comma-separated (default: intl,sm)",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="scratch folder of an earlier --keep run: reuse its logs (skips the long build)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "audit.json")
    args = parser.parse_args()
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    if not profiles or any(p not in PROFILE_TREE_HASH for p in profiles):
        parser.error("--profiles takes intl, sm or intl,sm")

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
        "profiles": {},
    }
    try:
        results["fsync_per_s"] = round(fsync_rate(scratch))
        results["wal_like_fdatasync_per_s"] = round(wal_sync_rate(scratch))
        for profile in profiles:
            # ``intl`` keeps the folder layout of earlier runs (``--reuse`` of an old one)
            sub = scratch if profile == "intl" else scratch / profile
            results["profiles"][profile] = run_profile(profile, args, sub)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            print(f"kept {scratch}", file=sys.stderr)
    if "intl" in results["profiles"]:  # the figures of earlier runs, at the same keys
        results.update({k: v for k, v in results["profiles"]["intl"].items() if k != "profile"})
    report(results, profiles, args)


def report(results: dict, profiles: list[str], args: argparse.Namespace) -> None:
    """One table, a column per profile, and the targets per profile."""
    per = results["profiles"]

    def one(get: Callable[[dict], object], r: dict) -> str:
        try:
            return str(get(r))
        except KeyError:  # not measured (--appends-only)
            return "—"

    def col(get: Callable[[dict], object]) -> list[str]:
        return [one(get, per[p]) for p in profiles]

    def group(writers: int) -> Callable[[dict], object]:
        return lambda r: (
            f"{r[f'group_commit_{writers}']['per_s']} "
            f"({r[f'group_commit_{writers}']['appends_per_commit']}/commit, "
            f"p99 {r[f'group_commit_{writers}']['latency_ms_p99']} ms)"
        )

    def loads(r: dict) -> str:
        keys = ("load_average_after_appends", "load_average_after_verify", "load_average_at_end")
        return " / ".join(f"{r[k][0]:.1f}" for k in keys)

    rows: list[tuple[str, list[str], str]] = [
        ("hashes / signatures", col(lambda r: f"{r['tree_hash']} / {r['signature']}"), ""),
        (
            "durable single appends/s, median of rounds",
            col(lambda r: r["durable_single_appends"]["median"]),
            "≥ 2,000",
        ),
        (
            "  per round",
            col(lambda r: " ".join(map(str, r["durable_single_appends"]["rounds"]))),
            "",
        ),
        (
            "  1-row durable SQLite commits/s, between rounds",
            col(
                lambda r: " ".join(
                    map(
                        str,
                        r["durable_single_appends"]["one_row_sqlite_commits_per_s_between_rounds"],
                    )
                )
            ),
            "",
        ),
        (
            "  CPU per durable append, user / system (µs)",
            col(
                lambda r: (
                    f"{r['durable_single_appends']['user_cpu_us_per_append']} / "
                    f"{r['durable_single_appends']['system_cpu_us_per_append']}"
                )
            ),
            "",
        ),
        (
            f"durable batched appends/s (batch {args.batch})",
            col(lambda r: r["durable_batched_appends_per_s"]),
            "",
        ),
        ("group-commit appends/s, 1 writer", col(group(1)), "≥ 1,500"),
        (
            "  1 writer alternating: own transaction / group commit, median",
            col(lambda r: f"{r['single_vs_group']['own_transaction_median']} / "
                          f"{r['single_vs_group']['group_commit_median']}"),
            "≥ 1,500",
        ),
        (f"group-commit appends/s, {args.writers} writers", col(group(args.writers)), "≥ 5,000"),
        ("build the log (s)", col(lambda r: r["build_s"]), ""),
        ("export (s)", col(lambda r: r["export_s"]), ""),
        (f"verify {args.entries:,} entries (s)", col(lambda r: r["verify_s"]), "< 30 for 1M"),
        ("verify CPU time, all processes (s)", col(lambda r: r["verify_cpu_s"]), ""),
        ("verify --integrity-only (s)", col(lambda r: r["verify_integrity_only_s"]), ""),
        (
            "verify --integrity-only CPU time (s)",
            col(lambda r: r["verify_integrity_only_cpu_s"]),
            "",
        ),
        (
            "inclusion proof median / p99 / max (ms)",
            col(
                lambda r: (
                    f"{r['inclusion_proof_ms']['median']} / {r['inclusion_proof_ms']['p99']} / "
                    f"{r['inclusion_proof_ms']['max']}"
                )
            ),
            "< 2",
        ),
        (
            "  CPU time median / p99 (ms)",
            col(
                lambda r: (
                    f"{r['inclusion_proof_ms']['cpu_median']} / {r['inclusion_proof_ms']['cpu_p99']}"
                )
            ),
            "",
        ),
        (
            "consistency proof median / p99 (ms)",
            col(
                lambda r: (
                    f"{r['consistency_proof_ms']['median']} / {r['consistency_proof_ms']['p99']}"
                )
            ),
            "",
        ),
        (
            "inclusion proof check median (ms)",
            col(lambda r: r["inclusion_verify_ms"]["median"]),
            "",
        ),
        ("root at full size (ms)", col(lambda r: r["root_ms"]), ""),
        ("sign a checkpoint, median (ms)", col(lambda r: r["checkpoint_sign_ms"]), ""),
        (
            "check a checkpoint signature, median (ms)",
            col(lambda r: r["checkpoint_signature_check_ms"]),
            "",
        ),
        ("load average: appends / verify / end", col(loads), ""),
    ]
    width = max(len(r[0]) for r in rows)
    vw = max(24, *(len(v) for r in rows for v in r[1]))
    print(
        f"raw fsync/s {results['fsync_per_s']:,}; raw WAL-like fdatasync/s "
        f"{results['wal_like_fdatasync_per_s']:,}; load average at start "
        f"{results['load_average_at_start'][0]:.1f}"
    )
    print(f"{'measure':<{width}}  " + "  ".join(f"{p:>{vw}}" for p in profiles) + "  target")
    for name, values, target in rows:
        print(f"{name:<{width}}  " + "  ".join(f"{v:>{vw}}" for v in values) + f"  {target}")

    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    print()
    for p in profiles:
        r = per[p]
        single = r["durable_single_appends"]
        floor = round(statistics.median(single["one_row_sqlite_commits_per_s_between_rounds"]))
        print(
            f"TARGET [{p}] durable single appends: {single['median']:,}/s median of"
            f" {len(single['rounds'])} rounds (best round {single['best_round']:,}/s; a 1-row"
            f" durable SQLite commit {floor:,}/s) >= 2,000: {verdict(single['median'] >= 2000)}"
        )
        for writers, target in ((1, 1500), (args.writers, 5000)):
            g = r[f"group_commit_{writers}"]
            print(
                f"TARGET [{p}] group-commit durable appends, {writers} writer(s): {g['per_s']:,}/s"
                f" ({g['appends_per_commit']} per commit) >= {target:,}: {verdict(g['per_s'] >= target)}"
            )
        if "verify_s" not in r:
            continue
        inc = r["inclusion_proof_ms"]
        print(
            f"TARGET [{p}] verify {r['entries']:,} entries: {r['verify_s']} s wall"
            f" ({r['verify_cpu_s']} s CPU, workers {r['verify_workers']})"
            f" < 30 s: {verdict(r['verify_s'] < 30)}"
        )
        print(
            f"TARGET [{p}] inclusion proof at {r['entries']:,}: median {inc['median']} ms,"
            f" p99 {inc['p99']} ms (CPU p99 {inc['cpu_p99']} ms) < 2 ms: {verdict(inc['p99'] < 2)}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
