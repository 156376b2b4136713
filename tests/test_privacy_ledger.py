"""sandbox.governance.ledger: per-approval budget with ρ, old stores migrated, global caps per version."""

from __future__ import annotations

import pytest

from privacy import Charge
from privacy.accounting import Totals, spent
from sandbox.errors import BudgetExceeded
from sandbox.governance import datasets, ledger
from sandbox.service.operations import SandboxAdmin
from sandbox.store.migrations import MIGRATIONS
from sandbox.store.users import find_user
from sandbox.store.workspace import DB_NAME, Workspace, connect, transaction


def new_approval(sb, *, epsilon_total=10.0, delta_total=1e-6, per_query=1.0, scope=None) -> int:
    admin = SandboxAdmin(sb)
    conn = sb.conn()
    researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
    app_id = admin.apply(researcher, {"datasets": ["residents", "clinic_visits"], "scenario": "ledger test",
                                      "purpose": "testing the ledger", "commitment_accepted": True})
    return admin.approve(owner, app_id, {"datasets": ["residents", "clinic_visits"], **(scope or {})},
                         epsilon_total=epsilon_total, delta_total=delta_total, epsilon_per_query=per_query)


def add_query_row(conn, query_id: str, approval_id: int) -> None:
    user = conn.execute("SELECT researcher_id FROM approvals WHERE id = ?", (approval_id,)).fetchone()[0]
    conn.execute("INSERT INTO queries (id, approval_id, user_id, sql, status, created_at) "
                 "VALUES (?, ?, ?, 'SELECT 1', 'released', '2026-01-01T00:00:00Z')", (query_id, approval_id, user))


def spend(sb, approval_id: int, n: int, c: Charge, versions=()) -> ledger.Budget:
    conn = sb.conn()
    b = None
    with transaction(conn):
        for i in range(n):
            qid = f"q_{approval_id}_{i}_{c.epsilon}"
            add_query_row(conn, qid, approval_id)
            b = ledger.charge(conn, approval_id, qid, c.epsilon, c.delta, rho=c.rho, rho_delta=c.rho_delta,
                              now=sb.now, dataset_versions=versions)
    return b


def test_opening_a_store_of_schema_1_migrates_its_ledger(tmp_path):
    """The ledger trusts the migrations: a store from before migration 2 (no ρ, no pure-ε
    flag, no links to dataset versions) gets them when opened, and its old charges, without
    a zCDP bound, count by basic composition."""
    conn = connect(tmp_path / DB_NAME)
    with transaction(conn):
        for statement in MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO users (id, username, role, password_hash, created_at) VALUES "
                     "(1, 'r', 'researcher', 'x', 't'), (2, 'o', 'owner', 'x', 't')")
        conn.execute("INSERT INTO applications (id, researcher_id, request_json, scenario, purpose, "
                     "commitment_accepted, status, created_at) VALUES (1, 1, '{}', 's', 'p', 1, 'approved', 't')")
        conn.execute("INSERT INTO approvals (id, application_id, researcher_id, owner_id, scope_json, epsilon_total, "
                     "delta_total, epsilon_per_query, created_at) VALUES (1, 1, 1, 2, '{\"pure_dp\": true}', 3, 0.0001, 1, 't')")
        for i, eps in enumerate((0.5, 0.25)):
            conn.execute("INSERT INTO queries (id, approval_id, user_id, sql, status, created_at) "
                         "VALUES (?, 1, 1, 'SELECT 1', 'released', 't')", (f"q{i}",))
            conn.execute("INSERT INTO ledger (approval_id, query_id, epsilon, delta, created_at) "
                         "VALUES (1, ?, ?, 0, 't')", (f"q{i}", eps))
    conn.close()
    ws = Workspace.open(tmp_path)
    conn = ws.connect()
    assert {"rho", "rho_delta"} <= {r[1] for r in conn.execute("PRAGMA table_info(ledger)")}
    assert "pure_dp" in {r[1] for r in conn.execute("PRAGMA table_info(approvals)")}
    assert conn.execute("SELECT COUNT(*) FROM ledger_datasets").fetchone()[0] == 0
    b = ledger.budget(conn, 1)
    assert b.pure_dp and b.route == "basic" and b.releases == 2
    assert b.epsilon_spent == pytest.approx(0.75) and b.totals.other_epsilon == pytest.approx(0.75)


