"""`sandbox demo` as a real subprocess on a free port, driven over real HTTP (issue: foundation)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.slow

ROWS = 20_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo-subprocess")
    port = free_port()
    log_path = Path(data_dir) / "server.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "demo", "--data-dir", str(data_dir), "--port", str(port),
         "--rows", str(ROWS)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("sandbox demo exited early:\n" + log_path.read_text())
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError("sandbox demo did not start in 120 s")
    creds = json.loads((Path(data_dir) / "demo-credentials.json").read_text())
    yield url, creds, data_dir
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


def test_credentials_file_has_the_documented_shape(server):
    url, creds, _ = server
    assert creds["url"] == url
    for role in ("researcher", "owner", "regulator"):
        assert set(creds[role]) >= {"username", "password", "token"}
    assert isinstance(creds["researcher"]["approval_id"], int)


def _truth(data_dir):
    """Exact answers straight from the stored data (test oracle only)."""
    from sandbox.governance.datasets import latest_versions
    from sandbox.service.query_service import Sandbox
    from sandbox.store.workspace import Workspace

    sb = Sandbox(Workspace.open(data_dir))
    return {v.name: sb.tables.get(v) for v in latest_versions(sb.conn())}


def test_answers_near_truth_budget_and_audit_over_http(server):
    url, creds, data_dir = server
    r = creds["researcher"]
    h = {"Authorization": f"Bearer {r['token']}"}
    tables = _truth(data_dir)
    true_count = tables["residents"].num_rows
    inside = 0
    runs = 20
    spent0 = requests.get(f"{url}/api/v1/approvals/{r['approval_id']}/budget", headers=h).json()["epsilon"]["spent"]
    total = 0.0
    for i in range(runs):
        body = {"approval_id": r["approval_id"], "epsilon": 0.2 + i * 1e-6, "sql": "SELECT COUNT(*) FROM residents"}
        resp = requests.post(f"{url}/api/v1/queries", json=body, headers=h, timeout=30)
        assert resp.status_code == 200, resp.text
        out = resp.json()
        lo, hi = out["accuracy"][out["columns"][0]]["intervals"][0]
        inside += lo <= true_count <= hi
        total += out["epsilon_spent"]
        assert out["receipt"]["log_index"] >= 0
    assert inside >= runs * 0.8  # 95% intervals: at least 16 of 20 (fails with p < 0.002)
    spent1 = requests.get(f"{url}/api/v1/approvals/{r['approval_id']}/budget", headers=h).json()["epsilon"]["spent"]
    assert spent1 == pytest.approx(spent0 + total, abs=1e-9)
    for sql in ("SELECT district, COUNT(*) FROM residents GROUP BY district",
                "SELECT district, AVG(income) FROM residents GROUP BY district",
                "SELECT COUNT(*) FROM clinic_visits",
                "SELECT department, AVG(cost) FROM clinic_visits GROUP BY department"):
        resp = requests.post(f"{url}/api/v1/queries", json={"approval_id": r["approval_id"], "sql": sql, "epsilon": 0.1},
                             headers=h, timeout=30)
        assert resp.status_code == 200, resp.text
    # Over budget: a query needing more than is left is refused, nothing released or charged.
    left = requests.get(f"{url}/api/v1/approvals/{r['approval_id']}/budget", headers=h).json()["epsilon"]["remaining"]
    while left >= 1.0:
        resp = requests.post(f"{url}/api/v1/queries", headers=h, timeout=30, json={
            "approval_id": r["approval_id"], "epsilon": 1.0, "sql": f"SELECT COUNT(*) FROM residents WHERE age > {left:.0f}"})
        assert resp.status_code == 200, resp.text
        left = resp.json()["budget"]["epsilon"]["remaining"]
    resp = requests.post(f"{url}/api/v1/queries", headers=h, timeout=30, json={
        "approval_id": r["approval_id"], "epsilon": 1.0, "sql": "SELECT COUNT(*) FROM residents WHERE age < 30"})
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "budget_exceeded"
    after = requests.get(f"{url}/api/v1/approvals/{r['approval_id']}/budget", headers=h).json()
    assert after["epsilon"]["remaining"] == pytest.approx(left)
    # One audit entry per release: the regulator's view of the log agrees with the ledger.
    from sandbox.service.query_service import Sandbox
    from sandbox.store.workspace import Workspace

    conn = Sandbox(Workspace.open(data_dir)).conn()
    releases = conn.execute("SELECT COUNT(*) FROM audit_entries WHERE action = 'query.released'").fetchone()[0]
    assert releases == after["releases"]
