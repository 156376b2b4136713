"""Engine worker processes (sandbox/engine/pool.py, docs/decisions/0005).

Results through the pool equal the in-process executor's; a query past its wall-clock or
memory limit gets its worker killed and replaced and a clear error; a crashed worker is
replaced; a timed-out query through the service is charged and logged (DESIGN.md).

The heavy queries are sent as engine SQL directly (the guard would refuse them) and were
chosen because DuckDB cannot stop them itself: ``regexp_replace`` over one long string
ignores ``interrupt()`` for its whole run (≈ 6 s for 30M characters on the CI machine),
and ``list_sort`` over one 6M-element list allocates ≈ 1 GB as fast as it can.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import query_guard
from sandbox.engine.embedded import EngineLimits
from sandbox.engine.execution import EngineRequest, engine_request
from sandbox.engine.pool import EngineBusy, EnginePool, PoolSettings, parse_size
from sandbox.errors import EngineFailure
from sandbox.governance import datasets, ledger, workflow
from sandbox.service.query_service import Sandbox
from sandbox.store.workspace import Workspace
from sandbox.web import create_app
from tests.conftest import bearer

ROOT = Path(__file__).parents[1]
TIMEOUT = 2.0  # the engine's own timeout in the module pool
GRACE = 1.0
MEMORY = 384 * 2**20
#: uninterruptible by DuckDB, ≈ 160 MB: only the parent's wall clock stops it
STUCK = "SELECT length(regexp_replace(repeat('ab', 15000000), '(a)(b)', '\\2\\1', 'g')) AS n"
#: interruptible (a join), so the engine's own timeout stops it without a kill
LONG_JOIN = "SELECT count(*) AS n FROM range(300000) a, range(300000) b WHERE (a.range * 7) % 13 = b.range % 11"
#: uninterruptible and allocating ≈ 1 GB within a second
GREEDY = "SELECT len(list_sort(range(6000000))) AS n"

SQL = [
    "SELECT district, COUNT(*) FROM residents GROUP BY district",
    "SELECT district, AVG(income) FROM residents WHERE age >= 30 GROUP BY district",
    "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department",  # bounded: keep column
    "SELECT department, AVG(cost) FROM clinic_visits GROUP BY department",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, demo_template) -> Workspace:
    root = tmp_path_factory.mktemp("pool") / "ws"
    shutil.copytree(demo_template, root)
    return Workspace.open(root)


@pytest.fixture(scope="module")
def local(workspace) -> Sandbox:
    return Sandbox(workspace)


@pytest.fixture(scope="module")
def pool(workspace):
    settings = PoolSettings(workers=2, grace_seconds=GRACE, query_memory_bytes=MEMORY, queue_timeout_seconds=1.0)
    with EnginePool(workspace.data_dir, workspace.keys_dir, EngineLimits(timeout_seconds=TIMEOUT), settings,
                    warm=datasets.latest_versions(workspace.connect())) as p:
        yield p


def requests_for(local: Sandbox) -> list[EngineRequest]:
    conn = local.conn()
    creds = json.loads((local.ws.root / "demo-credentials.json").read_text())
    approval = workflow.get_approval(conn, creds["researcher"]["approval_id"])
    assert approval is not None
    versions = [v for v in datasets.latest_versions(conn) if v.name in approval.scenario.datasets]
    catalog = datasets.build_catalog(versions)
    return [engine_request(query_guard.plan(sql, approval.scenario, catalog), versions) for sql in SQL]


def rows(table) -> list:
    return sorted(zip(*table.to_pydict().values(), strict=True), key=repr)


def test_results_equal_the_in_process_executor(pool, local):
    reqs = requests_for(local)
    assert any(r.keep is not None for r in reqs) and any(r.keep is None for r in reqs)
    for req in reqs:
        assert rows(pool.run(req)) == rows(local.executor.run(req))


def test_concurrent_requests_share_the_workers(pool, local):
    reqs = requests_for(local)
    expected = [rows(local.executor.run(r)) for r in reqs]
    got: dict[int, list] = {}

    def work(i: int) -> None:
        got[i] = rows(pool.run(reqs[i % len(reqs)]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got[i] == expected[i % len(reqs)] for i in range(12))


def test_a_query_past_its_wall_clock_is_killed_and_its_worker_replaced(pool):
    before = set(pool.pids())
    started = time.monotonic()
    with pytest.raises(EngineFailure) as err:
        pool.run(EngineRequest((), STUCK))
    elapsed = time.monotonic() - started
    assert err.value.code == "query_timeout" and err.value.http_status == 408
    assert err.value.message == f"the query ran longer than {TIMEOUT:g} s and was stopped"
    assert TIMEOUT + GRACE <= elapsed < TIMEOUT + GRACE + 3
    assert len(set(pool.pids()) - before) == 1, "one worker was replaced"
    assert pool.run(EngineRequest((), "SELECT 42 AS x")).to_pydict() == {"x": [42]}


def test_the_engines_own_timeout_needs_no_kill(pool):
    before = pool.pids()
    with pytest.raises(EngineFailure) as err:
        pool.run(EngineRequest((), LONG_JOIN))
    assert err.value.code == "query_timeout"
    assert pool.pids() == before


def test_a_query_past_its_memory_limit_is_killed_and_replaced(pool):
    before = set(pool.pids())
    with pytest.raises(EngineFailure) as err:
        pool.run(EngineRequest((), GREEDY))
    assert err.value.code == "query_memory_limit" and err.value.http_status == 422
    assert "384 MiB" in err.value.message
    assert len(set(pool.pids()) - before) == 1
    assert pool.run(EngineRequest((), "SELECT 1 AS x")).to_pydict() == {"x": [1]}


def test_engine_errors_are_generic_and_keep_the_worker(pool):
    before = pool.pids()
    with pytest.raises(EngineFailure) as err:
        pool.run(EngineRequest((), "SELECT CAST('secret-370102' AS INTEGER)"))
    assert err.value.code == "engine_error"
    assert "secret" not in err.value.message and "370102" not in err.value.message
    assert pool.pids() == before


def test_busy_pool_refuses_in_time_and_crashed_workers_are_replaced(pool):
    failures: list[BaseException] = []

    def stuck() -> None:
        try:
            pool.run(EngineRequest((), STUCK))
        except EngineFailure as exc:
            failures.append(exc)

    threads = [threading.Thread(target=stuck) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while pool.idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(EngineBusy) as busy:  # both workers taken: a bounded wait, not charged
        pool.run(EngineRequest((), "SELECT 1"))
    assert busy.value.http_status == 503 and not isinstance(busy.value, EngineFailure)
    for pid in pool.pids():
        os.kill(pid, 9)  # as the kernel's OOM killer would
    for t in threads:
        t.join(timeout=10)
    assert [(f.code, f.message) for f in failures] == [("engine_error", "the query could not be executed by the engine")] * 2
    assert pool.run(EngineRequest((), "SELECT 7 AS x")).to_pydict() == {"x": [7]}


def test_a_worker_killed_while_idle_is_replaced_without_a_failure(pool):
    victim = pool.pids()[0]
    os.kill(victim, 9)
    time.sleep(0.2)
    for _ in range(3):  # whichever worker is picked, no failure: nothing had run on it
        assert pool.run(EngineRequest((), "SELECT 3 AS x")).to_pydict() == {"x": [3]}
    assert victim not in pool.pids()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_workers_exit_when_the_server_process_dies(workspace):
    code = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from sandbox.engine.pool import EnginePool, PoolSettings
        pool = EnginePool(Path({str(workspace.data_dir)!r}), Path({str(workspace.keys_dir)!r}),
                          settings=PoolSettings(workers=1))
        print(*pool.pids(), flush=True)
        time.sleep(120)
    """)
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=ROOT, text=True) as server:
        try:
            pids = [int(p) for p in server.stdout.readline().split()]  # type: ignore[union-attr]
            assert pids and not any(_gone(p) for p in pids)
        finally:
            server.kill()  # SIGKILL: no clean-up code runs in the server
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in pids)


