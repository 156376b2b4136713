"""keys: the key ring encrypted at rest, passphrases, rotation, signatures, envelope
encryption of data files, password and token hashing.

Tests taking ``profile`` (directly or through ``ring``) run once per cryptography profile
(issue 17): Ed25519 / AES-256-GCM / scrypt / Argon2id / SHA-256, and SM2 / SM4-GCM /
PBKDF2-HMAC-SM3 / HMAC-SM3."""

from __future__ import annotations

import ast
import base64
import os
import stat
from pathlib import Path

import pytest

import keys
from keys import (
    DecryptionError,
    KeyRing,
    KeysError,
    PassphraseError,
    PasswordError,
    SignatureError,
)

N = 2**10  # small scrypt cost for tests; production default is 2**15
ITERATIONS = 1_000  # small PBKDF2-HMAC-SM3 cost for tests; production default is 600,000
SIZES = {  # (public key, signature, symmetric key) sizes of each profile
    "intl": (32, {64}, 32),
    "sm": (65, set(range(68, 73)), 16),  # SM2 DER signatures are 70-72 bytes (rarely less)
}


@pytest.fixture(params=keys.PROFILES)
def profile(request) -> str:
    return str(request.param)


@pytest.fixture
def ring(tmp_path, profile) -> KeyRing:
    return KeyRing.open_or_create(
        tmp_path / "keys",
        b"correct horse",
        scrypt_n=N,
        profile=profile,
        pbkdf2_iterations=ITERATIONS,
    )


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_private_keys_are_encrypted_at_rest(ring, tmp_path):
    signer = ring.log_signer()
    user = ring.signer("owner:alice")
    data_key, wrapped = ring.new_data_key()
    stored = all_bytes(tmp_path / "keys")
    for secret in (signer.private_bytes_raw(), user.private_bytes_raw(), data_key):
        assert secret not in stored
        assert base64.b64encode(secret) not in stored
        assert secret.hex().encode() not in stored
    assert b"PRIVATE KEY" not in stored
    assert base64.b64encode(signer.public_key_bytes) in stored  # public keys are in clear
    mode = stat.S_IMODE((tmp_path / "keys" / "keyring.json").stat().st_mode)
    assert mode == 0o600


def test_reopen_gives_the_same_keys(ring, tmp_path):
    first = ring.log_signer()
    _, wrapped = ring.new_data_key()
    again = KeyRing.open_or_create(tmp_path / "keys", b"correct horse")
    assert again.log_signer().public_key_bytes == first.public_key_bytes
    assert again.unwrap_data_key(wrapped) == ring.unwrap_data_key(wrapped)


def test_wrong_or_missing_passphrase(ring, tmp_path, monkeypatch):
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)
    with pytest.raises(PassphraseError, match="wrong passphrase"):
        KeyRing.open_or_create(tmp_path / "keys", b"wrong")
    with pytest.raises(PassphraseError, match="SANDBOX_KEY_PASSPHRASE"):
        KeyRing.open_or_create(tmp_path / "keys")
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "correct horse")
    assert KeyRing.open_or_create(tmp_path / "keys").log_signer()


def test_generated_passphrase_is_the_embedded_default(tmp_path, monkeypatch, profile):
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)
    ring = KeyRing.open_or_create(
        tmp_path / "keys", scrypt_n=N, profile=profile, pbkdf2_iterations=ITERATIONS
    )
    pw_file = tmp_path / "keys" / "passphrase"
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert len(pw_file.read_bytes().strip()) >= 43
    pub = ring.log_signer().public_key_bytes
    assert KeyRing.open_or_create(tmp_path / "keys").log_signer().public_key_bytes == pub
    os.chmod(pw_file, 0o644)
    with pytest.raises(PassphraseError, match="chmod 600"):
        KeyRing.open_or_create(tmp_path / "keys")
    os.chmod(pw_file, 0o600)
    # doing better: move the passphrase out of the workspace
    ring.change_passphrase(b"from the secrets manager", scrypt_n=N)
    assert not pw_file.exists()
    with pytest.raises(PassphraseError):
        KeyRing.open_or_create(tmp_path / "keys")
    reopened = KeyRing.open_or_create(tmp_path / "keys", b"from the secrets manager")
    assert reopened.log_signer().public_key_bytes == pub


def test_signatures_verify_and_failures_raise(ring, profile):
    signer = ring.log_signer()
    sig = signer.sign(b"message")
    assert len(signer.public_key_bytes) == SIZES[profile][0] and len(sig) in SIZES[profile][1]
    assert signer.algorithm == {"intl": "ed25519", "sm": "sm2"}[profile]
    for key in (signer.public_key_pem(), signer.public_key_pem().encode(), signer.public_key_bytes):
        assert keys.verify_signature(key, b"message", sig) is None
    with pytest.raises(SignatureError):
        keys.verify_signature(signer.public_key_pem(), b"messagE", sig)
    with pytest.raises(SignatureError):
        keys.verify_signature(signer.public_key_pem(), b"message", sig[:-1] + bytes([sig[-1] ^ 1]))
    with pytest.raises(SignatureError):
        keys.verify_signature(signer.public_key_pem(), b"message", sig[:10])
    with pytest.raises(KeysError):
        keys.verify_signature("not a key", b"message", sig)
    assert issubclass(SignatureError, KeysError)


