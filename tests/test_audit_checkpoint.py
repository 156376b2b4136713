"""Checkpoints and signed notes: the golang known answer, and an independent verifier
written here from the C2SP text (signed-note, tlog-checkpoint, tlog-cosignature).

Our own checkpoints are checked in both cryptography profiles (issue 17): Ed25519 with
``cryptography``, SM2 with the OpenSSL command line (``tests/sm_support.py``)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path

import pytest
import sm_support as openssl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit_log.checkpoint import (
    Checkpoint,
    Note,
    open_checkpoint,
    sign_checkpoint,
    sign_note,
    verify_note,
)
from audit_log.errors import CheckpointError
from audit_log.witness import cosign, cosigned_note, verify_cosignature, witness_verifier_key
from keys import ALG_COSIGNATURE_V1, ALG_SM2_COSIGNATURE_V1, Signer, VerifierKey

VECTORS = json.loads(
    (Path(__file__).parent / "fixtures" / "audit" / "rfc6962-and-signed-note.json").read_text()
)
NOTE_VECTOR = VECTORS["signed_note"]
ROOT8 = bytes.fromhex(VECTORS["roots"]["8"])


# ------------------------------------------------------------ independent C2SP verifier
def independent_verify(note: str, name: str, public_key: bytes) -> tuple[str, int, bytes]:
    """Straight from c2sp.org/signed-note and c2sp.org/tlog-checkpoint, sharing no code
    with audit_log: returns (origin, size, root) if `name` signed the checkpoint."""
    assert note.endswith("\n")
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    sm2 = len(public_key) == 65
    sigtype = openssl.SM2_NOTE_TYPE if sm2 else b"\x01"
    key_id = hashlib.sha256(name.encode() + b"\n" + sigtype + public_key).digest()[:4]
    found = False
    for line in sigs.rstrip("\n").split("\n"):
        assert line.startswith("\u2014 ")
        sig_name, b64 = line[2:].split(" ")
        blob = base64.b64decode(b64)
        if sig_name == name and blob[:4] == key_id:
            _independent_signature_check(public_key, blob[4:], text.encode())
            found = True
    assert found, "no signature by the expected key"
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    assert str(size) == lines[1] and len(root) == 32
    return origin, size, root


def _independent_signature_check(public_key: bytes, sig: bytes, msg: bytes) -> None:
    """Ed25519 with ``cryptography``; SM2 (65-byte keys) with the OpenSSL command line."""
    if len(public_key) == 65:
        if not openssl.openssl_has_sm2():
            pytest.skip("the openssl command line here has no SM2")
        pem = _sm2_pem(public_key)
        if not openssl.verify(pem, msg, sig):
            raise InvalidSignature("OpenSSL refused the SM2 signature")
        return
    Ed25519PublicKey.from_public_bytes(public_key).verify(sig, msg)


def _sm2_pem(point: bytes) -> str:
    """SubjectPublicKeyInfo of an SM2 point (id-ecPublicKey, curve 1.2.156.10197.1.301)."""
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200") + point
    body = base64.encodebytes(spki).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def independent_cosignature_check(note: str, name: str, public_key: bytes) -> int:
    """From c2sp.org/tlog-cosignature: key id with 0x04 (or the SM2 cosignature type),
    message 'cosignature/v1\\ntime T\\n'+body."""
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    sigtype = openssl.SM2_COSIGNATURE_TYPE if len(public_key) == 65 else b"\x04"
    key_id = hashlib.sha256(name.encode() + b"\n" + sigtype + public_key).digest()[:4]
    for line in sigs.rstrip("\n").split("\n"):
        sig_name, b64 = line[2:].split(" ")
        blob = base64.b64decode(b64)
        if sig_name == name and blob[:4] == key_id:
            (timestamp,) = struct.unpack(">Q", blob[4:12])
            msg = f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()
            _independent_signature_check(public_key, blob[12:], msg)
            return timestamp
    raise AssertionError("no cosignature")


# ------------------------------------------------------------ known answer (golang vector)
def test_golang_signed_note_vector_verifies():
    note = NOTE_VECTOR["text"] + "\n" + NOTE_VECTOR["signature_line"]
    parsed, names = verify_note(note, [NOTE_VECTOR["vkey"]])
    assert names == ["PeterNeumann"]
    assert parsed.text == NOTE_VECTOR["text"]


def test_golang_private_key_reproduces_the_signature():
    # skey = "PRIVATE+KEY+<name>+<hash>+base64(0x01 || 32-byte seed)"; Ed25519 is deterministic.
    seed = base64.b64decode(NOTE_VECTOR["skey"].split("+", 4)[4])[1:]
    signer = Signer.from_private_bytes("PeterNeumann", seed)
    assert signer.verifier_key() == NOTE_VECTOR["vkey"]
    assert signer.key_id.hex() == "c74f20a3"
    note = sign_note(NOTE_VECTOR["text"], [signer])
    assert note == NOTE_VECTOR["text"] + "\n" + NOTE_VECTOR["signature_line"]


def test_golang_vector_refuses_an_edited_text():
    note = NOTE_VECTOR["text"].replace("problem", "question") + "\n" + NOTE_VECTOR["signature_line"]
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_note(note, [NOTE_VECTOR["vkey"]])


def test_vkey_parse_checks_the_hash():
    vkey = VerifierKey.parse(NOTE_VECTOR["vkey"])
    assert vkey.name == "PeterNeumann" and vkey.key_hash.hex() == "c74f20a3"
    with pytest.raises(Exception, match="does not match"):
        VerifierKey.parse(NOTE_VECTOR["vkey"].replace("c74f20a3", "c74f20a4"))


# ------------------------------------------------------------ our checkpoints
@pytest.fixture(scope="module", params=["intl", "sm"])
def signer(request) -> Signer:
    return Signer.generate("sandbox-audit", request.param)


def test_our_checkpoint_passes_the_independent_verifier(signer):
    note = sign_checkpoint(Checkpoint("gov.example/jinan-sandbox", 8, ROOT8), signer)
    assert independent_verify(note, "sandbox-audit", signer.public_key_bytes) == (
        "gov.example/jinan-sandbox",
        8,
        ROOT8,
    )
    assert note.startswith(
        "gov.example/jinan-sandbox\n8\n"
        + base64.b64encode(ROOT8).decode()
        + "\n\n\u2014 sandbox-audit "
    )


def test_checkpoint_round_trip_and_keys_forms(signer):
    cp = Checkpoint("o.example/log", 123, ROOT8, ("ext line",))
    note = sign_checkpoint(cp, signer)
    for key in (signer.public_key_pem(), signer.verifier_key(), signer.public_key_bytes):
        assert open_checkpoint(note, [key], origin="o.example/log") == cp
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(note, [signer.public_key_pem()], origin="other")


def test_unknown_signers_are_ignored_but_bad_known_ones_fail(signer):
    other = Signer.generate("someone-else", signer.profile)
    note = sign_note(Checkpoint("o", 1, ROOT8).body(), [other, signer])
    open_checkpoint(note, [signer.public_key_pem()])
    with pytest.raises(CheckpointError, match="no signature by a trusted key"):
        open_checkpoint(note, [Signer.generate("sandbox-audit", signer.profile).public_key_pem()])
    parsed = Note.parse(note)
    forged = parsed.signatures[1].__class__(
        parsed.signatures[1].name, parsed.signatures[1].key_hash, bytes(64)
    )
    with pytest.raises(CheckpointError, match="does not verify"):
        open_checkpoint(
            Note(parsed.text, (parsed.signatures[0], forged)).encode(), [signer.public_key_pem()]
        )


@pytest.mark.parametrize(
    "body",
    [
        "o\n08\nAAAA\n",
        "o\n8\n" + base64.b64encode(ROOT8[:31]).decode() + "\n",
        "o\n8\n",
        "\n8\n" + base64.b64encode(ROOT8).decode() + "\n",
        "o\n-1\n" + base64.b64encode(ROOT8).decode() + "\n",
        "o\n8\n" + base64.b64encode(ROOT8).decode(),
        "o\n8\n" + base64.b64encode(ROOT8).decode() + "\n\n",
    ],
)
def test_malformed_checkpoint_bodies(body):
    with pytest.raises(CheckpointError):
        Checkpoint.parse(body)


@pytest.mark.parametrize(
    "note",
    [
        "no blank line\n",
        "o\n1\n\n— name\n",
        "o\n1\n\n- name AAAAAAAA\n",
        "o\n1\n\n— name AAAA\n",
        "o\x01\n\n— n AAAAAAAAAAAA\n",
    ],
)
def test_malformed_notes(note):
    with pytest.raises(CheckpointError):
        Note.parse(note)


def test_cosignature_matches_the_c2sp_text(signer):
    witness = Signer.generate("regulator.example/witness", signer.profile)
    note = sign_checkpoint(Checkpoint("o.example/log", 8, ROOT8), signer)
    sig = cosign(witness, Note.parse(note).text, 1_700_000_000)
    both = cosigned_note(note, sig)
    assert (
        independent_cosignature_check(both, witness.name, witness.public_key_bytes) == 1_700_000_000
    )
    assert verify_cosignature(both, witness.name, witness.public_key_pem()) == 1_700_000_000
    independent_verify(both, "sandbox-audit", signer.public_key_bytes)  # log signature still fine
    vkey = VerifierKey.parse(witness_verifier_key(witness))  # type 0x04, hash with 0x04
    cosig_type = ALG_COSIGNATURE_V1 if signer.profile == "intl" else ALG_SM2_COSIGNATURE_V1
    assert (vkey.alg, vkey.public_key) == (cosig_type, witness.public_key_bytes)
    with pytest.raises(CheckpointError):
        verify_cosignature(note, witness.name, witness.public_key_pem())
    with pytest.raises(InvalidSignature):
        independent_cosignature_check(
            both.replace("\n8\n", "\n9\n"), witness.name, witness.public_key_bytes
        )
