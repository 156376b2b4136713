"""The collusion cap (issue 12, finding 7): one total budget per dataset across all
researchers, approvals and versions — set by policy, API, console and CLI, only by the
dataset's owner, audit-logged, public on the transparency page, with a default."""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3

import pytest
from click.testing import CliRunner

from privacy import Charge
from sandbox.cli.main import cli
from sandbox.errors import BudgetExceeded, Forbidden, PolicyError
from sandbox.governance import dataset_caps, datasets, ledger
from sandbox.governance.policy import parse_policy
from sandbox.service.operations import SandboxAdmin
from sandbox.store.migrations import MIGRATIONS
from sandbox.store.users import find_user
from sandbox.store.workspace import transaction
from sandbox.web import create_app
from tests.conftest import bearer
from tests.test_workflow_support import audit_entries, permits_table

POLICY = """[dataset]
name = "permits"
title = "Business permits (test)"
owner = "owner"
tier = "conditional"
privacy_unit = "person_id"
one_row_per_unit = true
{cap}

[columns.person_id]
type = "int"

[columns.district]
type = "text"
public_values = ["历下区", "市中区", "槐荫区", "天桥区"]

[columns.fee]
type = "float"
bounds = [0, 1000]
"""


def policy(cap: str = "") -> str:
    return POLICY.format(cap=cap)


def add_version(sb, cap: str = "", *, seed: int = 6) -> datasets.DatasetVersion:
    admin = SandboxAdmin(sb)
    owner = find_user(sb.conn(), "owner")
    version = admin.add_dataset("permits", permits_table(seed=seed), policy(cap), actor=owner)
    admin.publish(owner, "permits", "test", regulator=find_user(sb.conn(), "regulator"))  # issue 14: co-signed
    return version