def test_signer_identity(ring):
    signer = ring.log_signer()
    assert signer.name == "sandbox-audit" and len(signer.key_id) == 4
    vkey = keys.VerifierKey.parse(signer.verifier_key())
    assert vkey.public_key == signer.public_key_bytes and vkey.key_hash == signer.key_id
    assert keys.public_key_bytes(signer.public_key_pem()) == signer.public_key_bytes
    assert "private" not in repr(signer).lower()


def test_user_signers_are_created_on_demand_and_stable(ring):
    alice = ring.signer("owner:alice")
    assert ring.signer("owner:alice").public_key_bytes == alice.public_key_bytes
    assert ring.signer("owner:bob").public_key_bytes != alice.public_key_bytes
    assert "owner:alice" in ring.signer_names()
    for bad in ("has space", "a+b", "", "tab\there"):
        with pytest.raises(KeysError):
            ring.signer(bad)


def test_rotation_keeps_old_public_keys_and_destroys_old_private(ring, tmp_path):
    old = ring.log_signer()
    sig = old.sign(b"before rotation")
    rotation = ring.rotate_log_key()
    assert rotation.old_key_id == old.key_id.hex()
    old_id, new_id = rotation
    new = ring.log_signer()
    assert new.key_id.hex() == new_id != old_id
    infos = ring.log_public_keys()
    assert [i.key_id for i in infos] == [new_id, old_id]
    assert infos[1].retired is not None and infos[0].retired is None
    keys.verify_signature(infos[1].pem(), b"before rotation", sig)  # old signatures still verify
    assert old.private_bytes_raw() not in all_bytes(tmp_path / "keys")
    with pytest.raises(keys.KeyNotFound, match="destroyed"):
        ring._load_signer("sandbox-audit", old_id)
    # another process holding the ring sees the rotation at its next signature
    other = KeyRing.open_or_create(tmp_path / "keys", b"correct horse")
    ring.rotate_log_key()
    assert other.log_signer().key_id == ring.log_signer().key_id


