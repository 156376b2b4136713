"""50 threads race to spend a budget good for exactly 10 queries.

The approval has ε_total = 1 and each query asks ε = 0.1 (OpenDP's map charges
0.0999999999997), so basic composition affords exactly 10; zCDP composition of ten
(ρ = 0.005 each) converts to ε ≈ 1.2 at δ = 1e-6 and cannot admit an eleventh. Each
thread has its own SQLite connection (``Sandbox.conn``) and its own SQL (no cache hits).
The charge, the release and the audit entry commit in one ``BEGIN IMMEDIATE``
transaction, so no two threads can both see the last 0.1 as free.
"""

from __future__ import annotations

import threading

import pytest

from sandbox.errors import BudgetExceeded
from sandbox.service.pipeline import QueryRequest
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.conftest import bearer
from tests.test_privacy_ledger import new_approval

THREADS = 50
AFFORDABLE = 10


def test_fifty_threads_spend_exactly_ten_releases(demo):
    sb, creds = demo
    aid = new_approval(sb, epsilon_total=1.0, delta_total=1e-6, per_query=0.1)
    user = find_user(sb.conn(), "researcher")
    start = threading.Barrier(THREADS)
    results: list[dict] = []
    refused: list[BudgetExceeded] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        start.wait()
        try:
            r = sb.run_query(user, QueryRequest(aid, f"SELECT COUNT(*) FROM residents WHERE age >= {i}", 0.1))
        except BudgetExceeded as err:
            with lock:
                refused.append(err)
        except BaseException as err:  # pragma: no cover - reported below
            with lock:
                errors.append(err)
        else:
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, [repr(e) for e in errors]
    assert (len(results), len(refused)) == (AFFORDABLE, THREADS - AFFORDABLE), [str(e) for e in refused[:3]]

    conn = sb.conn()
    ledger_rows = conn.execute("SELECT query_id, epsilon, delta FROM ledger WHERE approval_id = ?",
                               (aid,)).fetchall()
    audit_rows = conn.execute(
        "SELECT json_extract(entry, '$.details.query_id') AS q, json_extract(entry, '$.details.epsilon') AS e "
        "FROM audit_entries WHERE json_extract(entry, '$.action') = 'query.released' "
        "AND json_extract(entry, '$.details.approval_id') = ?", (aid,)).fetchall()
    released_ids = {r["query_id"] for r in results}
    assert {r["query_id"] for r in ledger_rows} == released_ids == {r["q"] for r in audit_rows}
    ledger_eps = sum(r["epsilon"] for r in ledger_rows)
    assert ledger_eps == pytest.approx(sum(r["e"] for r in audit_rows), abs=1e-12)
    assert ledger_eps == pytest.approx(sum(r["epsilon_spent"] for r in results), abs=1e-12)
    assert ledger_eps <= 1.0

    client = create_app(sb, {"TESTING": True}).test_client()
    b = client.get(f"/api/v1/approvals/{aid}/budget", headers=bearer(creds["researcher"]["token"]))
    assert b.status_code == 200, b.json
    assert b.json["releases"] == AFFORDABLE
    assert b.json["epsilon"]["spent"] == pytest.approx(ledger_eps, abs=1e-12)
    assert b.json["epsilon"]["remaining"] < 0.1  # and the eleventh is refused, also now:
    with pytest.raises(BudgetExceeded):
        sb.run_query(user, QueryRequest(aid, "SELECT COUNT(*) FROM residents WHERE age >= 99", 0.1))


def test_identical_queries_at_once_are_released_once(demo):
    """Eight threads send the same query together: one release and one charge; the
    others get that release from the cache (never an error)."""
    sb, _creds = demo
    aid = new_approval(sb, epsilon_total=5.0, delta_total=1e-6, per_query=0.5)
    user = find_user(sb.conn(), "researcher")
    start = threading.Barrier(8)
    results: list[dict] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        start.wait()
        try:
            r = sb.run_query(user, QueryRequest(aid, "SELECT district, COUNT(*) FROM residents GROUP BY district", 0.5))
        except BaseException as err:  # pragma: no cover - reported below
            with lock:
                errors.append(err)
        else:
            with lock:
                results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, [repr(e) for e in errors]
    assert len(results) == 8
    assert sum(not r["cached"] for r in results) == 1
    assert len({r["query_id"] for r in results}) == 1
    assert len({repr(r["rows"]) for r in results}) == 1
    conn = sb.conn()
    charged = conn.execute("SELECT COUNT(*) FROM ledger WHERE approval_id = ?", (aid,)).fetchone()[0]
    assert charged == 1
