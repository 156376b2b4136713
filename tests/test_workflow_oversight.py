"""Supervision: automatic suspension (第二十六条), objections (第十七条), the transparency
page, signed approvals, accounts and per-object lists."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess

import pytest

import keys
from sandbox.governance import workflow
from sandbox.store.workspace import transaction
from sandbox.web import create_app
from tests.conftest import FrozenClock
from tests.test_workflow_support import (
    World,
    audit_entries,
    audit_size,
    bearer,
    demo_copy,
    world_copy,
)


@pytest.fixture
def world(demo_template, tmp_path_factory, tmp_path) -> World:
    return world_copy(demo_template, tmp_path_factory, tmp_path)


@pytest.fixture
def clocked(demo_template, tmp_path):
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    sb, creds = demo_copy(demo_template, tmp_path, now=clock)
    return sb, create_app(sb, {"TESTING": True}).test_client(), creds, clock


def out_of_scope(client, creds, sql="SELECT COUNT(*) FROM tax_records"):
    return client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]),
                       json={"approval_id": creds["researcher"]["approval_id"], "sql": sql})


def test_repeated_out_of_scope_attempts_suspend_automatically(clocked):
    """第二十六条: use outside the scenario, repeated within the window, ends service."""
    sb, client, creds, clock = clocked
    with transaction(sb.conn()):
        workflow.SETTING_GROUP.set(sb.conn(), "auto_suspend_refusals", 3)
        workflow.SETTING_GROUP.set(sb.conn(), "auto_suspend_window_minutes", 10)
    # spread out: never 3 within 10 minutes → no suspension
    for _ in range(3):
        assert out_of_scope(client, creds).json["error"]["code"] == "out_of_scope"
        clock.advance(minutes=6)
    assert not audit_entries(sb, "suspension.created")
    clock.advance(minutes=10)  # the last of them leaves the window
    sql_ok = "SELECT COUNT(*) FROM residents"
    ok = client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]),
                     json={"approval_id": creds["researcher"]["approval_id"], "sql": sql_ok, "epsilon": 0.1})
    assert ok.status_code == 200, ok.json
    # identifier columns count too; the third attempt within the window suspends
    mark = audit_size(sb)
    assert out_of_scope(client, creds, "SELECT name FROM residents").json["error"]["code"] == "identifier_column"
    assert out_of_scope(client, creds).status_code == 400
    third = out_of_scope(client, creds)
    assert third.status_code == 400  # this refusal is itself answered normally ...
    (entry,) = audit_entries(sb, "suspension.created", mark)
    assert (entry["actor"], entry["role"], entry["details"]["automatic"]) == ("system", "system", True)
    assert entry["details"]["refusals"] == 3 and entry["details"]["user"] == "researcher"
    # ... and the next request of any kind is refused
    again = client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]),
                        json={"approval_id": creds["researcher"]["approval_id"], "sql": sql_ok, "epsilon": 0.1})
    assert again.status_code == 403 and again.json["error"]["code"] == "suspended"
    # shown to the owner, who may lift an automatic suspension on their researcher
    listed = client.get("/api/v1/suspensions", headers=bearer(creds["owner"]["token"])).json["suspensions"]
    auto = [s for s in listed if s["automatic"]]
    assert len(auto) == 1 and auto[0]["user"] == "researcher" and auto[0]["created_by"] == "system"
    r = client.post(f"/api/v1/suspensions/{auto[0]['suspension_id']}/lift",
                    headers=bearer(creds["owner"]["token"]), json={"reason": "talked to them"})
    assert r.status_code == 200
    # the old attempts do not count again after reinstatement
    clock.advance(minutes=1)
    assert out_of_scope(client, creds).status_code == 400
    assert client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]), json={
        "approval_id": creds["researcher"]["approval_id"], "sql": sql_ok, "epsilon": 0.1}).status_code == 200


def test_other_refusals_do_not_count(clocked):
    sb, client, creds, _ = clocked
    with transaction(sb.conn()):
        workflow.SETTING_GROUP.set(sb.conn(), "auto_suspend_refusals", 2)
    for _ in range(4):
        assert out_of_scope(client, creds, "DROP TABLE residents").status_code == 400
    assert not audit_entries(sb, "suspension.created")


def test_objection_is_filed_seen_by_both_parties_and_answered(world):
    """第十七条: filed through the portal, answered by the bureau, visible to both sides, logged."""
    sb = world.sb
    client = create_app(sb, {"TESTING": True}).test_client()
    researcher, owner = bearer(world.tokens["researcher"]), bearer(world.tokens["owner"])
    r = client.post(f"/api/v1/applications/{world.own.app_pending}/decision", headers=owner,
                    json={"decision": "reject", "reason": "not needed"})
    assert r.status_code == 200
    mark = audit_size(sb)
    r = client.post("/api/v1/objections", headers=researcher, json={
        "target_type": "application", "target_id": world.own.app_pending, "text": "the data is needed because …"})
    assert r.status_code == 201, r.json
    oid = r.json["objection_id"]
    (filed,) = audit_entries(sb, "objection.filed", mark)
    assert (filed["actor"], filed["details"]["respondent"]) == ("researcher", "owner")
    seen_by_owner = client.get(f"/api/v1/objections/{oid}", headers=owner)
    assert seen_by_owner.status_code == 200 and seen_by_owner.json["status"] == "open"
    assert client.get(f"/api/v1/objections/{oid}", headers=bearer(world.tokens["researcher2"])).status_code == 404
    assert client.post(f"/api/v1/objections/{oid}/answer", headers=owner, json={"answer": "no"}).status_code == 403
    mark = audit_size(sb)
    r = client.post(f"/api/v1/objections/{oid}/answer", headers=bearer(world.tokens["regulator"]),
                    json={"answer": "upheld: the owner must reconsider within 10 working days"})
    assert r.status_code == 200
    (answered,) = audit_entries(sb, "objection.answered", mark)
    assert (answered["actor"], answered["role"]) == ("regulator", "regulator")
    for who in (researcher, owner):
        got = client.get(f"/api/v1/objections/{oid}", headers=who).json
        assert got["status"] == "answered" and got["answer"].startswith("upheld") and got["answered_by"] == "regulator"
    assert client.post(f"/api/v1/objections/{oid}/answer", headers=bearer(world.tokens["regulator"]),
                       json={"answer": "again"}).status_code == 409
    # a pending application has no decision to object to yet
    pending = client.post("/api/v1/applications", headers=researcher, json={
        "datasets": ["residents"], "scenario": "s", "purpose": "p", "commitment_accepted": True}).json
    r = client.post("/api/v1/objections", headers=researcher, json={
        "target_type": "application", "target_id": pending["application_id"], "text": "x"})
    assert r.status_code == 400 and r.json["error"]["code"] == "not_decided"


def test_lists_show_only_what_the_caller_may_see(world):
    sb = world.sb
    client = create_app(sb, {"TESTING": True}).test_client()

    def ids(path, key, who):
        r = client.get(path, headers=bearer(world.tokens[who]))
        assert r.status_code == 200, r.json
        return {item[key] for item in r.json[path.rsplit("/", 1)[1]]}

    for who, side, other in (("researcher", world.own, world.other), ("owner", world.own, world.other),
                             ("researcher2", world.other, world.own), ("owner2", world.other, world.own)):
        apps = ids("/api/v1/applications", "application_id", who)
        assert {side.app_pending, side.app_decided} <= apps and not apps & {other.app_pending, other.app_decided}
        approvals = ids("/api/v1/approvals", "approval_id", who)
        assert side.approval in approvals and other.approval not in approvals
        assert ids("/api/v1/objections", "objection_id", who) == {side.objection}
        assert side.suspension in ids("/api/v1/suspensions", "suspension_id", who)
        assert other.suspension not in ids("/api/v1/suspensions", "suspension_id", who)
    everything = ids("/api/v1/applications", "application_id", "regulator")
    assert {world.own.app_pending, world.other.app_pending} <= everything


def test_transparency_page_is_public_and_never_shows_results(clocked):
    sb, client, creds, _ = clocked
    q = client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]), json={
        "approval_id": creds["researcher"]["approval_id"], "epsilon": 0.5,
        "sql": "SELECT district, AVG(income) FROM residents GROUP BY district"})
    assert q.status_code == 200
    out_of_scope(client, creds)
    r = client.get("/api/v1/transparency")
    assert r.status_code == 200
    page = {d["dataset"]: d for d in r.json["datasets"]}
    (project,) = page["residents"]["projects"]
    assert project["scenario"].startswith("Healthcare access by district")
    assert project["releases"] == 1 and project["refusals"] == 1
    assert project["budget"]["epsilon_granted"] == 10.0
    assert project["budget"]["epsilon_spent"] == pytest.approx(q.json["epsilon_spent"])
    text = r.get_data(as_text=True)
    assert "researcher" not in text and "AVG" not in text and "tax_records" not in text
    for row in q.json["rows"]:
        assert str(row[1]) not in text  # no released figure


def test_approval_signature_verifies_and_detects_tampering(clocked):
    sb, client, creds, _ = clocked
    approval_id = creds["researcher"]["approval_id"]
    sig = client.get(f"/api/v1/approvals/{approval_id}", headers=bearer(creds["researcher"]["token"])).json["signature"]
    assert sig["verified"] is True and sig["key_name"] == "owner:owner" and sig["algorithm"] == "Ed25519"
    # verifiable with nothing but what the API shows
    keys.verify_signature(sig["public_key_pem"], sig["signed_message"].encode(), base64.b64decode(sig["value"]))
    with pytest.raises(keys.SignatureError):
        keys.verify_signature(sig["public_key_pem"], sig["signed_message"].replace("10", "99").encode(),
                              base64.b64decode(sig["value"]))
    # somebody raises the budget in the database behind the owner's back
    sb.conn().execute("UPDATE approvals SET epsilon_total = 99 WHERE id = ?", (approval_id,))
    tampered = client.get(f"/api/v1/approvals/{approval_id}", headers=bearer(creds["owner"]["token"])).json
    assert tampered["signature"]["verified"] is False


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_approval_signature_verifies_with_openssl_as_documented(clocked, tmp_path):
    _, client, creds, _ = clocked
    sig = client.get(f"/api/v1/approvals/{creds['researcher']['approval_id']}",
                     headers=bearer(creds["researcher"]["token"])).json["signature"]
    (tmp_path / "terms.json").write_bytes(sig["signed_message"].encode())
    (tmp_path / "owner.pem").write_text(sig["public_key_pem"])
    (tmp_path / "sig.bin").write_bytes(base64.b64decode(sig["value"]))
    out = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "owner.pem", "-rawin",
                          "-in", "terms.json", "-sigfile", "sig.bin"], cwd=tmp_path, capture_output=True, text=True)
    if "rawin" in out.stderr and out.returncode != 0:
        pytest.skip("this openssl has no -rawin (OpenSSL < 3)")
    assert out.returncode == 0 and "Signature Verified Successfully" in out.stdout, out.stderr


def test_admin_creates_users_and_rotates_tokens(world):
    sb = world.sb
    client = create_app(sb, {"TESTING": True}).test_client()
    admin = bearer(world.tokens["admin"])
    mark = audit_size(sb)
    r = client.post("/api/v1/users", headers=admin,
                    json={"username": "analyst", "role": "researcher", "password": "analyst-password"})
    assert r.status_code == 201, r.json
    token = r.json["token"]
    (entry,) = audit_entries(sb, "user.created", mark)
    assert (entry["actor"], entry["role"]) == ("admin", "admin")
    stored = sb.conn().execute("SELECT token_hash FROM api_tokens ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert stored == keys.hash_token(token) and token not in stored  # only the hash is kept
    password_hash = sb.conn().execute("SELECT password_hash FROM users WHERE username = 'analyst'").fetchone()[0]
    assert password_hash.startswith("$argon2id$")
    assert client.get("/api/v1/applications", headers=bearer(token)).status_code == 200
    assert client.post("/api/v1/users", headers=admin, json={"username": "analyst", "role": "researcher",
                                                             "password": "x" * 10}).status_code == 409
    assert client.post("/api/v1/users", headers=admin, json={"username": "Bad Name", "role": "researcher",
                                                             "password": "x" * 10}).status_code == 400
    r = client.post("/api/v1/users/analyst/tokens/rotate", headers=admin)
    assert r.status_code == 200 and r.json["revoked"] == 1
    assert client.get("/api/v1/applications", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/applications", headers=bearer(r.json["token"])).status_code == 200
    # admin manages users and nothing else
    assert client.get("/api/v1/applications", headers=admin).status_code == 403
