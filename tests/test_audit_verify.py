"""Tamper tests: an exported log of 1,200 real entries, damaged in every way the issue
lists; ``verify`` must catch each, name the kind and the first bad sequence number."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_audit_support import ORIGIN, T0, create_log, crypto_profile, fill, ring, th  # noqa: F401 (crypto_profile: fixture)

from audit_log import store
from audit_log.checkpoint import Checkpoint, sign_checkpoint
from audit_log.compact_range import CompactRange
from audit_log.errors import DAMAGE_KINDS, VerificationError
from audit_log.verify import verify_file, verify_lines

# Every test here runs once per cryptography profile (issue 17): SHA-256/Ed25519 and SM3/SM2.
pytestmark = pytest.mark.usefixtures("crypto_profile")

N = 1200


@pytest.fixture(scope="module")
def exported(tmp_path_factory, crypto_profile):  # noqa: F811
    d = tmp_path_factory.mktemp("verify")
    conn = create_log(d / "audit.db")
    keyring = ring(d / "keys")
    fill(conn, N)
    store.issue_checkpoint(conn, keyring.log_signer(), ORIGIN, T0)
    store.export_jsonl(conn, d / "log.jsonl")
    conn.close()
    lines = (d / "log.jsonl").read_bytes().split(b"\n")[:-1]
    return {
        "dir": d,
        "lines": lines,
        "note": (d / "log.checkpoint").read_text(),
        "pem": keyring.log_signer().public_key_pem(),
        "ring": keyring,
    }


def check(exported, lines, kind, seq, notes=None):
    with pytest.raises(VerificationError) as info:
        verify_lines(lines, [exported["pem"]], notes or [exported["note"]])
    assert (info.value.kind, info.value.seq) == (kind, seq), info.value
    assert info.value.kind in DAMAGE_KINDS
    return info.value


def test_intact_export_verifies(exported):
    report = verify_file(exported["dir"] / "log.jsonl", [exported["pem"]])
    assert report.entries == N and report.checkpoint_size == N and report.unsigned_tail == 0
    assert report.to_dict()["ok"] is True


def test_intact_export_verifies_with_parallel_workers(exported):
    assert verify_file(exported["dir"] / "log.jsonl", [exported["pem"]], workers=2).entries == N


@pytest.mark.parametrize("k", [0, 1, 499, 500, 1023, N - 2])
def test_edit_one_byte_in_a_value(exported, k):
    lines = list(exported["lines"])
    lines[k] = re.sub(rb'"time":"2025', b'"time":"2024', lines[k])
    check(exported, lines, "edited", k)


@pytest.mark.parametrize("position", [2, 40, 100, 200, -60, -3])
def test_edit_any_single_byte(exported, position):
    """A byte changed anywhere: caught as an edit or as a broken encoding, at the right seq."""
    k = 777
    lines = list(exported["lines"])
    raw = bytearray(lines[k])
    raw[position] = ord("#") if raw[position] != ord("#") else ord("%")
    lines[k] = bytes(raw)
    err = check_any(exported, lines)
    assert err.seq == k and err.kind in ("edited", "bad_encoding"), err


def check_any(exported, lines):
    with pytest.raises(VerificationError) as info:
        verify_lines(lines, [exported["pem"]], [exported["note"]])
    return info.value


def test_edit_of_the_last_entry(exported):
    lines = list(exported["lines"])
    lines[-1] = lines[-1].replace(b'"time":"2025', b'"time":"2026')
    check(exported, lines, "edited", N - 1)


def test_edit_of_the_prev_field(exported):
    lines = list(exported["lines"])
    lines[300] = re.sub(
        rb'"prev":"(.)', lambda m: b'"prev":"' + (b"a" if m.group(1) != b"a" else b"b"), lines[300]
    )
    check(exported, lines, "edited", 300)


def test_edit_of_the_seq_field(exported):
    lines = list(exported["lines"])
    lines[300] = lines[300].replace(b'"seq":300', b'"seq":301')
    err = check_any(exported, lines)
    assert err.seq == 300 and err.kind in ("edited", "inserted")


@pytest.mark.parametrize("k", [0, 1, 600, N - 2])
def test_delete_an_entry(exported, k):
    lines = list(exported["lines"])
    del lines[k]
    check(exported, lines, "deleted", k)


def test_delete_a_run_of_entries(exported):
    lines = list(exported["lines"])
    del lines[600:610]
    err = check(exported, lines, "deleted", 600)
    assert "600..609" in err.message


def test_insert_a_copy(exported):
    lines = list(exported["lines"])
    lines.insert(500, lines[800])
    check(exported, lines, "inserted", 500)


def test_insert_a_forged_entry_with_a_correct_prev(exported):
    lines = list(exported["lines"])
    forged = json.loads(lines[500])
    forged["details"] = {"approval_id": 1, "epsilon": 0.0, "note": "forged"}
    from audit_log.entry import Entry

    lines.insert(500, Entry(**forged).encode())
    check(exported, lines, "inserted", 500)


def test_insert_a_forged_entry_and_renumber_the_rest(exported):
    from audit_log.entry import Entry

    lines = list(exported["lines"])
    forged = json.loads(lines[500])
    forged["details"] = {"note": "forged"}
    renumbered = []
    for i, line in enumerate(lines[500:]):
        obj = json.loads(line)
        obj["seq"] = 501 + i
        renumbered.append(Entry(**obj).encode())
    lines = lines[:500] + [Entry(**forged).encode()] + renumbered
    check(exported, lines, "inserted", 500)


@pytest.mark.parametrize(("i", "j"), [(400, 401), (400, 900), (0, 1), (N - 2, N - 1)])
def test_swap_two_entries(exported, i, j):
    lines = list(exported["lines"])
    lines[i], lines[j] = lines[j], lines[i]
    check(exported, lines, "reordered", i)


@pytest.mark.parametrize("keep", [0, 1, 999, N - 1])
def test_truncate(exported, keep):
    check(exported, list(exported["lines"][:keep]), "truncated", keep)


def test_second_checkpoint_same_size_other_root(exported, tmp_path):
    forked = sign_checkpoint(Checkpoint(ORIGIN, N, b"\x42" * 32), exported["ring"].log_signer())
    err = check(exported, exported["lines"], "forked", None, [exported["note"], forked])
    assert "different roots" in err.message


def test_older_checkpoint_from_another_history(exported, tmp_path):
    older = sign_checkpoint(Checkpoint(ORIGIN, 600, b"\x42" * 32), exported["ring"].log_signer())
    check(exported, exported["lines"], "forked", None, [older, exported["note"]])


def test_checkpoint_alone_disagreeing_after_a_suffix_rewrite(exported):
    from audit_log.entry import Entry, chain_hash

    lines = list(exported["lines"][:700])
    prev = bytes.fromhex(json.loads(lines[699])["prev"])
    prev = chain_hash(prev, th().hash_leaf(lines[699]), th())
    rewritten = []
    for line in exported["lines"][700:]:
        obj = json.loads(line)
        obj["prev"] = prev.hex()
        obj["actor"] = "rewritten"
        data = Entry(**obj).encode()
        prev = chain_hash(prev, th().hash_leaf(data), th())
        rewritten.append(data)
    err = check_any(exported, lines + rewritten)
    assert err.kind == "edited" and "rewritten" in err.message


def test_bad_signature_and_wrong_key(exported):
    note = exported["note"]
    tampered = note.replace(f"\n{N}\n", f"\n{N - 1}\n")
    check(exported, exported["lines"], "bad_signature", None, [tampered])
    other = ring(exported["dir"] / "other-keys").log_signer().public_key_pem()
    with pytest.raises(VerificationError) as info:
        verify_lines(exported["lines"], [other], [note])
    assert info.value.kind == "bad_signature"


def test_missing_checkpoint_is_a_failure(exported, tmp_path):
    log = tmp_path / "alone.jsonl"
    log.write_bytes(b"\n".join(exported["lines"]) + b"\n")
    with pytest.raises(VerificationError) as info:
        verify_file(log, [exported["pem"]])
    assert info.value.kind == "bad_signature" and "no signed checkpoint" in info.value.message


@pytest.mark.parametrize(
    "damage",
    [lambda b: b + b" ", lambda b: b.replace(b"{", b"{ ", 1), lambda b: b"not json", lambda b: b""],
)
def test_bad_encoding(exported, damage):
    lines = list(exported["lines"])
    lines[10] = damage(lines[10])
    check(exported, lines, "bad_encoding", 10)


def test_missing_final_newline_and_crlf(exported, tmp_path):
    log = tmp_path / "x.jsonl"
    (tmp_path / "x.checkpoint").write_text(exported["note"])
    log.write_bytes(b"\n".join(exported["lines"]))
    with pytest.raises(VerificationError) as info:
        verify_file(log, [exported["pem"]])
    assert (info.value.kind, info.value.seq) == ("bad_encoding", N - 1)
    log.write_bytes(b"\r\n".join(exported["lines"]) + b"\r\n")
    with pytest.raises(VerificationError) as info:
        verify_file(log, [exported["pem"]])
    assert (info.value.kind, info.value.seq) == ("bad_encoding", 0)


def test_unsigned_tail_is_reported(exported):
    small = sign_checkpoint(
        Checkpoint(ORIGIN, 1000, _root_of(exported["lines"][:1000])), exported["ring"].log_signer()
    )
    report = verify_lines(exported["lines"], [exported["pem"]], [small])
    assert report.checkpoint_size == 1000 and report.unsigned_tail == N - 1000
    both = verify_lines(exported["lines"], [exported["pem"]], [small, exported["note"]])
    assert both.checkpoints == 2 and both.unsigned_tail == 0


def _root_of(lines):
    return CompactRange.of_leaves([th().hash_leaf(line) for line in lines], 0, th()).root()


def test_rotated_keys_verify_old_and_new_checkpoints(tmp_path):
    conn = create_log(tmp_path / "a.db")
    keyring = ring(tmp_path / "keys")
    fill(conn, 30)
    old_note = store.issue_checkpoint(conn, keyring.log_signer(), ORIGIN, T0)
    keyring.rotate_log_key()
    fill(conn, 30, start=30)
    store.issue_checkpoint(conn, keyring.log_signer(), ORIGIN, T0)
    store.export_jsonl(conn, tmp_path / "log.jsonl")
    all_keys = "".join(info.pem() for info in keyring.log_public_keys())
    report = verify_file(
        tmp_path / "log.jsonl",
        [all_keys],
        [tmp_path / "log.checkpoint", _write(tmp_path, old_note)],
    )
    assert report.checkpoints == 2
    with pytest.raises(VerificationError):
        verify_file(
            tmp_path / "log.jsonl",
            [keyring.log_public_keys()[0].pem()],
            [_write(tmp_path, old_note)],
        )


def _write(tmp_path: Path, note: str) -> Path:
    path = tmp_path / "old.checkpoint"
    path.write_text(note)
    return path


@pytest.mark.parametrize(
    ("name", "damage", "kind", "seq"),
    [
        (
            "edit",
            lambda L: L.__setitem__(450, L[450].replace(b'"time":"2025', b'"time":"2024')),
            "edited",
            450,
        ),
        ("delete", lambda L: L.__delitem__(299), "deleted", 299),
        ("swap", lambda L: L.__setitem__(slice(149, 151), [L[150], L[149]]), "reordered", 149),
        ("truncate", lambda L: L.__delitem__(slice(1100, None)), "truncated", 1100),
        ("encoding", lambda L: L.__setitem__(900, L[900] + b" "), "bad_encoding", 900),
    ],
)
def test_parallel_scan_finds_the_same_damage(exported, tmp_path, name, damage, kind, seq):
    """Workers check runs of lines; damage at or near a run boundary is still found exactly."""
    lines = list(exported["lines"])
    damage(lines)
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "log.checkpoint").write_text(exported["note"])
    for workers in (1, 2, 3):
        with pytest.raises(VerificationError) as info:
            verify_file(log, [exported["pem"]], workers=workers)
        assert (info.value.kind, info.value.seq) == (kind, seq), (workers, info.value)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=1, max_value=200),
    st.lists(st.integers(min_value=1, max_value=200), max_size=6),
)
def test_compact_ranges_of_any_split_give_the_rfc_root(size, cuts):
    """Roots from chunk-local aligned subtrees, merged in order, equal the RFC 9162 root."""
    from audit_log import tree

    h = th()
    leaves = [h.hash_leaf(i.to_bytes(4, "big")) for i in range(size)]
    bounds = sorted({0, size, *[c % size for c in cuts]})
    whole = CompactRange(h)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        local = CompactRange(h, a)
        for i in range(a, b):
            local.append(leaves[i])
        assert local == CompactRange.of_leaves(leaves[a:b], a, h)
        whole.extend(local)
    assert whole.root() == tree.root(size, tree.leaves_node_reader(leaves, h), h)


@pytest.mark.parametrize(
    ("damage", "kind", "seq"),
    [
        (
            lambda L: L.__setitem__(450, L[450].replace(b'"time":"2025', b'"time":"2024')),
            "edited",
            450,
        ),
        (lambda L: L.__delitem__(299), "deleted", 299),
        (lambda L: L.__setitem__(slice(149, 151), [L[150], L[149]]), "reordered", 149),
        (lambda L: L.insert(500, L[800]), "inserted", 500),
        (lambda L: L.__delitem__(slice(1100, None)), "truncated", 1100),
        (lambda L: L.__setitem__(900, b"garbage"), "bad_encoding", 900),
    ],
)
def test_integrity_only_mode_still_catches_every_change(exported, tmp_path, damage, kind, seq):
    lines = list(exported["lines"])
    assert (
        verify_lines(lines, [exported["pem"]], [exported["note"]], encoding=False).encoding_checked
        is False
    )
    damage(lines)
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "log.checkpoint").write_text(exported["note"])
    for workers in (1, 2):
        with pytest.raises(VerificationError) as info:
            verify_file(log, [exported["pem"]], workers=workers, encoding=False)
        assert (info.value.kind, info.value.seq) == (kind, seq)


def test_integrity_only_mode_does_not_see_a_signed_non_canonical_entry(exported):
    """The trade-off, pinned: a whitespace-padded entry signed by the log passes only in
    integrity-only mode."""
    lines = [
        line.replace(b'"action":', b'"action": ', 1) if i == 3 else line
        for i, line in enumerate(exported["lines"][:10])
    ]
    # fix the chain and re-sign, as a misbehaving log would
    from audit_log.entry import chain_hash

    fixed, prev = [], bytes(32)
    for line in lines:
        line = line.replace(json.loads(line)["prev"].encode(), prev.hex().encode())
        fixed.append(line)
        prev = chain_hash(prev, th().hash_leaf(line), th())
    note = sign_checkpoint(Checkpoint(ORIGIN, 10, _root_of(fixed)), exported["ring"].log_signer())
    assert verify_lines(fixed, [exported["pem"]], [note], encoding=False).entries == 10
    with pytest.raises(VerificationError) as info:
        verify_lines(fixed, [exported["pem"]], [note])
    assert (info.value.kind, info.value.seq) == ("bad_encoding", 3)