def test_parse_size():
    assert parse_size("4GB") == 4 * 10**9 and parse_size("512MiB") == 512 * 2**20
    with pytest.raises(ValueError):
        parse_size("lots")


def test_a_timed_out_query_is_charged_logged_and_answered_as_a_generic_failure(workspace, monkeypatch):
    """PRIVACY (issue 12): a timeout after the charge may depend on the data, so the caller
    gets the one generic ``query_failed``; the charge stands and the log has the failure."""
    from sandbox.service import pipeline

    creds = json.loads((workspace.root / "demo-credentials.json").read_text())
    approval = creds["researcher"]["approval_id"]
    sb = Sandbox(workspace, limits=EngineLimits(timeout_seconds=0.5), pool=PoolSettings(workers=1, grace_seconds=0.5))
    try:
        pids = sb.executor.pids()  # type: ignore[union-attr]
        monkeypatch.setattr(pipeline, "engine_request", lambda plan, used, **_: EngineRequest(tuple(used), STUCK))
        monkeypatch.setattr(pipeline, "check_on_empty", lambda engine, req: None)  # reach the pool
        client = create_app(sb, {"TESTING": True}).test_client()
        spent = ledger.budget(sb.conn(), approval).epsilon_spent
        r = client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]),
                        json={"approval_id": approval, "epsilon": 0.5,
                              "sql": "SELECT district, COUNT(*) FROM residents GROUP BY district"})
        assert r.status_code == 500
        assert r.json["error"]["code"] == "query_failed"
        assert "charge stands" in r.json["error"]["message"] and "0.5 s" not in r.json["error"]["message"]
        conn = sb.conn()
        row = conn.execute("SELECT id, status, error_code, epsilon FROM queries ORDER BY created_at DESC, rowid DESC "
                           "LIMIT 1").fetchone()
        assert (row["status"], row["error_code"]) == ("failed", "query_failed")
        # PRIVACY (DESIGN.md): a failure after execution started is charged, and logged
        assert ledger.budget(conn, approval).epsilon_spent == pytest.approx(spent + row["epsilon"])
        assert row["epsilon"] > 0
        entry = json.loads(conn.execute(
            "SELECT entry FROM audit_entries WHERE json_extract(entry, '$.action') = 'query.failed' "
            "ORDER BY seq DESC LIMIT 1").fetchone()[0])
        assert entry["details"]["query_id"] == row["id"] and entry["details"]["code"] == "query_failed"
    finally:
        sb.close()
    assert sb.executor.pids() == []  # type: ignore[union-attr]
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids)


