"""Merkle proof *verification* (RFC 9162 §2.1.3.2 and §2.1.4.2), pure; raises on failure.

Following pyca/cryptography, verification never returns ``False``: a proof either checks
or ``ProofError`` is raised. ``th`` is the tree hash (SHA-256 by default, SM3 in the ``sm``
profile); the algorithms are the RFC's for both.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from audit_log.errors import ProofError
from audit_log.hashing import HASH_SIZE, SHA256, TreeHash


def _check_hashes(proof: Sequence[bytes], what: str) -> None:
    for i, h in enumerate(proof):
        if not isinstance(h, bytes | bytearray) or len(h) != HASH_SIZE:
            raise ProofError(f"{what} element {i} is not a {HASH_SIZE}-byte hash")


def _path_sides(
    fn: int, sn: int, path: Sequence[bytes], what: str
) -> Iterator[tuple[bytes, bool]]:
    """Each path hash and whether it sits on the left: the index walk both RFC 9162
    algorithms share (§2.1.3.2, §2.1.4.2); raises when the path does not
    end at the root (too long or too short for the sizes)."""
    for c in path:
        if sn == 0:
            raise ProofError(f"{what} is too long")
        left = bool(fn & 1 or fn == sn)
        yield c, left
        if left and not fn & 1:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"{what} is too short")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], th: TreeHash = SHA256
) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 1–4)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hashes([leaf_hash, *proof], "inclusion proof")
    r = bytes(leaf_hash)
    for p, left in _path_sides(index, size - 1, proof, "inclusion proof"):
        r = th.hash_children(p, r) if left else th.hash_children(r, p)
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
    for c, left in _path_sides(fn, sn, path[1:], "consistency proof"):
        if left:
            fr = th.hash_children(c, fr)
            sr = th.hash_children(c, sr)
        else:
            sr = th.hash_children(sr, c)
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root")
