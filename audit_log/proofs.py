"""Merkle proof *verification* (RFC 9162 §2.1.3.2 and §2.1.4.2), pure; raises on failure.

Following pyca/cryptography, verification never returns ``False``: a proof either checks
or ``ProofError`` is raised. ``th`` is the tree hash (SHA-256 by default, SM3 in the ``sm``
profile); the algorithms are the RFC's for both.
"""

from __future__ import annotations

from collections.abc import Sequence

from audit_log.errors import ProofError
from audit_log.hashing import HASH_SIZE, SHA256, TreeHash


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(proof):
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise ProofError(f"{what} element {i} is not a {HASH_SIZE}-byte hash")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], th: TreeHash = SHA256
) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–4)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes([leaf_hash, *proof], "inclusion proof")
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = th.hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = th.hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    leaf_hash: bytes,
    index: int,
    size: int,
    proof: Sequence[bytes],
    root: bytes,
    th: TreeHash = SHA256,
) -> None:
    """Raise ``ProofError`` unless ``proof`` shows leaf ``index`` of tree ``size`` has
    ``leaf_hash`` under ``root``."""
    if root_from_inclusion_proof(leaf_hash, index, size, proof, th) != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def verify_consistency(
    old_size: int,
    new_size: int,
    old_root: bytes,
    new_root: bytes,
    proof: Sequence[bytes],
    th: TreeHash = SHA256,
) -> None:
    """Raise ``ProofError`` unless the tree of ``new_size`` extends the tree of ``old_size``
    (RFC 9162 §2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency from size {old_size} to size {new_size}")
    _check_hashes([old_root, new_root, *proof], "consistency proof")
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("two different roots for the same tree size")
        return
    if old_size == 0:
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # exact power of two: prepend first_hash
        path.insert(0, bytes(old_root))
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = th.hash_children(c, fr)
            sr = th.hash_children(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = th.hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
