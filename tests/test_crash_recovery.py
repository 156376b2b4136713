"""Crash recovery with real processes and SIGKILL (DESIGN.md invariant: a crash at any point
leaves a release's charge, its audit entry and the release itself all committed, or none).

a. ``sandbox serve`` is killed with SIGKILL while client threads stream queries (new
   releases, cached repeats, refusals), restarted, killed again; after the second restart
   every response a client received has its ``query.released`` entry (same query id, leaf
   hash, SQL, ε and released rows), the log verifies with the public key, the ledger holds
   exactly the logged charges (``sandbox audit replay --data-dir`` and per query id), no
   released query lacks its charge or entry, the budget endpoint agrees, and the server
   releases again.
b. ``sandbox backup`` is killed with SIGKILL while it writes its archive (the server streaming
   queries meanwhile): nothing appears at OUT, and ``sandbox restore`` refuses the partial
   archive, and truncated copies of a complete one, with exit 1 and a message naming the
   damage, leaving the target untouched even with ``--force``. A complete backup taken
   afterwards removes the killed one's scratch folder, restores, verifies with the key kept
   outside it, replays against its own ledger, is a byte-for-byte prefix of the live log,
   and serves.
c. That scratch clean-up touches only this host's folders whose process is gone.

Timing never decides a verdict: the tests wait for readiness and for progress by polling,
with generous deadlines, and assert invariants only.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.slow

ROWS = 2_000
START_TIMEOUT = 90.0  # seconds for a server to answer /healthz (a loaded 2-core CI machine)
CLI_TIMEOUT = 180.0
RELEASES_PER_ROUND = 30  # responses to collect before each SIGKILL
STREAM_THREADS = 4
SQL_TEMPLATES = (
    "SELECT COUNT(*) FROM residents WHERE age > {k}",
    "SELECT district, AVG(income) FROM residents WHERE age > {k} GROUP BY district",
    "SELECT department, COUNT(*) FROM clinic_visits WHERE cost > {k} GROUP BY department",
)
# Refused, logged, never charged; ``row_level_output`` does not count towards automatic
# suspension (only out-of-scope and identifier refusals do), so the stream can keep going.
REFUSED_SQL = "SELECT age FROM residents"


# -- processes ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sandbox.cli ARGS`` to completion."""
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"sandbox {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


class Server:
    """``sandbox serve`` as a subprocess on a free loopback port; ``kill()`` is SIGKILL."""

    def __init__(self, data_dir: Path, log_path: Path, threads: int = 4):
        self.data_dir, self.log_path, self.threads = data_dir, log_path, threads
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Server:
        for _attempt in range(3):  # another process may take the free port before we bind it
            port = free_port()
            self.url = f"http://127.0.0.1:{port}"
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "sandbox.cli", "serve", "--data-dir", str(self.data_dir),
                     "--port", str(port), "--threads", str(self.threads)],
                    stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            if self.proc.poll() is None:
                self.kill()
                raise AssertionError(f"sandbox serve did not answer in {START_TIMEOUT:.0f} s:\n"
                                     + self.log_path.read_text(errors="replace"))
            if "in use" not in self.log_path.read_text(errors="replace"):
                break
        raise AssertionError("sandbox serve exited early:\n" + self.log_path.read_text(errors="replace"))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: no shutdown hook, no final checkpoint
        if self.proc is not None:
            self.proc.wait(timeout=30)


# -- clients --------------------------------------------------------------------------------
@dataclass
class Received:
    """What clients were told: every 200 answer, and everything else by status."""

    releases: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    broken: int = 0  # requests cut off (normally by the SIGKILL)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fresh(self) -> int:
        with self.lock:
            return sum(not r["cached"] for r in self.releases)


_unique = itertools.count(1)  # next() on a count is atomic in CPython


