"""RFC 6962 / RFC 9162 Merkle hashing and proofs: known answers, corrupted corpus, and a
naive reference tree cross-checking the fast (stored-subtree) one."""

from __future__ import annotations

import doctest
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import audit_log.compact_range
import audit_log.entry
import audit_log.hashing
import audit_log.tree
import keys.notekeys
from audit_log import proofs, tree
from audit_log.compact_range import CompactRange
from audit_log.errors import ProofError
from audit_log.hashing import SHA256, SM3, TreeHash, empty_root, hash_children, hash_leaf

FIXTURES = Path(__file__).parent / "fixtures" / "audit"
VECTORS = json.loads((FIXTURES / "rfc6962-and-signed-note.json").read_text())
LEAVES = [hash_leaf(bytes.fromhex(h)) for h in VECTORS["leaves_hex"]]
ROOTS = {int(k): bytes.fromhex(v) for k, v in VECTORS["roots"].items()}


# ----------------------------------------------------------------- known answers (hasher)
def test_empty_root():
    # printf '' | sha256sum
    assert empty_root().hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert empty_root().hex() == VECTORS["hasher"]["empty_root"]


def test_leaf_hash_of_empty_leaf():
    # printf '\x00' | sha256sum
    assert hash_leaf(b"").hex() == VECTORS["hasher"]["leaf_empty"]


def test_leaf_hash():
    # printf '\x00L123456' | sha256sum
    assert hash_leaf(b"L123456").hex() == VECTORS["hasher"]["leaf_L123456"]


def test_node_hash():
    # printf '\x01N123N456' | sha256sum
    assert hash_children(b"N123", b"N456").hex() == VECTORS["hasher"]["node_N123_N456"]


@pytest.mark.parametrize("size", sorted(ROOTS))
def test_roots_of_first_n_leaves(size):
    assert tree.root(size, tree.leaves_node_reader(LEAVES[:size])) == ROOTS[size]
    streamed = CompactRange()
    for leaf in LEAVES[:size]:
        streamed.append(leaf)
    assert streamed.root() == ROOTS[size]
    assert CompactRange.of_leaves(LEAVES[:size]).root() == ROOTS[size]
    assert naive_root(LEAVES[:size]) == ROOTS[size]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['index']}-of-{c['size']}")
def test_inclusion_vectors(case):
    node = tree.leaves_node_reader(LEAVES[: case["size"]])
    proof = tree.inclusion_proof(case["index"], case["size"], node)
    assert [h.hex() for h in proof] == case["proof"]
    proofs.verify_inclusion(
        LEAVES[case["index"]], case["index"], case["size"], proof, ROOTS[case["size"]]
    )


@pytest.mark.parametrize(
    "case", VECTORS["consistency"], ids=lambda c: f"{c['size1']}-to-{c['size2']}"
)
def test_consistency_vectors(case):
    node = tree.leaves_node_reader(LEAVES[: case["size2"]])
    proof = tree.consistency_proof(case["size1"], case["size2"], node)
    assert [h.hex() for h in proof] == case["proof"]
    proofs.verify_consistency(
        case["size1"], case["size2"], ROOTS[case["size1"]], ROOTS[case["size2"]], proof
    )


# ----------------------------------------------------------------- corrupted proofs
CORRUPTED = json.loads((FIXTURES / "corrupted_proofs.json").read_text())


@pytest.mark.parametrize("case", CORRUPTED, ids=lambda c: f"{c['type']}:{c['defect']}")
def test_corrupted_proof_corpus_fails(case):
    proof = [bytes.fromhex(h) for h in case["proof"]]
    with pytest.raises(ProofError):
        if case["type"] == "inclusion":
            leaf = hash_leaf(bytes.fromhex(case["leaf_data_hex"]))
            proofs.verify_inclusion(
                leaf, case["index"], case["size"], proof, bytes.fromhex(case["root"])
            )
        else:
            proofs.verify_consistency(
                case["size1"],
                case["size2"],
                bytes.fromhex(case["root1"]),
                bytes.fromhex(case["root2"]),
                proof,
            )


def test_corpus_is_big_enough_and_current():
    assert len(CORRUPTED) >= 60
    assert {c["type"] for c in CORRUPTED} == {"inclusion", "consistency"}


def test_trivial_consistency_cases():
    proofs.verify_consistency(0, 5, empty_root(), ROOTS[5], [])
    proofs.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [])
    with pytest.raises(ProofError):
        proofs.verify_consistency(5, 5, ROOTS[5], ROOTS[6], [])
    with pytest.raises(ProofError):
        proofs.verify_consistency(5, 5, ROOTS[5], ROOTS[5], [ROOTS[1]])
    with pytest.raises(ProofError):
        tree.consistency_proof(6, 5, tree.leaves_node_reader(LEAVES[:6]))
    with pytest.raises(ProofError):
        tree.inclusion_proof(5, 5, tree.leaves_node_reader(LEAVES[:5]))