def test_small_per_query_cap_fixes_the_zcdp_route(demo):
    sb, _ = demo
    aid = new_approval(sb, epsilon_total=3.0, per_query=0.01)  # route from the terms: zcdp
    b = spend(sb, aid, 400, Charge(0.01, 0.0, 0.01**2 / 2))
    assert b.route == "zcdp" and b.accounting.route == "zcdp"
    expected = spent(Totals.of([Charge(0.01, 0.0, 0.5e-4)] * 400), 1e-6, route="zcdp")
    assert b.epsilon_spent == pytest.approx(expected.epsilon)
    assert b.epsilon_spent < 4.0 - 1e-6 and b.rho_spent == pytest.approx(0.02)
    # Basic composition would refuse this query (4.0 + 0.01 > 3); the zCDP filter affords it.
    ledger.ensure_affordable(b, 0.01, 0.0, rho=0.5e-4)
    with pytest.raises(BudgetExceeded):
        ledger.ensure_affordable(b, 2.5, 0.0)  # no ρ: (2.5²/2)-zCDP is beyond ρ_T


def test_large_per_query_cap_fixes_the_basic_route_whatever_is_asked(demo):
    """The route is not re-chosen from the history: many small releases on a basic-route
    approval stay on basic composition (the old min-of-routes would have switched)."""
    sb, _ = demo
    aid = new_approval(sb, epsilon_total=3.0, per_query=1.0)
    b = spend(sb, aid, 299, Charge(0.01, 0.0, 0.01**2 / 2))
    assert b.route == "basic" and b.epsilon_spent == pytest.approx(2.99)
    ledger.ensure_affordable(b, 0.01, 0.0, rho=0.5e-4)
    with pytest.raises(BudgetExceeded):
        ledger.ensure_affordable(b, 0.02, 0.0, rho=2e-4)


def test_pure_approval_never_uses_zcdp(demo):
    sb, _ = demo
    aid = new_approval(sb, epsilon_total=3.0, scope={"pure_dp": True})
    b = spend(sb, aid, 100, Charge(0.01, 0.0, 0.5e-4))
    assert b.pure_dp and b.route == b.accounting.route == "basic" and b.epsilon_spent == pytest.approx(1.0)
    with pytest.raises(BudgetExceeded):
        ledger.ensure_affordable(b, 0.1, 1e-8)


def test_global_cap_across_approvals(demo):
    sb, _ = demo
    conn = sb.conn()
    version = datasets.get_version(conn, "residents").version_id
    with transaction(conn):
        ledger.set_global_cap(conn, version, 1.5, 1e-6, now=sb.now)
    a1, a2 = new_approval(sb), new_approval(sb)
    spend(sb, a1, 1, Charge(1.0, 0.0, 0.5), versions=[version])
    ledger.ensure_within_global_caps(conn, [version], Charge(0.5, 0.0, 0.125))
    with pytest.raises(BudgetExceeded) as err:
        ledger.ensure_within_global_caps(conn, [version], Charge(0.6, 0.0, 0.18))
    assert err.value.code == "dataset_budget_exceeded"  # the collusion cap (sandbox.governance.dataset_caps)
    spend(sb, a2, 1, Charge(0.5, 0.0, 0.125), versions=[version])
    (cap,) = ledger.version_caps(conn, [version])
    assert cap.totals.epsilon == pytest.approx(1.5) and cap.totals.releases == 2
    ledger.ensure_within_global_caps(conn, [version + 1000], Charge(5.0))  # uncapped version


def test_check_global_cap_pure_function():
    t = Totals.of([Charge(0.4, 0.0, 0.08)] * 2)
    ledger.check_global_cap(t, Charge(0.2, 0.0, 0.02), 1.0, 1e-6)
    with pytest.raises(BudgetExceeded):
        ledger.check_global_cap(t, Charge(0.3, 0.0, 0.045), 1.0, 1e-6)


def test_version_caps_lists_declared_caps_only(demo):
    """The demo's residents policy declares a cap; clinic_visits has the default (not listed)."""
    sb, _ = demo
    conn = sb.conn()
    residents = datasets.get_version(conn, "residents").version_id
    visits = datasets.get_version(conn, "clinic_visits").version_id
    assert [c.dataset_version_id for c in ledger.version_caps(conn, [residents, visits])] == [residents]