def stream(url: str, token: str, approval: int, worker: int, stop: threading.Event,
           got: Received) -> None:
    """Send queries until told to stop or the server goes away.

    Each new release has its own ε (a unique sixth decimal), so the release cache never
    answers it; every fifth request repeats this worker's last release (a cached answer)
    and every seventh is refused.
    """
    session = requests.Session()
    h = {"Authorization": f"Bearer {token}"}
    last: dict[str, Any] | None = None
    for i in itertools.count():
        if stop.is_set():
            break
        if i % 7 == 6:
            body = {"approval_id": approval, "sql": REFUSED_SQL, "epsilon": 0.01}
        elif i % 5 == 4 and last is not None:
            body = last
        else:
            n = next(_unique)
            sql = SQL_TEMPLATES[(worker + i) % len(SQL_TEMPLATES)].format(k=(worker * 13 + i) % 80)
            body = {"approval_id": approval, "sql": sql, "epsilon": round(0.01 + n * 1e-6, 6)}
        try:
            r = session.post(url + "/api/v1/queries", json=body, headers=h, timeout=120)
        except requests.RequestException:
            with got.lock:
                got.broken += 1
            break
        with got.lock:
            got.statuses[r.status_code] = got.statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                out = r.json()
                got.releases.append({**out, "sql": body["sql"], "asked_epsilon": body["epsilon"]})
                if not out["cached"]:
                    last = body
            elif not (r.status_code == 400 and body["sql"] == REFUSED_SQL
                      and r.json()["error"]["code"] == "row_level_output"):
                got.unexpected.append(f"{r.status_code} {r.text[:300]}")
    session.close()


class Stream:
    """STREAM_THREADS client threads against one server."""

    def __init__(self, url: str, creds: dict[str, Any], got: Received):
        self.stop = threading.Event()
        r = creds["researcher"]
        self.threads = [
            threading.Thread(target=stream, args=(url, r["token"], r["approval_id"], w, self.stop, got),
                             daemon=True)
            for w in range(STREAM_THREADS)
        ]
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=180)
        assert not any(t.is_alive() for t in self.threads), "a client thread hung"


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- the log and the ledger -----------------------------------------------------------------
def export_and_verify(data_dir: Path, out_dir: Path, public_key: Path) -> list[bytes]:
    """``sandbox audit export`` + ``sandbox audit verify --public-key``; the exported lines."""
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "audit.jsonl"
    cli("audit", "export", log, "--data-dir", data_dir)
    verified = cli("audit", "verify", log, "--public-key", public_key, "--json")
    report = json.loads(verified.stdout)
    lines = log.read_bytes().splitlines()
    assert report["entries"] == len(lines) > 0
    return lines


def replay_against_ledger(data_dir: Path, log: Path) -> dict[str, Any]:
    """``sandbox audit replay LOG --data-dir D``: exit 0, no inconsistency, no ledger difference."""
    proc = cli("audit", "replay", log, "--data-dir", data_dir, "--json", check=False)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["ok"], out
    assert out["inconsistencies"] == [] and out["ledger_differences"] == []
    return out


def charged_entries(lines: list[bytes], approval: int) -> dict[str, float]:
    """``{query_id: ε}`` of the logged releases and charged failures of one approval."""
    out = {}
    for line in lines:
        e = json.loads(line)
        charge = e["action"] == "query.started" or (  # logs from before charge-first:
            e["action"] in ("query.released", "query.failed") and "start_seq" not in e["details"])
        if charge and e["details"]["approval_id"] == approval:
            out[e["details"]["query_id"]] = float(e["details"]["epsilon"])
    return out