# ----------------------------------------------------------------- naive reference
# Written straight from RFC 9162 §2.1.1, §2.1.3.1 and §2.1.4.1 (recursive definitions),
# used only to cross-check the fast implementation.
def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


# The naive reference hashes with the standard library directly (SHA-256, or SM3 where
# hashlib's OpenSSL has it), not through ``audit_log.hashing``; each property test below
# runs for both cryptography profiles' tree hashes (issue 17).
def _naive_digest(name: str):
    return lambda data: hashlib.new(name, data).digest()


_SM3_IN_HASHLIB = "sm3" in hashlib.algorithms_available
TREE_HASHES = [
    pytest.param(SHA256, id="sha256"),
    pytest.param(
        SM3,
        id="sm3",
        marks=pytest.mark.skipif(not _SM3_IN_HASHLIB, reason="hashlib has no SM3 here"),
    ),
]


def naive_root(leaves: list[bytes], th: TreeHash = SHA256) -> bytes:
    h = _naive_digest(th.name)
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = _k(len(leaves))
    return h(b"\x01" + naive_root(leaves[:k], th) + naive_root(leaves[k:], th))


def naive_path(m: int, leaves: list[bytes], th: TreeHash = SHA256) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = _k(len(leaves))
    if m < k:
        return naive_path(m, leaves[:k], th) + [naive_root(leaves[k:], th)]
    return naive_path(m - k, leaves[k:], th) + [naive_root(leaves[:k], th)]


def naive_subproof(m: int, leaves: list[bytes], b: bool, th: TreeHash = SHA256) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if b else [naive_root(leaves, th)]
    k = _k(n)
    if m <= k:
        return naive_subproof(m, leaves[:k], b, th) + [naive_root(leaves[k:], th)]
    return naive_subproof(m - k, leaves[k:], False, th) + [naive_root(leaves[:k], th)]


def _leaves(n: int, th: TreeHash = SHA256) -> list[bytes]:
    h = _naive_digest(th.name)
    return [h(b"\x00" + i.to_bytes(4, "big")) for i in range(n)]


@pytest.mark.parametrize("th", TREE_HASHES)
@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_fast_tree_matches_naive_reference(th, size, data):
    leaves = _leaves(size, th)
    node = tree.leaves_node_reader(leaves, th)
    root = naive_root(leaves, th)
    assert tree.root(size, node, th) == root
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.inclusion_proof(index, size, node, th)
    assert proof == naive_path(index, leaves, th)
    proofs.verify_inclusion(leaves[index], index, size, proof, root, th)
    old = data.draw(st.integers(min_value=1, max_value=size))
    cproof = tree.consistency_proof(old, size, node, th)
    assert cproof == (naive_subproof(old, leaves, True, th) if old < size else [])
    proofs.verify_consistency(old, size, naive_root(leaves[:old], th), root, cproof, th)


@pytest.mark.parametrize("th", TREE_HASHES)
def test_every_proof_up_to_size_40_verifies(th):
    leaves = _leaves(40, th)
    for size in range(1, 41):
        node = tree.leaves_node_reader(leaves[:size], th)
        root = naive_root(leaves[:size], th)
        for index in range(size):
            proofs.verify_inclusion(
                leaves[index], index, size, tree.inclusion_proof(index, size, node, th), root, th
            )
        for old in range(0, size + 1):
            old_root = naive_root(leaves[:old], th)
            proofs.verify_consistency(
                old, size, old_root, root, tree.consistency_proof(old, size, node, th), th
            )


@pytest.mark.parametrize("th", TREE_HASHES)
@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=2, max_value=64), st.data())
def test_any_single_bit_flip_in_a_proof_fails(th, size, data):
    leaves = _leaves(size, th)
    node = tree.leaves_node_reader(leaves, th)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.inclusion_proof(index, size, node, th)
    if not proof:
        return
    which = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    bad = bytearray(proof[which])
    bad[bit // 8] ^= 1 << (bit % 8)
    proof[which] = bytes(bad)
    with pytest.raises(ProofError):
        proofs.verify_inclusion(leaves[index], index, size, proof, naive_root(leaves, th), th)


@pytest.mark.parametrize(
    "module",
    [audit_log.hashing, audit_log.compact_range, audit_log.tree, audit_log.entry, keys.notekeys],
    ids=lambda m: m.__name__,
)
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0
