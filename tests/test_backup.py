"""``sandbox backup`` / ``sandbox restore`` (issue 8): consistent, hashed, verified.

Every test runs once per cryptography profile (issue 17): SHA-256 file hashes and an
Ed25519 checkpoint, or SM3 file hashes and an SM2 checkpoint."""

from __future__ import annotations

import io
import json
import tarfile
import threading

import click
import pytest
from click.testing import CliRunner

import audit_log.store as audit_store
import keys
from audit_log.replay import read_jsonl
from sandbox.cli.backup import backup_command, restore_command
from sandbox.service.query_service import Sandbox
from sandbox.store.backup import backup
from sandbox.store.backup_archive import BackupError, read_manifest
from sandbox.store.restore import restore
from sandbox.store.users import find_user
from sandbox.store.workspace import Workspace
from tests.conftest import DEMO_ROWS, bearer


@pytest.fixture(params=keys.PROFILES)
def demo(request, tmp_path):
    """conftest's ``demo`` over the ``intl`` template or its ``sm`` twin."""
    import shutil

    from sandbox.demo.setup import setup_demo

    profile = request.param
    template = request.getfixturevalue("demo_template" if profile == "intl" else "demo_template_sm")
    root = tmp_path / "ws"
    shutil.copytree(template, root)
    return setup_demo(root, rows=DEMO_ROWS, url="http://127.0.0.1:0", say=lambda _m: None)


QUERIES = [
    "SELECT COUNT(*) FROM residents",
    "SELECT district, AVG(income) FROM residents GROUP BY district",
    "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department",
]


def run_queries(client, creds):
    h = bearer(creds["researcher"]["token"])
    for sql in QUERIES:
        r = client.post(
            "/api/v1/queries",
            headers=h,
            json={"approval_id": creds["researcher"]["approval_id"], "sql": sql, "epsilon": 0.3},
        )
        assert r.status_code == 200, r.json
    refused = client.post(
        "/api/v1/queries",
        headers=h,
        json={
            "approval_id": creds["researcher"]["approval_id"],
            "sql": "SELECT name FROM residents",
        },
    )
    assert refused.status_code == 400


def logged_charges(conn) -> dict[str, float]:
    out: dict[str, float] = {}
    for entry in audit_store.entries(conn, 0, 100_000):
        decoded = entry if isinstance(entry, dict) else json.loads(entry)
        if decoded.get("action") in ("query.released", "query.failed"):
            details = decoded["details"]
            key = str(details["approval_id"])
            out[key] = out.get(key, 0.0) + float(details["epsilon"])
    return out


def test_backup_then_restore_elsewhere_verifies_and_ledger_equals_log(
    client, creds, demo, tmp_path
):
    sb, _ = demo
    run_queries(client, creds)
    archive = tmp_path / "backups" / "ws.tar.gz"
    report = backup(sb.ws.root, archive)
    assert archive.exists() and (archive.stat().st_mode & 0o777) == 0o600
    manifest = read_manifest(archive)
    assert {"sandbox.db", "keys/keyring.json"} <= set(manifest["files"])
    file_hash = {"intl": "sha256", "sm": "sm3"}[sb.ws.crypto_profile()]
    assert all(set(f) == {file_hash, "size", "mode"} for f in manifest["files"].values())
    signer = keys.KeyRing.open_or_create(sb.ws.keys_dir).log_signer()
    assert signer.algorithm == {"intl": "ed25519", "sm": "sm2"}[sb.ws.crypto_profile()]
    assert f" {signer.name} " in manifest["audit"]["checkpoint"]
    assert any(name.startswith("data/") for name in manifest["files"])
    assert manifest["audit"]["size"] == report.audit_size == audit_store.size(sb.conn())
    assert manifest["audit"]["checkpoint_size"] == report.audit_size  # fresh checkpoint covers all

    target = tmp_path / "restored"
    restored = restore(archive, target)
    assert restored.audit_size == report.audit_size and restored.ledger_differences == []
    conn = Workspace.open(target).connect()
    ledger = {
        str(r[0]): r[1]
        for r in conn.execute("SELECT approval_id, SUM(epsilon) FROM ledger GROUP BY approval_id")
    }
    logged = logged_charges(conn)
    assert set(ledger) == set(logged) and ledger
    for key, value in ledger.items():
        assert value == pytest.approx(logged[key], abs=1e-9)
    assert manifest["ledger"][str(creds["researcher"]["approval_id"])]["epsilon"] == pytest.approx(
        ledger[str(creds["researcher"]["approval_id"])]
    )
    # the restored workspace serves: the cached release and a new one
    again = Sandbox(Workspace.open(target))
    assert again.budget(find_user(again.conn(), "researcher"), creds["researcher"]["approval_id"])[
        "epsilon"
    ]["spent"] == pytest.approx(ledger[str(creds["researcher"]["approval_id"])])


