"""``sandbox audit …`` and ``sandbox keys …`` end to end on a demo workspace, once per
cryptography profile (issue 17: Ed25519 + SHA-256, SM2 + SM3)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from test_audit_support import T0

from audit_log import store
from audit_log.receipt import make_receipt
from sandbox.cli.main import cli


@pytest.fixture(params=["intl", "sm"])
def ws(tmp_path, request):
    """A fresh workspace whose log holds an approval, three releases and a refusal, appended
    through the same store API the service uses (independent of the query engine)."""
    from sandbox.store.workspace import Workspace, transaction

    workspace = Workspace.init(tmp_path / "ws", request.param)
    conn = workspace.connect()
    receipts = []
    with transaction(conn):
        store.append(
            conn,
            actor="owner",
            role="owner",
            action="approval.created",
            subject="approval:1",
            details={
                "approval_id": 1,
                "researcher": "researcher",
                "epsilon_total": 5.0,
                "delta_total": 1e-5,
                "epsilon_per_query": 1.0,
            },
            now=T0,
        )
    spent = 0.0
    for i, sql in enumerate(
        (
            "SELECT COUNT(*) FROM residents",
            "SELECT district, COUNT(*) FROM residents GROUP BY district",
            "SELECT COUNT(*) FROM clinic_visits",
        )
    ):
        spent += 0.3
        with transaction(conn):
            appended = store.append(
                conn,
                actor="researcher",
                role="researcher",
                action="query.released",
                subject=f"query:q{i}",
                details={
                    "approval_id": 1,
                    "query_id": f"q{i}",
                    "sql": sql,
                    "epsilon": 0.3,
                    "delta": 0.0,
                    "budget_after": {"epsilon_spent": spent, "delta_spent": 0.0},
                },
                now=T0 + timedelta(minutes=i + 1),
            )
        receipts.append(make_receipt(appended, f"q{i}").to_dict())
    with transaction(conn):
        store.append(
            conn,
            actor="researcher",
            role="researcher",
            action="query.refused",
            subject="query:q9",
            details={"approval_id": 1, "code": "out_of_scope", "sql": "SELECT * FROM residents"},
            now=T0 + timedelta(minutes=9),
        )
    conn.close()
    return workspace.root, receipts


def run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok is not None:
        assert (result.exit_code == 0) == ok, result.output
    return result


def test_export_verify_and_tamper(ws, tmp_path):
    root, _ = ws
    out = tmp_path / "export" / "log.jsonl"
    run("audit", "export", out, "--data-dir", root)
    key = tmp_path / "key.pem"
    key.write_text(run("keys", "public", "--data-dir", root).stdout)
    assert "BEGIN PUBLIC KEY" in key.read_text()
    result = run("audit", "verify", out, "--public-key", key, "--json")
    report = json.loads(result.stdout)
    assert report["ok"] and report["entries"] == report["checkpoint_size"] >= 5

    lines = out.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"actor":"', b'"actor":"x', 1)
    out.write_bytes(b"\n".join(lines))
    failed = run("audit", "verify", out, "--public-key", key, ok=False)
    assert (
        failed.exit_code == 1 and "first bad seq 2" in failed.output and "edited" in failed.output
    )
    as_json = json.loads(
        run("audit", "verify", out, "--public-key", key, "--json", ok=False).stdout
    )
    assert (as_json["ok"], as_json["kind"], as_json["seq"]) == (False, "edited", 2)


def test_usage_errors_exit_2(tmp_path):
    log = tmp_path / "x.jsonl"
    log.write_text("")
    assert run("audit", "verify", log, ok=None).exit_code == 2  # --public-key missing
    assert run("audit", "trace", "not json", ok=None).exit_code == 2


def test_replay_from_the_log_and_against_the_live_ledger(ws, tmp_path):
    root, _ = ws
    out = tmp_path / "log.jsonl"
    run("audit", "export", out, "--data-dir", root)
    key = tmp_path / "key.pem"
    key.write_text(run("keys", "public", "--data-dir", root).stdout)
    summary = json.loads(
        run("audit", "replay", out, "--out", tmp_path / "r", "--public-key", key, "--json").stdout
    )
    assert summary["ok"] and summary["inconsistencies"] == []
    # this workspace's ledger holds no charges, so the live comparison must flag approval 1
    flagged = run(
        "audit", "replay", out, "--data-dir", root, "--out", tmp_path / "r", "--json", ok=False
    )
    diff = json.loads(flagged.stdout)["ledger_differences"]
    assert [(d["approval_id"], round(d["log_epsilon"], 9), d["ledger_epsilon"]) for d in diff] == [
        ("1", 0.9, 0.0)
    ]
    report = json.loads((tmp_path / "r" / "log.replay.json").read_text())
    (approval,) = report["approvals"].values()
    assert approval["releases"] == 3 and approval["refusals"] == 1
    html = (tmp_path / "r" / "log.replay.html").read_text()
    assert "<svg" in html and "<script" not in html


def test_trace_a_receipt(ws, tmp_path):
    root, receipts = ws
    receipt = tmp_path / "receipt.json"
    receipt.write_text(json.dumps(receipts[1]))
    shown = json.loads(run("audit", "trace", receipt, "--data-dir", root, "--json").stdout)
    assert shown["entry"]["action"] == "query.released"
    assert "GROUP BY district" in shown["entry"]["details"]["sql"]
    assert shown["checkpoint_size"] >= receipts[1]["tree_size"]
    assert [e["action"] for e in shown["approval_entries"]] == ["approval.created"]
    forged = dict(receipts[1], leaf_hash="00" * 32)
    assert run("audit", "trace", json.dumps(forged), "--data-dir", root, ok=False).exit_code == 1


def test_witness_cosigns_and_the_checkpoint_carries_it(ws, tmp_path):
    from sandbox.store.workspace import Workspace, transaction

    root, _ = ws
    state = tmp_path / "regulator"
    first = json.loads(
        run("audit", "witness", "--data-dir", root, "--state", state, "--json").stdout
    )
    assert first["ok"] and first["previous_size"] == 0
    conn = Workspace.open(root).connect()
    with transaction(conn):
        store.append(
            conn,
            actor="regulator",
            role="regulator",
            action="suspension.created",
            subject="approval:1",
            details={"reason": "check"},
            now=T0,
        )
    conn.close()
    second = json.loads(
        run("audit", "witness", "--data-dir", root, "--state", state, "--json").stdout
    )
    assert second["previous_size"] == first["size"] < second["size"]
    run("audit", "export", tmp_path / "log.jsonl", "--data-dir", root)
    assert "regulator.witness" in (tmp_path / "log.checkpoint").read_text()


def test_key_rotation_is_logged_and_old_checkpoints_still_verify(ws, tmp_path):
    root, _ = ws
    old_key = run("keys", "public", "--data-dir", root).stdout
    rotated = json.loads(run("keys", "rotate", "--data-dir", root, "--json").stdout)
    assert rotated["old_key_id"] != rotated["new_key_id"]
    both = tmp_path / "both.pem"
    both.write_text(run("keys", "public", "--data-dir", root, "--all").stdout)
    assert both.read_text().count("BEGIN PUBLIC KEY") == 2
    out = tmp_path / "log.jsonl"
    run("audit", "export", out, "--data-dir", root)
    run("audit", "verify", out, "--public-key", both)
    (tmp_path / "old.pem").write_text(old_key)
    assert (
        run("audit", "verify", out, "--public-key", tmp_path / "old.pem", ok=False).exit_code == 1
    )
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert entries[rotated["log_seq"]]["action"] == "key.rotated"
    assert entries[rotated["log_seq"]]["details"]["new_key_id"] == rotated["new_key_id"]


def test_witness_following_a_server_by_url(ws, tmp_path, monkeypatch):
    """--url mode: checkpoint and consistency proof come from the HTTP API's JSON shapes."""
    import base64

    import sandbox.cli.witness as cli_witness
    from sandbox.store.workspace import Workspace, transaction

    root, _ = ws
    workspace = Workspace.open(root)
    served = []

    def fake_fetch(url, token):
        assert token == "sbx_regulator"
        conn = workspace.connect()
        try:
            if url.endswith("/checkpoint"):
                from keys import KeyRing

                signer = KeyRing.open_or_create(workspace.keys_dir).log_signer()
                note = store.issue_checkpoint(conn, signer, "test.example/log", T0)
                served.append("checkpoint")
                return {"checkpoint": note, "size": store.size(conn)}
            query = dict(part.split("=") for part in url.split("?")[1].split("&"))
            proof = store.consistency_proof(conn, int(query["from"]), int(query["to"]))
            served.append("consistency")
            return {"hashes": [base64.b64encode(h).decode() for h in proof]}
        finally:
            conn.close()

    monkeypatch.setattr(cli_witness, "_fetch_json", fake_fetch)
    key = tmp_path / "key.pem"
    key.write_text(run("keys", "public", "--data-dir", root).stdout)
    state = tmp_path / "regulator"
    args = [
        "audit",
        "witness",
        "--url",
        "http://sandbox.example",
        "--token",
        "sbx_regulator",
        "--state",
        state,
        "--log-key",
        key,
        "--json",
    ]
    first = json.loads(run(*args).stdout)
    conn = workspace.connect()
    with transaction(conn):
        store.append(
            conn,
            actor="o",
            role="owner",
            action="dataset.tier_changed",
            subject="dataset:x",
            details={"from": "not_open", "to": "conditional"},
            now=T0,
        )
    conn.close()
    second = json.loads(run(*args).stdout)
    assert second["previous_size"] == first["size"] == second["size"] - 1
    assert served == ["checkpoint", "checkpoint", "consistency"]