def read_only(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    return conn


def ledger_rows(data_dir: Path, approval: int) -> dict[str, float]:
    conn = read_only(data_dir / "sandbox.db")
    try:
        return {r["query_id"]: float(r["epsilon"]) for r in conn.execute(
            "SELECT query_id, epsilon FROM ledger WHERE approval_id = ?", (approval,))}
    finally:
        conn.close()


def assert_every_answer_logged(lines: list[bytes], releases: list[dict[str, Any]]) -> None:
    """No release without its entry: the receipt's log index holds this very release."""
    for out in releases:
        receipt = out["receipt"]
        seq = receipt["log_index"]
        assert seq < len(lines), f"receipt {receipt} points past the log ({len(lines)} entries)"
        line = lines[seq]
        assert hashlib.sha256(b"\x00" + line).hexdigest() == receipt["leaf_hash"]
        entry = json.loads(line)
        assert entry["seq"] == seq and entry["action"] == "query.released"
        details = entry["details"]
        assert details["query_id"] == out["query_id"] == receipt["query_id"]
        assert details["sql"] == out["sql"]
        assert details["rows"] == out["rows"] and details["columns"] == out["columns"]
        if not out["cached"]:
            assert details["epsilon"] == out["epsilon_spent"] == pytest.approx(out["asked_epsilon"])


def assert_ledger_equals_log(data_dir: Path, lines: list[bytes], approval: int) -> dict[str, float]:
    logged = charged_entries(lines, approval)
    ledger = ledger_rows(data_dir, approval)
    assert set(ledger) == set(logged), "a charge without its entry, or an entry without its charge"
    for query_id, epsilon in ledger.items():
        assert epsilon == pytest.approx(logged[query_id], abs=1e-12)
    conn = read_only(data_dir / "sandbox.db")
    try:  # no half-applied release: each released query has its charge and its entry
        orphans = conn.execute(
            "SELECT COUNT(*) FROM queries q WHERE q.status = 'released' AND (q.audit_seq IS NULL "
            "OR NOT EXISTS (SELECT 1 FROM ledger l WHERE l.query_id = q.id))").fetchone()[0]
    finally:
        conn.close()
    assert orphans == 0
    return logged


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A demo workspace built by the real command, copied by each test."""
    root = tmp_path_factory.mktemp("crash-template") / "ws"
    cli("demo", "--rows", ROWS, "--no-serve", "--data-dir", root)
    return root


@pytest.fixture
def workspace(template, tmp_path) -> tuple[Path, dict[str, Any], Path]:
    """(data dir, demo credentials, the log's public key in a PEM file kept outside it)."""
    data_dir = tmp_path / "ws"
    shutil.copytree(template, data_dir)
    creds = json.loads((data_dir / "demo-credentials.json").read_text())
    public_key = tmp_path / "log-key.pem"
    public_key.write_text(cli("keys", "public", "--data-dir", data_dir).stdout)
    return data_dir, creds, public_key


# -- a. SIGKILL during a query stream --------------------------------------------------------
def test_sigkill_during_a_query_stream_loses_no_logged_release(workspace, tmp_path):
    data_dir, creds, public_key = workspace
    approval = creds["researcher"]["approval_id"]
    token = creds["researcher"]["token"]
    server = Server(data_dir, tmp_path / "serve.log")
    got = Received()
    try:
        for round_ in range(2):
            server.start()
            clients = Stream(server.url, creds, got)
            target = RELEASES_PER_ROUND * (round_ + 1)
            wait_for(lambda target=target: got.fresh() >= target, f"{target} releases")
            server.kill()  # mid-stream: the clients are sending as fast as they are answered
            clients.join()
        assert not got.unexpected, got.unexpected[:5]
        assert got.statuses.get(400, 0) > 0 and any(r["cached"] for r in got.releases)

        server.start()  # recovery: the server opens the workspace after two SIGKILLs
        lines = export_and_verify(data_dir, tmp_path / "export", public_key)
        replay_against_ledger(data_dir, tmp_path / "export" / "audit.jsonl")
        assert_every_answer_logged(lines, got.releases)
        logged = assert_ledger_equals_log(data_dir, lines, approval)
        fresh = {r["query_id"] for r in got.releases if not r["cached"]}
        assert fresh <= set(logged)  # the rest were committed but cut off before the answer
        assert len(logged) - len(fresh) <= 2 * STREAM_THREADS  # at most one in flight per client

        h = {"Authorization": f"Bearer {token}"}
        budget = requests.get(f"{server.url}/api/v1/approvals/{approval}/budget", headers=h,
                              timeout=60).json()
        assert budget["releases"] == len(logged)
        assert budget["accounting"]["basic"]["epsilon"] == pytest.approx(sum(logged.values()), abs=1e-9)
        assert budget["epsilon"]["spent"] <= budget["epsilon"]["total"] + 1e-9

        # and it serves again: a new release, logged after everything before the crash
        again = requests.post(f"{server.url}/api/v1/queries", headers=h, timeout=120, json={
            "approval_id": approval, "sql": "SELECT COUNT(*) FROM residents WHERE age < 40",
            "epsilon": 0.05})
        assert again.status_code == 200, again.text
        out = again.json()
        assert not out["cached"] and out["receipt"]["log_index"] >= len(lines)
        after = requests.get(f"{server.url}/api/v1/approvals/{approval}/budget", headers=h,
                             timeout=60).json()
        assert after["releases"] == len(logged) + 1
    finally:
        server.kill()


# -- b. SIGKILL during a backup ---------------------------------------------------------------
PADDING_BYTES = 32 << 20  # incompressible, so writing the archive takes a while
PARTIAL_AT_LEAST = 256 << 10


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # the backup finished and removed its scratch folder meanwhile
        return 0


def _restore_refused(archive: Path, target: Path, *extra: str) -> str:
    proc = cli("restore", "--data-dir", target, archive, *extra, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Aborted" not in proc.stderr
    return proc.stdout if "--json" in extra else proc.stderr


def test_sigkill_during_a_backup_is_refused_and_a_complete_backup_restores(
    template, workspace, tmp_path
):
    data_dir, creds, public_key = workspace
    approval = creds["researcher"]["approval_id"]
    (data_dir / "uploads").mkdir()
    (data_dir / "uploads" / "padding.bin").write_bytes(os.urandom(PADDING_BYTES))
    backups = tmp_path / "backups"
    backups.mkdir()
    out = backups / "ws.tar.gz"
    server = Server(data_dir, tmp_path / "serve.log")
    got = Received()
    backup_proc: subprocess.Popen[bytes] | None = None
    clients: Stream | None = None
    try:
        server.start()
        clients = Stream(server.url, creds, got)
        wait_for(lambda: got.fresh() >= 5, "the first releases")

        # 1. SIGKILL the backup while it writes its archive (queries streaming meanwhile)
        backup_proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.cli", "backup", "--data-dir", str(data_dir), str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        partial: Path | None = None
        deadline = time.monotonic() + CLI_TIMEOUT
        while backup_proc.poll() is None and time.monotonic() < deadline:
            found = [p for p in backups.glob(".sandbox-backup-*/backup.tar.gz")
                     if _size(p) >= PARTIAL_AT_LEAST]
            if found:
                backup_proc.kill()
                partial = found[0]
                break
            time.sleep(0.005)
        backup_proc.wait(timeout=60)
        cut = tmp_path / "killed.tar.gz"
        if partial is not None:
            assert backup_proc.returncode == -9
            assert not out.exists(), "a killed backup must leave nothing at OUT (atomic rename)"
            shutil.copyfile(partial, cut)
        else:  # the machine was fast enough to finish first: cut the finished archive instead
            assert backup_proc.returncode == 0 and out.exists()
            cut.write_bytes(out.read_bytes()[: out.stat().st_size // 3])
            out.unlink()

        # 2. a complete backup, taken while the queries go on
        report = json.loads(cli("backup", "--data-dir", data_dir, out, "--json").stdout)
        assert report["ok"] and out.exists() and (out.stat().st_mode & 0o777) == 0o600
        # it also removed the killed backup's scratch folder (store copy, partial archive)
        assert list(backups.glob(".sandbox-backup-*")) == []
        clients.join()  # stop streaming, then crash the server once more
    finally:
        if backup_proc is not None and backup_proc.poll() is None:
            backup_proc.kill()
            backup_proc.wait()
        server.kill()
        if clients is not None:
            clients.join()
    assert not got.unexpected, got.unexpected[:5]

    # 3. the partial archive is refused, clearly, and the target is left as it was
    fresh_target = tmp_path / "restored-partial"
    message = _restore_refused(cut, fresh_target)
    assert "truncated" in message and "interrupted or partial backup" in message
    victim = tmp_path / "victim"
    shutil.copytree(template, victim)
    before = tree_digest(victim)
    refused = json.loads(_restore_refused(cut, victim, "--force", "--json"))
    assert refused == {"ok": False, "code": "truncated_archive", "error": refused["error"]}
    assert tree_digest(victim) == before
    # truncated copies of the complete one too: empty, header only, half, one byte short
    from sandbox.store.backup_archive import BackupError, read_manifest
    from sandbox.store.restore import restore

    whole = out.read_bytes()
    for n, code in ((0, "bad_archive"), (100, "truncated_archive"),
                    (len(whole) // 2, "truncated_archive"), (len(whole) - 1, "truncated_archive")):
        damaged = tmp_path / f"cut-{n}.tar.gz"
        damaged.write_bytes(whole[:n])
        for target, force in ((fresh_target, False), (victim, True)):
            with pytest.raises(BackupError) as info:
                restore(damaged, target, force=force)
            assert info.value.code == code and str(damaged) in info.value.message
    assert not fresh_target.exists() and tree_digest(victim) == before
    leftovers = sorted(p.name for p in tmp_path.iterdir()
                       if p.name.startswith(("victim", ".victim", ".restored-partial")))
    assert leftovers == ["victim"], "nothing moved aside, no staging folder left"

    # 4. the complete backup restores (against the key kept outside it) and replays identically
    original = export_and_verify(data_dir, tmp_path / "original", public_key)
    restored_dir = tmp_path / "restored"
    cli("restore", "--data-dir", restored_dir, out, "--public-key", public_key)
    restored = export_and_verify(restored_dir, tmp_path / "restored-export", public_key)
    assert len(restored) == report["audit_size"]
    assert restored == original[: len(restored)], "the backup's log is a prefix of the live log"
    replay_against_ledger(restored_dir, tmp_path / "restored-export" / "audit.jsonl")
    logged = assert_ledger_equals_log(restored_dir, restored, approval)
    assert read_manifest(out)["ledger"][str(approval)]["epsilon"] == pytest.approx(sum(logged.values()), abs=1e-9)
    assert_every_answer_logged(
        restored, [r for r in got.releases if r["receipt"]["log_index"] < len(restored)])
    assert_every_answer_logged(original, got.releases)
    assert_ledger_equals_log(data_dir, original, approval)

    # 5. and the restored workspace serves
    server = Server(restored_dir, tmp_path / "serve-restored.log")
    try:
        server.start()
        h = {"Authorization": f"Bearer {creds['researcher']['token']}"}
        r = requests.post(f"{server.url}/api/v1/queries", headers=h, timeout=120, json={
            "approval_id": approval, "sql": "SELECT COUNT(*) FROM residents WHERE age < 30",
            "epsilon": 0.05})
        assert r.status_code == 200, r.text
        assert r.json()["receipt"]["log_index"] >= len(restored)
    finally:
        server.kill()


def test_only_stale_scratch_folders_of_this_host_are_removed(tmp_path):
    """The clean-up a backup does first must never touch a live backup's or a foreign folder."""
    import socket as _socket

    from sandbox.store.backup import SCRATCH_OWNER, SCRATCH_PREFIX, remove_stale_scratch

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process
    owners = {
        "stale": {"host": _socket.gethostname(), "pid": gone.pid},
        "live": {"host": _socket.gethostname(), "pid": os.getpid()},
        "foreign": {"host": _socket.gethostname() + "-elsewhere", "pid": gone.pid},
        "odd": ["not", "an", "owner"],
    }
    for name, owner in owners.items():
        (tmp_path / (SCRATCH_PREFIX + name)).mkdir()
        (tmp_path / (SCRATCH_PREFIX + name) / SCRATCH_OWNER).write_text(json.dumps(owner))
    (tmp_path / (SCRATCH_PREFIX + "unclaimed")).mkdir()
    (tmp_path / "unrelated").mkdir()
    assert remove_stale_scratch(tmp_path) == [tmp_path / (SCRATCH_PREFIX + "stale")]
    left = sorted(p.name.removeprefix(SCRATCH_PREFIX) for p in tmp_path.iterdir())
    assert left == ["foreign", "live", "odd", "unclaimed", "unrelated"]