def test_restore_refuses_a_non_empty_workspace_without_force(demo, tmp_path):
    sb, _ = demo
    archive = tmp_path / "ws.tar.gz"
    backup(sb.ws.root, archive)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "something").write_text("keep me")
    with pytest.raises(BackupError) as info:
        restore(archive, target)
    assert info.value.code == "target_not_empty"
    assert (target / "something").read_text() == "keep me"
    report = restore(archive, target, force=True)
    assert (
        report.moved_aside is not None
        and (report.moved_aside / "something").read_text() == "keep me"
    )
    assert (target / "sandbox.db").exists()


def _rewrite(archive, out, change):
    """Copy ``archive`` to ``out`` passing each (TarInfo, bytes) through ``change``."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read()
            for info, blob in change(member, data):
                info.size = len(blob)
                dst.addfile(info, io.BytesIO(blob))


def test_a_changed_file_is_refused(demo, tmp_path):
    sb, _ = demo
    archive = tmp_path / "ws.tar.gz"
    backup(sb.ws.root, archive)

    def flip(member, data):
        if member.name.startswith("data/"):
            data = data[:-1] + bytes([data[-1] ^ 1])
        yield member, data

    bad = tmp_path / "bad.tar.gz"
    _rewrite(archive, bad, flip)
    with pytest.raises(BackupError) as info:
        restore(bad, tmp_path / "t")
    assert info.value.code == "hash_mismatch"
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "data/../../evil"])
def test_path_traversal_in_an_archive_is_refused(demo, tmp_path, name):
    sb, _ = demo
    archive = tmp_path / "ws.tar.gz"
    backup(sb.ws.root, archive)

    def add(member, data):
        yield member, data
        if member.name == "manifest.json":
            yield tarfile.TarInfo(name), b"x"

    bad = tmp_path / "bad.tar.gz"
    _rewrite(archive, bad, add)
    with pytest.raises(BackupError) as info:
        restore(bad, tmp_path / "t")
    assert info.value.code == "unsafe_archive"
    assert not (tmp_path / "evil").exists()


def test_a_forged_log_fails_against_the_real_public_key(demo, tmp_path):
    """Re-hashing the manifest defeats the hashes, not the signature check with an outside key."""
    import keys

    sb, _ = demo
    real_pem = keys.KeyRing.open_or_create(sb.ws.keys_dir).log_public_keys()[0].pem()
    other = tmp_path / "other"
    from sandbox.demo.setup import setup_demo

    setup_demo(other, rows=1000, url="http://127.0.0.1:0", say=lambda _m: None)
    archive = tmp_path / "other.tar.gz"
    backup(other, archive)
    with pytest.raises(BackupError) as info:
        restore(archive, tmp_path / "t", public_keys=[real_pem])
    assert info.value.code == "log_invalid"
    assert (
        restore(archive, tmp_path / "t2").audit_size > 0
    )  # with its own key ring it is consistent


def test_backup_is_consistent_while_queries_run(client, creds, demo, tmp_path):
    sb, _ = demo
    h = bearer(creds["researcher"]["token"])
    approval = creds["researcher"]["approval_id"]
    stop = threading.Event()
    errors: list[object] = []

    def stream():
        i = 0
        while not stop.is_set() and i < 40:
            r = client.post(
                "/api/v1/queries",
                headers=h,
                json={
                    "approval_id": approval,
                    "sql": f"SELECT COUNT(*) FROM residents WHERE age > {i}",
                    "epsilon": 0.1,
                },
            )
            if r.status_code not in (200, 409):
                errors.append(r.json)
            i += 1

    worker = threading.Thread(target=stream)
    worker.start()
    archives = []
    try:
        for k in range(3):
            archives.append(backup(sb.ws.root, tmp_path / f"b{k}.tar.gz"))
    finally:
        stop.set()
        worker.join()
    assert not errors
    for k, rep in enumerate(archives):
        restored = restore(rep.path, tmp_path / f"r{k}")
        assert restored.audit_size == rep.audit_size


def test_cli_backup_and_restore(demo, tmp_path):
    sb, _ = demo
    group = click.Group("sandbox", commands=[backup_command, restore_command])
    runner = CliRunner()
    out = tmp_path / "cli.tar.gz"
    r = runner.invoke(group, ["backup", "--data-dir", str(sb.ws.root), str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ok"] is True
    target = tmp_path / "cli-restored"
    r = runner.invoke(group, ["restore", "--data-dir", str(target), str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(group, ["restore", "--data-dir", str(target), str(out), "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["code"] == "target_not_empty"
    exported = tmp_path / "log.jsonl"
    audit_store.export_jsonl(Workspace.open(target).connect(), exported)
    assert len(read_jsonl(exported)) == audit_store.size(sb.conn())