def test_envelope_encryption_and_tamper_detection(ring, profile):
    data_key, wrapped = ring.new_data_key()
    assert len(data_key) == SIZES[profile][2] and data_key not in wrapped
    plain = b"PAR1 residents 370102199001011234 ..." * 100
    blob = keys.encrypt_blob(data_key, plain, b"dataset:residents:v1")
    assert b"370102199001011234" not in blob
    assert keys.decrypt_blob(ring.unwrap_data_key(wrapped), blob, b"dataset:residents:v1") == plain
    for damaged in (blob[:-1] + bytes([blob[-1] ^ 1]), blob[:40], blob[:20] + b"x" + blob[21:]):
        with pytest.raises(DecryptionError, match="modified or truncated"):
            keys.decrypt_blob(data_key, damaged, b"dataset:residents:v1")
    with pytest.raises(DecryptionError):
        keys.decrypt_blob(data_key, blob, b"dataset:residents:v2")  # swapped file
    with pytest.raises(DecryptionError, match="not an encrypted sandbox file"):
        keys.decrypt_blob(data_key, plain, b"dataset:residents:v1")
    with pytest.raises(DecryptionError):
        ring.unwrap_data_key(wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    # SECURITY: the header names the cipher and the key must be that cipher's size, so a
    # blob relabelled to the other profile's cipher is refused
    relabelled = (b"SBXB\x02" if blob.startswith(b"SBXB\x01") else b"SBXB\x01") + blob[5:]
    with pytest.raises(DecryptionError):
        keys.decrypt_blob(data_key, relabelled, b"dataset:residents:v1")


def test_master_key_rotation_rewraps_without_touching_data(ring, tmp_path):
    pairs = [ring.new_data_key() for _ in range(3)]
    blobs = [keys.encrypt_blob(k, f"file {i}".encode(), b"aad") for i, (k, _) in enumerate(pairs)]
    old_master = ring.master_key_id
    rewrapped = ring.rotate_master_key([w for _, w in pairs])
    assert ring.master_key_id != old_master
    for (data_key, old_wrapped), new_wrapped, blob in zip(pairs, rewrapped, blobs, strict=True):
        assert new_wrapped != old_wrapped
        assert ring.unwrap_data_key(new_wrapped) == data_key
        assert keys.decrypt_blob(ring.unwrap_data_key(new_wrapped), blob, b"aad")
    reopened = KeyRing.open_or_create(tmp_path / "keys", b"correct horse")
    assert reopened.unwrap_data_key(rewrapped[0]) == pairs[0][0]
    assert reopened.unwrap_data_key(pairs[0][1]) == pairs[0][0]  # retired master kept
    ring.destroy_retired_master_keys()
    with pytest.raises(keys.KeyNotFound):
        ring.unwrap_data_key(pairs[0][1])
    with pytest.raises(KeysError):  # unknown master id: nothing changes
        ring.rotate_master_key([b"SBXK\x01" + bytes(60)])


def test_passwords(profile):
    stored = keys.hash_password("s3cret 密码", profile)
    assert stored.startswith({"intl": "$argon2id$", "sm": "$pbkdf2-sm3$i=600000$"}[profile])
    assert keys.verify_password(stored, "s3cret 密码") is None
    with pytest.raises(PasswordError):
        keys.verify_password(stored, "s3cret")
    with pytest.raises(PasswordError):
        keys.verify_password("not a hash", "x")
    for broken in ("$pbkdf2-sm3$i=x$AA$AA", "$pbkdf2-sm3$i=1000$!!$AA", "$pbkdf2-sm3$"):
        with pytest.raises(PasswordError):
            keys.verify_password(broken, "x")
    assert not keys.password_needs_rehash(stored, profile)
    other = "sm" if profile == "intl" else "intl"
    assert keys.password_needs_rehash(stored, other)  # moved to the other form at next login


def test_pbkdf2_sm3_password_hash_is_the_rfc_8018_construction():
    """The stored value is PBKDF2 (RFC 8018 §5.2) with HMAC-SM3, recomputed here with the
    standard library's PBKDF2 (independent of ``cryptography``)."""
    import hashlib

    stored = keys.hash_password("s3cret 密码", "sm", iterations=1000)
    _, _, params, salt_b64, hash_b64 = stored.split("$")
    salt = base64.b64decode(salt_b64 + "=" * (-len(salt_b64) % 4))
    expected = hashlib.pbkdf2_hmac("sm3", "s3cret 密码".encode(), salt, 1000, 32)
    assert (
        params == "i=1000" and base64.b64decode(hash_b64 + "=" * (-len(hash_b64) % 4)) == expected
    )


def test_tokens(profile):
    a, b = keys.new_token(), keys.new_token()
    assert a.startswith("sbx_") and a != b and len(a) >= 4 + 43
    assert len(base64.urlsafe_b64decode(a[4:] + "=")) == 32
    assert keys.hash_token(a, profile) == keys.hash_token(a, profile) != keys.hash_token(b, profile)
    assert len(keys.hash_token(a, profile)) == 64 and a not in keys.hash_token(a, profile)
    assert keys.token_matches(a, keys.hash_token(a, profile), profile) and not keys.token_matches(
        b, keys.hash_token(a, profile), profile
    )
    assert keys.hash_token(a, "intl") != keys.hash_token(a, "sm")


ROOT = Path(__file__).parents[1]


def _imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return found


def test_keys_and_audit_log_import_only_what_they_may():
    import sys

    stdlib = set(sys.stdlib_module_names)
    allowed = {
        "keys": {"keys", "cryptography", "argon2", "tongsuopy"},
        "audit_log": {"audit_log", "keys", "rfc8785", "orjson"},
    }
    for package, extra in allowed.items():
        bad = {m for m in _imports(package) if m.split(".")[0] not in stdlib | extra}
        assert not bad, f"{package} imports {bad}"
    assert not {m for m in _imports("audit_log") if m.startswith("cryptography")}


def test_only_keys_touches_hazmat():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("keys", "tests", ".venv", "build") or "site-packages" in rel.parts:
            continue
        assert "cryptography.hazmat" not in path.read_text(encoding="utf-8", errors="replace"), rel


def test_verifier_keys_whose_base64_contains_plus_parse(profile):
    seen = 0
    for i in range(200):
        signer = keys.Signer.generate(f"k{i}", profile)
        vkey = signer.verifier_key()
        if "+" in vkey.split("+", 2)[2]:
            assert keys.VerifierKey.parse(vkey).public_key == signer.public_key_bytes
            seen += 1
    assert seen > 0


def test_a_ring_resealed_elsewhere_is_refused_clearly(ring, tmp_path):
    ring.log_signer()
    other = KeyRing.open_or_create(tmp_path / "keys", b"correct horse")
    other.change_passphrase(b"new one", scrypt_n=N)
    with pytest.raises(PassphraseError, match="re-sealed"):
        ring.signer("owner:new")
    assert KeyRing.open_or_create(tmp_path / "keys", b"new one").log_signer()


def test_a_ring_keeps_its_profile(ring, tmp_path, profile):
    """One workspace is one profile (issue 17): reopening with the other is refused."""
    other = "sm" if profile == "intl" else "intl"
    assert ring.profile == profile
    assert KeyRing.open_or_create(tmp_path / "keys", b"correct horse").profile == profile
    with pytest.raises(KeysError, match=f"belongs to the '{profile}' cryptography profile"):
        KeyRing.open_or_create(tmp_path / "keys", b"correct horse", profile=other)
    with pytest.raises(KeysError, match="unknown cryptography profile"):
        KeyRing.open_or_create(tmp_path / "new", b"x", profile="gost")
