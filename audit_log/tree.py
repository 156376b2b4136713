"""Merkle tree hashes and proof *generation* as pure functions over a node reader.

The log stores the hash of every *perfect* subtree (a complete binary subtree whose leaves
start at a multiple of its size): level 0 are leaf hashes, level ``l`` index ``i`` covers
leaves ``[i·2^l, (i+1)·2^l)``. Every node RFC 9162's recursive definitions need is either
such a perfect subtree or the fold of at most ``log2(n)`` of them, so roots and proofs cost
O(log n) lookups whatever the tree size (``audit_log.compact_range``).

``NodeReader`` is ``(level, index) -> hash``; ``leaves_node_reader`` builds one from a list
for tests and small trees. ``inclusion_plan`` (and ``plan`` of ``consistency_ranges``)
say up front which nodes a proof needs, so ``audit_log.store`` fetches them in one
indexed query instead of one query per node. Every function hashing nodes takes the tree
hash (``th``, SHA-256 by default, SM3 in the ``sm`` profile).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from audit_log.compact_range import Node, fold, perfect_subtrees
from audit_log.errors import ProofError
from audit_log.hashing import SHA256, TreeHash

NodeReader = Callable[[int, int], bytes]


def largest_power_of_two_below(n: int) -> int:
    """k = the largest power of two with k < n (RFC 9162 §2.1.1), for n >= 2.

    >>> [largest_power_of_two_below(n) for n in (2, 3, 4, 5, 8, 9)]
    [1, 2, 2, 4, 4, 8]
    """
    if n < 2:
        raise ValueError("n must be at least 2")
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(start: int, end: int, node: NodeReader, th: TreeHash = SHA256) -> bytes:
    """MTH(D[start:end]) for a range produced by RFC 9162's splits (``start`` aligned)."""
    return fold([node(level, index) for level, index in perfect_subtrees(start, end)], th)


def root(size: int, node: NodeReader, th: TreeHash = SHA256) -> bytes:
    """MTH(D[0:size]); the empty root for size 0."""
    if size < 0:
        raise ProofError("tree size must not be negative")
    return th.empty_root() if size == 0 else subtree_hash(0, size, node, th)


def inclusion_plan(index: int, size: int) -> list[list[Node]]:
    """For each hash of PATH(index, D[0:size]) (RFC 9162 §2.1.3.1), leaf side first, the
    perfect subtrees it is folded from: the walk of transparency-dev/merkle's
    ``proof.Inclusion``. Going up from the leaf, level ``l`` contributes the sibling of the
    leaf's ancestor: a left sibling is always a stored perfect subtree; a right one is
    perfect, or cut short by ``size`` (then folded from ``perfect_subtrees``), or absent
    (the ancestor is the last node of its level and moves up unchanged).

    >>> inclusion_plan(4, 7)
    [[(0, 5)], [(0, 6)], [(2, 0)]]
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    parts: list[list[Node]] = []
    level = 0
    while (1 << level) < size:
        sibling = (index >> level) ^ 1
        start = sibling << level
        if sibling & 1 == 0 or start + (1 << level) <= size:
            parts.append([(level, sibling)])
        elif start < size:
            parts.append(perfect_subtrees(start, size))
        level += 1
    return parts


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes form PROOF(old_size, D[0:new_size]) (RFC 9162
    §2.1.4.1, SUBPROOF with b = true). Empty when ``old_size`` is 0 or ``new_size``."""
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    start, end, complete = 0, new_size, True
    while True:
        m = old_size - start
        if m == end - start:
            if not complete:
                ranges.append((start, end))
            break
        k = largest_power_of_two_below(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            complete = False
    ranges.reverse()
    return ranges


def plan(ranges: Sequence[tuple[int, int]]) -> list[list[Node]]:
    """For each range, the perfect subtrees its hash is folded from: a store fetches all
    of them at once (~log2(n) + popcount(n) nodes for any proof), then ``fold``s each."""
    return [perfect_subtrees(start, end) for start, end in ranges]


def inclusion_proof(index: int, size: int, node: NodeReader, th: TreeHash = SHA256) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf side first."""
    return [fold([node(*n) for n in part], th) for part in inclusion_plan(index, size)]


def consistency_proof(
    old_size: int, new_size: int, node: NodeReader, th: TreeHash = SHA256
) -> list[bytes]:
    """PROOF(old_size, D[0:new_size]) of RFC 9162 §2.1.4.1 (SUBPROOF with b = true).

    Empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove).
    """
    return [
        subtree_hash(start, end, node, th) for start, end in consistency_ranges(old_size, new_size)
    ]


def leaves_node_reader(leaf_hashes: Sequence[bytes], th: TreeHash = SHA256) -> NodeReader:
    """A NodeReader over an in-memory list of leaf hashes (all levels precomputed)."""
    levels: list[list[bytes]] = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append(
            [th.hash_children(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        )

    def node(level: int, index: int) -> bytes:
        try:
            return levels[level][index]
        except IndexError:
            raise ProofError(f"no perfect subtree at level {level} index {index}") from None

    return node