def new_approval(sb, researcher: str = "researcher", *, datasets_=("residents",), epsilon_total=5.0) -> int:
    admin = SandboxAdmin(sb)
    conn = sb.conn()
    r, owner = find_user(conn, researcher), find_user(conn, "owner")
    app_id = admin.apply(r, {"datasets": list(datasets_), "scenario": "cap test", "purpose": "testing the cap",
                             "commitment_accepted": True})
    expires = (sb.now() + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return admin.approve(owner, app_id, {"datasets": list(datasets_)}, epsilon_total=epsilon_total,
                         delta_total=1e-6, epsilon_per_query=1.0, expires_at=expires)


def charge(sb, approval_id: int, version_id: int, c: Charge, qid: str) -> None:
    conn = sb.conn()
    with transaction(conn):
        user = conn.execute("SELECT researcher_id FROM approvals WHERE id = ?", (approval_id,)).fetchone()[0]
        conn.execute("INSERT INTO queries (id, approval_id, user_id, sql, status, created_at) "
                     "VALUES (?, ?, ?, 'SELECT 1', 'released', '2026-01-01T00:00:00Z')", (qid, approval_id, user))
        ledger.charge(conn, approval_id, qid, c.epsilon, c.delta, rho=c.rho, rho_delta=c.rho_delta,
                      now=sb.now, dataset_versions=[version_id])


def set_cap(sb, name: str, epsilon: float, delta: float = 1e-5, reason: str = "test") -> dict:
    return dataset_caps.set_cap(sb, find_user(sb.conn(), "owner"), name,
                                {"epsilon_total": epsilon, "delta_total": delta, "reason": reason})


def query(client, token: str, approval_id: int, sql: str, epsilon: float = 1.0):
    return client.post("/api/v1/queries", json={"approval_id": approval_id, "sql": sql, "epsilon": epsilon},
                       headers=bearer(token))


# -- the policy file ------------------------------------------------------------------------------
@pytest.mark.parametrize("cap", ["budget_cap = {epsilon = 12, delta = 1e-6}",
                                 "[dataset.budget_cap]\nepsilon = 12\ndelta = 1e-6"])
def test_policy_declares_the_cap_inline_or_as_a_table(cap):
    assert parse_policy(policy(cap)).budget_cap == (12.0, 1e-6)
    assert parse_policy(policy()).budget_cap is None


@pytest.mark.parametrize("cap,message", [
    ("budget_cap = {epsilon = 12}", "delta is required"),
    ("budget_cap = {epsilon = 0, delta = 1e-6}", "epsilon must be above 0"),
    ("budget_cap = {epsilon = 5000, delta = 1e-6}", "at most 1000"),
    ("budget_cap = {epsilon = 5, delta = 0.5}", "at most 0.01"),
    ("budget_cap = {epsilon = 5, delta = 1e-6, rho = 1}", "unknown key"),
    ("budget_cap = 10", "must be a table"),
])
def test_policy_cap_errors_name_the_field_and_line(cap, message):
    with pytest.raises(PolicyError) as err:
        parse_policy(policy(cap), "p.toml")
    assert re.match(r"p\.toml:8: dataset\.budget_cap: ", err.value.message), err.value.message
    assert message in err.value.message


def test_demo_policy_sets_residents_and_clinic_visits_has_the_default(demo):
    sb, _ = demo
    residents = dataset_caps.status(sb.conn(), "residents")
    assert residents.cap.source == "policy" and residents.cap.epsilon_total == 30.0
    visits = dataset_caps.status(sb.conn(), "clinic_visits")
    assert visits.cap == dataset_caps.DEFAULT_CAP
    assert (visits.cap.epsilon_total, visits.cap.delta_total) == (20.0, 1e-5)


def test_set_via_policy_and_newest_decision_wins(demo):
    sb, _ = demo
    conn = sb.conn()
    v1 = add_version(sb, "budget_cap = {epsilon = 4, delta = 1e-6}")
    st = dataset_caps.status(conn, "permits")
    assert (st.cap.epsilon_total, st.cap.delta_total, st.cap.source, st.cap.version) == (4.0, 1e-6, "policy", 1)
    set_cap(sb, "permits", 3.0)  # the owner after version 1: in force
    assert dataset_caps.status(conn, "permits").cap.source == "owner"
    add_version(sb, seed=7)  # a version silent on the cap changes nothing
    assert dataset_caps.status(conn, "permits").cap.epsilon_total == 3.0
    v3 = add_version(sb, "budget_cap = {epsilon = 6, delta = 1e-6}", seed=8)  # a newer declaration wins
    st = dataset_caps.status(conn, "permits")
    assert (st.cap.epsilon_total, st.cap.version) == (6.0, 3)
    assert [c.source for c in dataset_caps.history(conn, "permits")] == ["policy", "owner", "policy"]
    # the registration hook logs a declared change with the cap before the version
    owner = find_user(conn, "owner")
    with transaction(conn):
        dataset_caps.log_policy_cap(sb, conn, owner, v3)
        dataset_caps.log_policy_cap(sb, conn, owner, v1)  # before version 1: the default
    (first, second) = audit_entries(sb, "dataset.budget_cap_set")[-2:]
    assert first["details"]["old"]["epsilon_total"] == 3.0 and first["details"]["new"]["epsilon_total"] == 6.0
    assert first["details"]["source"] == "policy" and first["details"]["version"] == 3
    assert second["details"]["old"]["source"] == "default"


# -- spent: across versions, researchers and approvals ----------------------------------------------
def test_cap_spans_versions(demo):
    sb, _ = demo
    conn = sb.conn()
    v1 = add_version(sb, "budget_cap = {epsilon = 2, delta = 1e-6}")
    a = new_approval(sb, datasets_=("permits",))
    charge(sb, a, v1.version_id, Charge(1.5), "q_v1")
    v2 = add_version(sb, seed=9)
    assert v2.version == 2
    st = dataset_caps.status(conn, "permits")
    assert st.epsilon_spent == pytest.approx(1.5) and st.releases == 1  # carried over
    dataset_caps.ensure_within(conn, [v2.version_id], Charge(0.5))
    with pytest.raises(BudgetExceeded) as err:
        dataset_caps.ensure_within(conn, [v2.version_id], Charge(0.6))
    assert err.value.code == "dataset_budget_exceeded"
    assert "'permits'" in err.value.message and "ε = 2" in err.value.message and "ε = 1.5" in err.value.message
    # the ledger's entry point (what the service calls) gives the same answer
    with pytest.raises(BudgetExceeded):
        ledger.ensure_within_global_caps(conn, [v2.version_id], Charge(0.6))


def test_delta_is_capped_too_and_a_zero_delta_cap_means_pure_dp_only(demo):
    sb, _ = demo
    conn = sb.conn()
    v = add_version(sb, "budget_cap = {epsilon = 10, delta = 0}")
    dataset_caps.ensure_within(conn, [v.version_id], Charge(1.0))
    with pytest.raises(BudgetExceeded):
        dataset_caps.ensure_within(conn, [v.version_id], Charge(0.1, 1e-9))


def test_two_researchers_are_stopped_together(demo):
    sb, creds = demo
    admin = SandboxAdmin(sb)
    _, token2 = admin.create_user("researcher2", "researcher", "researcher2-pass")
    a1, a2 = new_approval(sb), new_approval(sb, "researcher2")
    set_cap(sb, "residents", 1.5)
    client = create_app(sb, {"TESTING": True}).test_client()
    r = query(client, creds["researcher"]["token"], a1, "SELECT COUNT(*) FROM residents")
    assert r.status_code == 200, r.json
    r = query(client, token2, a2, "SELECT COUNT(*) FROM residents WHERE age > 30")
    assert r.status_code == 409 and r.json["error"]["code"] == "dataset_budget_exceeded", r.json
    assert "residents" in r.json["error"]["message"]
    r = query(client, token2, a2, "SELECT COUNT(*) FROM residents WHERE age > 30", epsilon=0.5)
    assert r.status_code == 200, r.json  # exactly at the cap
    assert dataset_caps.status(sb.conn(), "residents").epsilon_spent == pytest.approx(1.5)
    # the other dataset of the demo approval is not affected
    r = query(client, creds["researcher"]["token"], creds["researcher"]["approval_id"],
              "SELECT COUNT(*) FROM clinic_visits", epsilon=0.5)
    assert r.status_code == 200, r.json


def test_one_researcher_with_two_approvals_is_limited_in_total(demo):
    sb, creds = demo
    a1, a2 = new_approval(sb), new_approval(sb)
    set_cap(sb, "residents", 2.0)
    client = create_app(sb, {"TESTING": True}).test_client()
    token = creds["researcher"]["token"]
    assert query(client, token, a1, "SELECT COUNT(*) FROM residents").status_code == 200
    assert query(client, token, a2, "SELECT COUNT(*) FROM residents WHERE age > 20").status_code == 200
    r = query(client, token, a2, "SELECT COUNT(*) FROM residents WHERE age > 40", epsilon=0.1)
    assert r.status_code == 409 and r.json["error"]["code"] == "dataset_budget_exceeded"
    # each approval alone still has budget: only the dataset's cap refuses
    for a in (a1, a2):
        assert ledger.budget(sb.conn(), a).epsilon_remaining > 3


def test_default_applies_when_unset(demo):
    sb, _ = demo
    conn = sb.conn()
    v = add_version(sb)
    a = new_approval(sb, datasets_=("permits",), epsilon_total=100.0)
    for i in range(20):
        charge(sb, a, v.version_id, Charge(1.0), f"q_{i}")
    st = dataset_caps.status(conn, "permits")
    assert st.cap.source == "default" and st.epsilon_remaining == pytest.approx(0.0)
    with pytest.raises(BudgetExceeded):
        dataset_caps.ensure_within(conn, [v.version_id], Charge(0.01))


# -- setting it: API, rights, audit, console, CLI ---------------------------------------------------
def test_api_owner_sets_and_everyone_reads(demo):
    sb, creds = demo
    client = create_app(sb, {"TESTING": True}).test_client()
    owner = bearer(creds["owner"]["token"])
    r = client.put("/api/v1/datasets/residents/budget-cap", headers=owner,
                   json={"epsilon_total": 25, "delta_total": 2e-6, "reason": "a third project approved"})
    assert r.status_code == 200, r.json
    assert r.json["epsilon"]["total"] == 25 and r.json["cap"]["source"] == "owner" and r.json["audit_seq"] > 0
    got = client.get("/api/v1/datasets/residents/budget-cap").json  # public, like the transparency page
    assert got["cap"]["set_by"] == "owner" and got["cap"]["reason"] == "a third project approved"
    assert [c["source"] for c in got["history"]] == ["owner", "policy"]
    assert got["default"] == {"epsilon_total": 20.0, "delta_total": 1e-5}
    policy_entry, entry = audit_entries(sb, "dataset.budget_cap_set")  # registration, then the PUT
    assert policy_entry["details"]["source"] == "policy"
    assert entry["actor"] == "owner" and entry["seq"] == r.json["audit_seq"]
    d = entry["details"]
    assert d["old"] == {"epsilon_total": 30.0, "delta_total": 1e-5, "source": "policy"}
    assert d["new"] == {"epsilon_total": 25.0, "delta_total": 2e-6} and d["reason"] == "a third project approved"


@pytest.mark.parametrize("body,code", [
    ({"epsilon_total": 0, "delta_total": 1e-6, "reason": "x"}, "bad_epsilon_total"),
    ({"epsilon_total": 5, "delta_total": 0.5, "reason": "x"}, "bad_delta_total"),
    ({"epsilon_total": 5, "delta_total": 1e-6}, "missing_reason"),
    ({"epsilon_total": "5", "delta_total": 1e-6, "reason": "x"}, "bad_epsilon_total"),
])
def test_api_refuses_bad_values(client, creds, body, code):
    r = client.put("/api/v1/datasets/residents/budget-cap", headers=bearer(creds["owner"]["token"]), json=body)
    assert r.status_code == 400 and r.json["error"]["code"] == code


def test_only_the_datasets_owner_may_set(demo):
    sb, creds = demo
    admin = SandboxAdmin(sb)
    _, token2 = admin.create_user("owner2", "owner", "owner2-password")
    client = create_app(sb, {"TESTING": True}).test_client()
    body = {"epsilon_total": 100, "delta_total": 1e-3, "reason": "more"}
    for token, status in ((token2, 403), (creds["researcher"]["token"], 403), (creds["regulator"]["token"], 403),
                          (None, 401)):
        r = client.put("/api/v1/datasets/residents/budget-cap", json=body,
                       headers=bearer(token) if token else {})
        assert r.status_code == status, (token, r.json)
    assert client.put("/api/v1/datasets/nothing/budget-cap", json=body,
                      headers=bearer(creds["owner"]["token"])).status_code == 404
    assert dataset_caps.status(sb.conn(), "residents").cap.epsilon_total == 30.0
    # only the demo policy's own cap, logged at registration
    assert [e["details"]["source"] for e in audit_entries(sb, "dataset.budget_cap_set")] == ["policy"]
    with pytest.raises(Forbidden):
        dataset_caps.set_cap(sb, find_user(sb.conn(), "owner2"), "residents", body)


def test_console_owner_sets_the_cap_on_the_dataset_page(demo):
    from tests.test_console import client_for, post, text

    sb, _ = demo
    app = create_app(sb, {"TESTING": True})
    c = client_for(app, "owner")
    page = text(c.get("/owner/datasets/residents"))
    assert "budget-cap-form" in page
    resp = post(c, "/owner/datasets/residents/budget-cap",
                {"epsilon_total": "12.5", "delta_total": "1e-6", "reason": "console"},
                page="/owner/datasets/residents")
    assert resp.status_code == 303
    st = dataset_caps.status(sb.conn(), "residents")
    assert (st.cap.epsilon_total, st.cap.delta_total, st.cap.reason) == (12.5, 1e-6, "console")
    bad = post(c, "/owner/datasets/residents/budget-cap", {"epsilon_total": "lots", "delta_total": "1e-6",
                                                          "reason": "x"}, page="/owner/datasets/residents")
    assert bad.status_code == 303 and dataset_caps.status(sb.conn(), "residents").cap.epsilon_total == 12.5
    regulator = client_for(app, "regulator")
    page = text(regulator.get("/owner/datasets/residents"))
    assert "12.5" in page and "budget-cap-form" not in page


def test_cli_shows_and_sets(demo):
    sb, creds = demo
    root = str(sb.ws.root)
    runner = CliRunner(env={"SANDBOX_TOKEN": creds["owner"]["token"]})  # issue 14: the CLI acts as a user
    shown = runner.invoke(cli, ["datasets", "cap", "clinic_visits", "--data-dir", root])
    assert shown.exit_code == 0, shown.output
    assert "ε = 20, δ = 1e-05 (default)" in shown.output
    done = runner.invoke(cli, ["datasets", "cap", "clinic_visits", "--data-dir", root, "--epsilon", "8",
                               "--delta", "1e-6", "--reason", "quarterly review", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["cap"]["epsilon_total"] == 8.0
    assert dataset_caps.status(sb.conn(), "clinic_visits").cap.reason == "quarterly review"
    entry = audit_entries(sb, "dataset.budget_cap_set")[-1]
    assert entry["actor"] == "owner" and entry["details"]["reason"] == "quarterly review"
    assert runner.invoke(cli, ["datasets", "cap", "clinic_visits", "--data-dir", root, "--epsilon", "8"]).exit_code == 2
    no_reason = runner.invoke(cli, ["datasets", "cap", "clinic_visits", "--data-dir", root, "--epsilon", "8",
                                    "--delta", "0"])
    assert no_reason.exit_code == 1 and "reason is required" in no_reason.output


def test_transparency_page_shows_cap_and_spent(demo):
    sb, creds = demo
    client = create_app(sb, {"TESTING": True}).test_client()
    r = query(client, creds["researcher"]["token"], creds["researcher"]["approval_id"],
              "SELECT COUNT(*) FROM residents", epsilon=0.5)
    assert r.status_code == 200, r.json
    page = client.get("/api/v1/transparency").json
    caps = {d["dataset"]: d["budget_cap"] for d in page["datasets"]}
    assert caps["residents"]["epsilon_total"] == 30.0 and caps["residents"]["source"] == "policy"
    assert caps["residents"]["epsilon_spent"] == pytest.approx(r.json["epsilon_spent"])
    assert caps["clinic_visits"]["source"] == "default" and caps["clinic_visits"]["epsilon_spent"] == 0
    html = client.get("/transparency").get_data(as_text=True)
    assert "30" in html and "budget-cap" in html


# -- migration ------------------------------------------------------------------------------------
def test_migration_moves_version_caps_to_their_dataset():
    conn = sqlite3.connect(":memory:")
    for version in (1, 2, 3):
        for statement in MIGRATIONS[version]:
            conn.execute(statement)
    conn.execute("INSERT INTO users (id, username, role, password_hash, created_at) "
                 "VALUES (1, 'owner', 'owner', 'x', 't')")
    conn.execute("INSERT INTO datasets (id, name, title, owner_id, tier, created_at) "
                 "VALUES (1, 'residents', 'R', 1, 'conditional', 't')")
    for vid in (1, 2):
        conn.execute("INSERT INTO dataset_versions (id, dataset_id, version, policy_toml, content_hash, file_name, "
                     "row_count, unit_count, bounding_seed, created_at) VALUES (?, 1, ?, '', 'h', 'f', 1, 1, 's', 't')",
                     (vid, vid))
    conn.executemany("INSERT INTO dataset_budget_caps (dataset_version_id, epsilon_total, delta_total, created_at) "
                     "VALUES (?, ?, ?, 't')", [(1, 5.0, 1e-6), (2, 3.0, 1e-5)])
    for statement in MIGRATIONS[4]:
        conn.execute(statement)
    rows = conn.execute("SELECT dataset_id, epsilon_total, delta_total, source, after_version_id "
                        "FROM dataset_budget_cap_changes").fetchall()
    assert rows == [(1, 3.0, 1e-6, "migration", 2)]  # the strictest of each
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'dataset_budget_caps'").fetchone() is None
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM dataset_budget_cap_changes")
