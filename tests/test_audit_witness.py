"""The regulator's witness: accept growth with consistency proofs, cosign, refuse forks
and rollbacks loudly (with evidence), keep state the log cannot touch."""

from __future__ import annotations

import pytest
from test_audit_support import ORIGIN, T0, create_log, crypto_profile, fill, ring, th  # noqa: F401 (crypto_profile: fixture)

from audit_log import store
from audit_log.checkpoint import Checkpoint, sign_checkpoint
from audit_log.errors import ForkError, RollbackError, WitnessError
from audit_log.witness import Witness, cosigned_note, verify_cosignature

# Every test here runs once per cryptography profile (issue 17): SHA-256/Ed25519 and SM3/SM2.
pytestmark = pytest.mark.usefixtures("crypto_profile")


@pytest.fixture
def setup(tmp_path):
    conn = create_log(tmp_path / "audit.db")
    log_ring = ring(tmp_path / "log-keys")
    regulator_ring = ring(tmp_path / "regulator-keys")
    signer = log_ring.log_signer()
    witness = Witness(
        regulator_ring.signer("regulator.example/witness"),
        [signer.public_key_pem()],
        tmp_path / "regulator" / "witness-state.json",
    )
    return conn, signer, witness, tmp_path


def test_grows_with_consistency_proofs_and_cosigns(setup):
    conn, signer, witness, _ = setup
    fill(conn, 10)
    note = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    sig = witness.add_checkpoint(note, [], T0)  # first sight: trusted on first use
    assert verify_cosignature(
        cosigned_note(note, sig), witness.signer.name, witness.signer.public_key_bytes
    ) == int(T0.timestamp())
    for step in range(3):
        fill(conn, 7 + step, start=store.size(conn))
        old = witness.accepted(ORIGIN).size
        note = store.issue_checkpoint(conn, signer, ORIGIN, T0)
        witness.add_checkpoint(note, store.consistency_proof(conn, old, store.size(conn)), T0)
    assert witness.accepted(ORIGIN).size == store.size(conn)
    witness.add_checkpoint(note, [], T0)  # same checkpoint again: fine


def test_rollback_is_refused_with_evidence(setup):
    conn, signer, witness, tmp_path = setup
    fill(conn, 10)
    small = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    fill(conn, 10, start=10)
    big = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    witness.add_checkpoint(big, [], T0)
    with pytest.raises(RollbackError, match="ROLLBACK") as info:
        witness.add_checkpoint(small, [], T0)
    assert (info.value.old_size, info.value.new_size) == (20, 10)
    assert list((tmp_path / "regulator").glob("witness-state.rollback-*.txt"))
    assert witness.accepted(ORIGIN).size == 20


def test_same_size_other_root_is_a_fork(setup):
    conn, signer, witness, tmp_path = setup
    fill(conn, 10)
    note = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    witness.add_checkpoint(note, [], T0)
    forged = sign_checkpoint(Checkpoint(ORIGIN, 10, b"\x01" * 32), signer)
    with pytest.raises(ForkError, match="FORK") as info:
        witness.add_checkpoint(forged, [], T0)
    assert info.value.old_note == note and info.value.new_note == forged
    assert list((tmp_path / "regulator").glob("witness-state.fork-*.txt"))


def test_larger_tree_without_a_valid_proof_is_a_fork(setup):
    conn, signer, witness, _ = setup
    fill(conn, 10)
    witness.add_checkpoint(store.issue_checkpoint(conn, signer, ORIGIN, T0), [], T0)
    # another history of size 15 (a second log with the same key and origin)
    other = create_log(setup[3] / "other.db")
    other.execute("BEGIN IMMEDIATE")
    store.append(other, actor="x", role="r", action="a", subject="s", details={}, now=T0)
    other.execute("COMMIT")
    fill(other, 15, start=1)
    forked = store.issue_checkpoint(other, signer, ORIGIN, T0)
    with pytest.raises(ForkError):
        witness.add_checkpoint(forked, store.consistency_proof(other, 10, 16), T0)
    fill(conn, 6, start=10)
    genuine = store.issue_checkpoint(conn, signer, ORIGIN, T0)
    with pytest.raises(ForkError):
        witness.add_checkpoint(genuine, [], T0)  # missing proof
    witness.add_checkpoint(genuine, store.consistency_proof(conn, 10, 16), T0)


def test_checkpoint_signed_by_an_unknown_key_is_refused(setup, tmp_path):
    conn, _signer, witness, _ = setup
    fill(conn, 3)
    stranger = ring(tmp_path / "stranger").log_signer()
    with pytest.raises(WitnessError, match="refused"):
        witness.add_checkpoint(store.issue_checkpoint(conn, stranger, ORIGIN, T0), [], T0)
    assert witness.accepted(ORIGIN) is None