def test_the_log_replays_to_the_ledger_through_timeouts_and_worker_kills(workspace, monkeypatch):
    """Issue 12, "budget arithmetic in any failure mode", with real worker processes: a
    release, a timeout, a worker killed with SIGKILL mid-query and another release; every
    request that reached the data is charged and logged, and replay equals the ledger."""
    import signal

    from audit_log.replay import compare_with_ledger, replay
    from sandbox.service import pipeline
    from sandbox.service.operations import SandboxAdmin
    from sandbox.service.pipeline import QueryFailed, QueryRequest
    from sandbox.store.ledger_sums import approval_sums
    from sandbox.store.users import find_user

    sb = Sandbox(workspace, limits=EngineLimits(timeout_seconds=2.0), pool=PoolSettings(workers=1, grace_seconds=0.5))
    try:
        conn = sb.conn()
        researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
        admin = SandboxAdmin(sb)
        app = admin.apply(researcher, {"datasets": ["residents"], "scenario": "replay under failures",
                                       "purpose": "test", "commitment_accepted": True})
        aid = admin.approve(owner, app, {"datasets": ["residents"]}, epsilon_total=5.0, delta_total=1e-6,
                            epsilon_per_query=0.5)
        sb.run_query(researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age > 20", 0.1))
        real_request = pipeline.engine_request
        monkeypatch.setattr(pipeline, "engine_request", lambda plan, used, **_: EngineRequest(tuple(used), STUCK))
        monkeypatch.setattr(pipeline, "check_on_empty", lambda engine, req: None)
        with pytest.raises(QueryFailed):  # the wall clock: killed by the parent, charged
            sb.run_query(researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age > 21", 0.1))
        failures: list[BaseException] = []

        def stuck() -> None:
            try:
                sb.run_query(researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age > 22", 0.1))
            except BaseException as err:  # noqa: BLE001 - checked below
                failures.append(err)

        thread = threading.Thread(target=stuck)
        thread.start()
        time.sleep(0.8)
        for pid in sb.executor.pids():  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)  # the worker dies mid-query
        thread.join(timeout=60)
        assert [type(e) for e in failures] == [QueryFailed]
        monkeypatch.setattr(pipeline, "engine_request", real_request)
        sb.run_query(researcher, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age > 23", 0.1))
        log = [json.loads(r[0]) for r in conn.execute("SELECT entry FROM audit_entries ORDER BY seq")]
        mine = [e["action"] for e in log if e["details"].get("approval_id") == aid and e["action"].startswith("query.")]
        assert mine == ["query.started", "query.released", "query.started", "query.failed",
                        "query.started", "query.failed", "query.started", "query.released"]
        report = replay(log)
        assert report["inconsistencies"] == []
        assert compare_with_ledger(report, approval_sums(conn)) == []
        assert ledger.budget(conn, aid).epsilon_spent == pytest.approx(0.4)
    finally:
        sb.close()
