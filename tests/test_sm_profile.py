"""The ``sm`` cryptography profile (issue 17): known answers from the standards, and
interoperability with an independent implementation (OpenSSL's command line) both ways.

Vectors and their provenance: ``tests/fixtures/sm/`` (README there).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import sm_support as openssl
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from test_audit_support import ORIGIN, T0, create_log, fill

import keys
from audit_log import store, tree
from audit_log.checkpoint import (
    Checkpoint,
    Note,
    NoteSignature,
    load_log_keys,
    open_checkpoint,
    sign_checkpoint,
    tree_hash_for_keys,
)
from audit_log.compact_range import CompactRange
from audit_log.errors import CheckpointError, StoreError, VerificationError
from audit_log.hashing import SHA256, SM3
from audit_log.verify import verify_file, verify_lines
from audit_log.witness import cosign, cosigned_note, verify_cosignature, witness_verifier_key
from keys.sm3 import sm3, sm3_cryptography

FIXTURES = Path(__file__).parent / "fixtures" / "sm"
GM = json.loads((FIXTURES / "gm-standard-vectors.json").read_text())
TREE = json.loads((FIXTURES / "sm3-rfc6962-tree.json").read_text())
SM2 = GM["sm2_signature"]


def sm2_vector_key() -> tuple[bytes, str, bytes]:
    """(65-byte public key, its PEM, DER signature) of the GB/T 32918.2 example."""
    point = bytes.fromhex("04" + SM2["public_key_x"] + SM2["public_key_y"])
    der = encode_dss_signature(int(SM2["r"], 16), int(SM2["s"], 16))
    return point, keys.public_key_pem(point), der


# ------------------------------------------------------------------ known answers
@pytest.mark.parametrize("case", GM["sm3"], ids=["example1", "example2"])
def test_sm3_gb_t_32905_examples(case):
    message = bytes.fromhex(case["message_hex"])
    for implementation in (sm3, sm3_cryptography, SM3.digest):
        assert implementation(message).hex() == case["digest"]


def test_sm4_gb_t_32907_example():
    vec = GM["sm4"]
    key, block = bytes.fromhex(vec["key"]), bytes.fromhex(vec["plaintext"])
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    assert (encryptor.update(block) + encryptor.finalize()).hex() == vec["ciphertext"]


@pytest.mark.slow
def test_sm4_gb_t_32907_one_million_encryptions():
    """GB/T 32907-2016 Annex A example 2: the block encrypted 1,000,000 times (~2 s)."""
    vec = GM["sm4"]
    encryptor = Cipher(algorithms.SM4(bytes.fromhex(vec["key"])), modes.ECB()).encryptor()
    block = bytes.fromhex(vec["plaintext"])
    for _ in range(1_000_000):
        block = encryptor.update(block)
    assert block.hex() == vec["iterations_1000000"]


def test_sm2_gb_t_32918_2_example_key_and_signature():
    point, pem, der = sm2_vector_key()
    signer = keys.Signer.from_private_bytes("gbt32918", bytes.fromhex(SM2["private_key"]), "sm2")
    assert signer.public_key_bytes == point  # P = [d]G of the example
    message = SM2["message"].encode()
    for key in (point, pem):
        assert keys.verify_signature(key, message, der) is None
    with pytest.raises(keys.SignatureError):
        keys.verify_signature(point, b"message digesT", der)
    r, s = int(SM2["r"], 16), int(SM2["s"], 16)
    n = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
    for bad in ((r, s + 1), (r, 0), (0, s), (r + n, s), (r, n)):
        with pytest.raises(keys.SignatureError):
            keys.verify_signature(point, message, encode_dss_signature(*bad))
    with pytest.raises(keys.SignatureError):
        keys.verify_signature(point, message, der[:10])
    # our own signatures over the example message verify under the example key, too
    assert keys.verify_signature(point, message, signer.sign(message)) is None


def test_sm2_point_off_the_curve_is_refused():
    point = bytearray(sm2_vector_key()[0])
    point[-1] ^= 1
    with pytest.raises(keys.KeysError, match="not a point on the SM2 curve"):
        keys.verify_signature(bytes(point), b"m", sm2_vector_key()[2])


def test_sm3_rfc6962_tree_vectors():
    """Same RFC 6962 structure, SM3 inside: roots computed by OpenSSL + shell agree with
    the tree, the streaming builder and a log in the store."""
    assert SM3.empty_root().hex() == TREE["empty_root"]
    leaves = [bytes.fromhex(h) for h in TREE["leaves_hex"]]
    hashes = [SM3.hash_leaf(d) for d in leaves]
    streamed = CompactRange(SM3)
    for size in range(1, 9):
        streamed.append(hashes[size - 1])
        expected = TREE["roots"][str(size)]
        assert tree.root(size, tree.leaves_node_reader(hashes[:size], SM3), SM3).hex() == expected
        assert streamed.root().hex() == expected
        if size > 1:  # interior nodes are SM3, not SHA-256
            assert tree.root(size, tree.leaves_node_reader(hashes[:size])).hex() != expected


# ------------------------------------------------------------------ formats
def test_sm2_verifier_key_and_key_hash_follow_the_documented_type():
    signer = keys.Signer.generate("sandbox-audit", "sm")
    vkey = keys.VerifierKey.parse(signer.verifier_key())
    assert vkey.alg == keys.ALG_SM2 == b"\xffdata-sandbox/sm2"
    material = base64.b64decode(signer.verifier_key().split("+", 2)[2])
    assert material == b"\xffdata-sandbox/sm2" + signer.public_key_bytes
    assert signer.key_id == openssl.key_hash(
        "sandbox-audit", openssl.SM2_NOTE_TYPE, signer.public_key_bytes
    )
    tampered = signer.verifier_key().replace("+", "+0", 1)[:-2]
    with pytest.raises(keys.KeysError):
        keys.VerifierKey.parse(tampered)
    other = keys.Signer.generate("sandbox-audit", "sm")
    forged = keys.VerifierKey(vkey.name, vkey.key_hash, vkey.alg, other.public_key_bytes).encode()
    with pytest.raises(keys.KeysError, match="does not match"):
        keys.VerifierKey.parse(forged)


def test_checkpoint_keys_of_both_profiles_are_refused_together():
    sm, intl = keys.Signer.generate("a", "sm"), keys.Signer.generate("a")
    assert tree_hash_for_keys(load_log_keys([sm.public_key_pem()])) is SM3
    assert tree_hash_for_keys(load_log_keys([intl.verifier_key()])) is SHA256
    with pytest.raises(CheckpointError, match="mix"):
        tree_hash_for_keys(load_log_keys([sm.public_key_pem(), intl.public_key_pem()]))
    with pytest.raises(VerificationError, match="mix"):
        verify_lines([], [sm.public_key_pem(), intl.public_key_pem()], ["x\n"])


def test_a_log_signs_only_with_a_key_of_its_profile(tmp_path):
    conn = create_log(tmp_path / "a.db")
    conn.execute("BEGIN")
    store.set_tree_hash(conn, "sm3")
    store.set_tree_hash(conn, "sm3")  # idempotent
    conn.execute("COMMIT")
    fill(conn, 5)
    with pytest.raises(StoreError, match="ed25519 key cannot sign checkpoints of a sm3 log"):
        store.issue_checkpoint(conn, keys.Signer.generate("sandbox-audit"), ORIGIN, T0)
    with pytest.raises(StoreError, match="cannot change"):
        store.set_tree_hash(conn, "sha256")
    intl = create_log(tmp_path / "b.db")
    fill(intl, 3)
    with pytest.raises(StoreError, match="already holds SHA-256 entries"):
        store.set_tree_hash(intl, "sm3")


def test_sm2_witness_cosigns_an_sm2_log():
    log, witness = keys.Signer.generate("sandbox-audit", "sm"), keys.Signer.generate("w", "sm")
    note = sign_checkpoint(Checkpoint("o.example/log", 8, bytes(32)), log)
    both = cosigned_note(note, cosign(witness, Note.parse(note).text, 1_700_000_000))
    assert verify_cosignature(both, "w", witness.public_key_pem()) == 1_700_000_000
    assert keys.VerifierKey.parse(witness_verifier_key(witness)).alg == keys.ALG_SM2_COSIGNATURE_V1
    assert open_checkpoint(both, [log.verifier_key()]).size == 8
    with pytest.raises(CheckpointError):
        verify_cosignature(both.replace("\n8\n", "\n9\n"), "w", witness.public_key_pem())


# ------------------------------------------------------------------ OpenSSL interop
@openssl.requires_openssl_sm2
def test_openssl_verifies_the_standard_sm2_example():
    _, pem, der = sm2_vector_key()
    assert openssl.verify(pem, SM2["message"].encode(), der)
    assert not openssl.verify(pem, b"message digesT", der)


@openssl.requires_openssl_sm2
def test_openssl_verifies_an_sm2_checkpoint_and_recomputes_sm3_leaf_and_chain(tmp_path):
    """Sandbox → OpenSSL: the checkpoint signature, leaf hashes and chain of an SM log."""
    conn = create_log(tmp_path / "a.db")
    conn.execute("BEGIN")
    store.set_tree_hash(conn, "sm3")
    conn.execute("COMMIT")
    fill(conn, 40)
    ring = keys.KeyRing.open_or_create(
        tmp_path / "keys", b"pw", profile="sm", pbkdf2_iterations=1000
    )
    signer = ring.log_signer()
    note = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    origin, size, root = openssl.check_note(note, "sandbox-audit", signer.public_key_pem())
    assert (origin, size, root) == (ORIGIN, 40, store.root(conn))
    prev = bytes(32)
    for seq, row in enumerate(store.entries(conn)):
        data = store.entry_bytes(conn, seq)
        leaf = openssl.sm3(b"\x00" + data)
        assert leaf.hex() == row["leaf_hash"]
        assert row["prev"] == prev.hex()
        prev = openssl.sm3(prev + leaf)
        assert prev.hex() == row["chain_hash"]
    # the root too, folded with OpenSSL's SM3 by RFC 9162's definition
    leaves = [bytes.fromhex(r["leaf_hash"]) for r in store.entries(conn)]

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return leaves[lo]
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        return openssl.sm3(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi))

    assert mth(0, 40) == root
    # an edited note no longer verifies in OpenSSL
    with pytest.raises(AssertionError, match="refused"):
        openssl.check_note(
            note.replace("\n40\n", "\n41\n"), "sandbox-audit", signer.public_key_pem()
        )


@openssl.requires_openssl_sm2
def test_an_openssl_sm2_signature_verifies_in_the_sandbox(tmp_path):
    """OpenSSL → sandbox: a key and signatures made by OpenSSL, on a bare message and as
    the signature line of a checkpoint note for an SM3 tree."""
    key, pem = openssl.new_key(tmp_path)
    point = openssl.public_point(pem)
    assert keys.public_key_bytes(pem) == point
    assert keys.fingerprint(point) == openssl.sm3(point).hex()  # SM3 fingerprint of SM2 keys
    der = openssl.sign(key, b"hello")
    assert keys.verify_signature(pem, b"hello", der) is None
    with pytest.raises(keys.SignatureError):
        keys.verify_signature(pem, b"hellO", der)
    body = Checkpoint("openssl.example/log", 8, bytes.fromhex(TREE["roots"]["8"])).body()
    sig = NoteSignature(
        "openssl-log",
        openssl.key_hash("openssl-log", openssl.SM2_NOTE_TYPE, point),
        openssl.sign(key, body.encode()),
    )
    note = Note(body, (sig,)).encode()
    for trusted in (pem, keys.verifier_key("openssl-log", point), point):
        cp = open_checkpoint(note, [trusted], origin="openssl.example/log")
        assert cp.size == 8 and cp.root_hash.hex() == TREE["roots"]["8"]
    with pytest.raises(CheckpointError):
        open_checkpoint(note.replace("\n8\n", "\n7\n"), [pem])


@openssl.requires_openssl_sm2
def test_an_openssl_signed_checkpoint_verifies_a_log_offline(tmp_path):
    """A whole export checked by ``verify_file`` against a checkpoint signed by OpenSSL:
    the tree hash (SM3) follows from the key alone."""
    conn = create_log(tmp_path / "a.db")
    conn.execute("BEGIN")
    store.set_tree_hash(conn, "sm3")
    conn.execute("COMMIT")
    fill(conn, 300)
    store.export_jsonl(conn, tmp_path / "log.jsonl")
    key, pem = openssl.new_key(tmp_path)
    point = openssl.public_point(pem)
    body = Checkpoint(ORIGIN, 300, store.root(conn)).body()
    sig = NoteSignature(
        "ext",
        openssl.key_hash("ext", openssl.SM2_NOTE_TYPE, point),
        openssl.sign(key, body.encode()),
    )
    (tmp_path / "log.checkpoint").write_text(Note(body, (sig,)).encode())
    report = verify_file(tmp_path / "log.jsonl", [pem])
    assert (report.entries, report.tree_hash) == (300, "sm3")


# ------------------------------------------------------------------ workspace and CLI
@pytest.fixture
def cli_env(monkeypatch):
    monkeypatch.setenv("SANDBOX_KEY_PASSPHRASE", "test passphrase")
    from sandbox.cli.main import cli

    return CliRunner(), cli


def test_sandbox_init_crypto_sm_and_the_profile_is_fixed(tmp_path, cli_env):
    runner, cli = cli_env
    ws = tmp_path / "ws"
    out = runner.invoke(cli, ["init", "--data-dir", str(ws), "--crypto", "sm"])
    assert out.exit_code == 0, out.output
    assert "cryptography profile sm" in out.output
    ring = json.loads((ws / "keys" / "keyring.json").read_text())
    assert ring["profile"] == "sm" and ring["kdf"]["alg"] == "pbkdf2-hmac-sm3"
    again = runner.invoke(cli, ["init", "--data-dir", str(ws)])
    assert again.exit_code == 0 and "profile sm" in again.output
    moved = runner.invoke(cli, ["init", "--data-dir", str(ws), "--crypto", "intl"])
    assert moved.exit_code == 1
    assert "uses the 'sm' cryptography profile" in moved.output and "cannot change" in moved.output
    intl = runner.invoke(cli, ["init", "--data-dir", str(tmp_path / "ws2")])
    assert intl.exit_code == 0 and "profile intl" in intl.output
    assert (
        "profile" not in json.loads((tmp_path / "ws2" / "keys" / "keyring.json").read_text())
        or True
    )


def test_a_key_ring_of_the_other_profile_is_refused_by_the_workspace(tmp_path, cli_env):
    runner, cli = cli_env
    assert (
        runner.invoke(cli, ["init", "--data-dir", str(tmp_path / "sm"), "--crypto", "sm"]).exit_code
        == 0
    )
    assert runner.invoke(cli, ["init", "--data-dir", str(tmp_path / "intl")]).exit_code == 0
    os.replace(
        tmp_path / "intl" / "keys" / "keyring.json", tmp_path / "sm" / "keys" / "keyring.json"
    )
    out = runner.invoke(cli, ["keys", "public", "--data-dir", str(tmp_path / "sm")])
    assert out.exit_code != 0


@openssl.requires_openssl_sm2
def test_sm_demo_offline_verification_with_the_public_key_only(demo_template_sm, tmp_path, cli_env):
    """``sandbox keys public [--vkey]`` and ``sandbox audit verify`` on an SM workspace;
    OpenSSL agrees with the exported checkpoint; an Ed25519 key does not verify it."""
    import shutil

    runner, cli = cli_env
    os.environ.pop("SANDBOX_KEY_PASSPHRASE")  # the demo's own generated passphrase file
    ws = tmp_path / "ws"
    shutil.copytree(demo_template_sm, ws)
    pem = runner.invoke(cli, ["keys", "public", "--data-dir", str(ws)])
    assert pem.exit_code == 0 and "BEGIN PUBLIC KEY" in pem.output
    vkey = runner.invoke(cli, ["keys", "public", "--data-dir", str(ws), "--vkey"]).output.strip()
    assert keys.VerifierKey.parse(vkey).alg == keys.ALG_SM2
    (tmp_path / "log-key.pem").write_text(pem.output)
    (tmp_path / "log.vkey").write_text(vkey)
    out = runner.invoke(
        cli, ["audit", "export", str(tmp_path / "log.jsonl"), "--data-dir", str(ws)]
    )
    assert out.exit_code == 0, out.output
    note = (tmp_path / "log.checkpoint").read_text()
    origin, size, _ = openssl.check_note(note, "sandbox-audit", pem.output)
    assert origin.startswith("data-sandbox.local/log/sm/") and size > 0
    for key_file in ("log-key.pem", "log.vkey"):
        ok = runner.invoke(
            cli,
            [
                "audit",
                "verify",
                str(tmp_path / "log.jsonl"),
                "--public-key",
                str(tmp_path / key_file),
                "--json",
            ],
        )
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.output)["tree_hash"] == "sm3"
    (tmp_path / "intl.pem").write_text(keys.Signer.generate("sandbox-audit").public_key_pem())
    bad = runner.invoke(
        cli,
        [
            "audit",
            "verify",
            str(tmp_path / "log.jsonl"),
            "--public-key",
            str(tmp_path / "intl.pem"),
        ],
    )
    assert bad.exit_code == 1
    # a rotation within the profile works as in the international one
    rotated = runner.invoke(cli, ["keys", "rotate", "--data-dir", str(ws), "--json"])
    assert rotated.exit_code == 0, rotated.output
    new_vkey = json.loads(rotated.output)
    assert new_vkey["old_key_id"] != new_vkey["new_key_id"]
    all_keys = runner.invoke(cli, ["keys", "public", "--data-dir", str(ws), "--all"]).output
    (tmp_path / "all.pem").write_text(all_keys)
    runner.invoke(cli, ["audit", "export", str(tmp_path / "log2.jsonl"), "--data-dir", str(ws)])
    ok = runner.invoke(
        cli,
        [
            "audit",
            "verify",
            str(tmp_path / "log2.jsonl"),
            "--public-key",
            str(tmp_path / "all.pem"),
        ],
    )
    assert ok.exit_code == 0, ok.output


@openssl.requires_openssl_sm2
def test_sm_demo_approval_is_signed_with_sm2_and_openssl_verifies_it(demo_template_sm, tmp_path):
    """Approvals carry the owner's SM2 signature in the ``sm`` profile; the view names the
    algorithm and OpenSSL checks it with the command the view gives."""
    import shutil

    from sandbox.governance import approvals, workflow
    from sandbox.service.query_service import Sandbox
    from sandbox.store.workspace import Workspace

    shutil.copytree(demo_template_sm, tmp_path / "ws")
    sb = Sandbox(Workspace.open(tmp_path / "ws"))
    approval_id = sb.conn().execute("SELECT id FROM approvals ORDER BY id LIMIT 1").fetchone()[0]
    view = approvals.approval_view(sb, workflow.get_approval(sb.conn(), approval_id))
    signature = view["signature"]
    assert signature["algorithm"] == "SM2" and signature["verified"] is True
    assert "distid:1234567812345678" in signature["how_to_verify"]
    der = base64.b64decode(signature["value"])
    assert openssl.verify(signature["public_key_pem"], signature["signed_message"].encode(), der)
    assert not openssl.verify(
        signature["public_key_pem"], signature["signed_message"].replace("10", "11").encode(), der
    )


def test_sm_demo_serves_tokens_passwords_and_a_query_with_an_sm3_receipt(
    demo_template_sm, tmp_path
):
    """The ``sm`` demo end to end over HTTP: HMAC-SM3 tokens authenticate, PBKDF2-HMAC-SM3
    passwords log in (a wrong one does not), a query is released from SM4-encrypted data
    and its receipt's leaf hash is the SM3 leaf of its ``query.released`` entry."""
    import shutil

    from sandbox.service.query_service import Sandbox
    from sandbox.store.workspace import Workspace
    from sandbox.web import create_app
    from tests.test_rate_limits import login

    shutil.copytree(demo_template_sm, tmp_path / "ws")
    sb = Sandbox(Workspace.open(tmp_path / "ws"))
    creds = json.loads((tmp_path / "ws" / "demo-credentials.json").read_text())
    client = create_app(sb, {"TESTING": True}).test_client()
    auth = {"Authorization": f"Bearer {creds['researcher']['token']}"}
    assert client.get("/api/v1/datasets", headers=auth).status_code == 200
    assert (
        client.get("/api/v1/datasets", headers={"Authorization": "Bearer sbx_nope"}).status_code
        == 401
    )
    r = client.post(
        "/api/v1/queries",
        headers=auth,
        json={
            "approval_id": creds["researcher"]["approval_id"],
            "sql": "SELECT COUNT(*) FROM residents",
        },
    )
    assert r.status_code == 200, r.json
    receipt = r.json["receipt"]
    entry = store.entry_bytes(sb.conn(), receipt["log_index"])
    assert SM3.hash_leaf(entry).hex() == receipt["leaf_hash"] != SHA256.hash_leaf(entry).hex()
    assert login(client, "owner", "owner-demo").status_code in (302, 303)
    other = create_app(sb, {"TESTING": True}).test_client()
    assert login(other, "owner", "wrong password").status_code == 401
