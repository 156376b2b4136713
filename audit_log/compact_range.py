"""Compact ranges of the RFC 6962 Merkle tree: the one place perfect subtrees are merged.

A compact range ``[begin, end)`` is the hashes of its maximal aligned perfect subtrees,
left to right (transparency-dev/merkle ``compact.Range``): O(log n) hashes that extend
it leaf by leaf or by an adjacent range, and, when it starts at leaf 0, give the root of
the tree of ``end`` leaves. The store keeps one as the log's right border (the nodes an
append completes are what it writes), the verifier builds one per run of exported lines
and merges them in order, and ``audit_log.tree`` folds proof parts with ``fold``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from audit_log.errors import ProofError
from audit_log.hashing import NODE_PREFIX, SHA256, TreeHash

# (level, index) of a perfect subtree: the leaves [index·2^level, (index+1)·2^level)
Node = tuple[int, int]
Completed = tuple[int, int, bytes]  # (level, index, hash) of a subtree an append completed

_sha256 = hashlib.sha256


def perfect_subtrees(start: int, end: int) -> list[Node]:
    """``[start, end)`` as its maximal aligned perfect subtrees, left to right.

    >>> perfect_subtrees(0, 7)
    [(2, 0), (1, 2), (0, 6)]
    >>> perfect_subtrees(3, 8)
    [(0, 3), (2, 1)]
    """
    if end <= start:
        raise ProofError(f"empty subtree range [{start}, {end})")
    parts: list[Node] = []
    pos = start
    while pos < end:
        size = 1 << ((end - pos).bit_length() - 1)  # largest power of two <= remaining
        while pos % size:
            size >>= 1
        level = size.bit_length() - 1
        parts.append((level, pos >> level))
        pos += size
    return parts


def fold(hashes: Sequence[bytes], th: TreeHash = SHA256) -> bytes:
    """MTH of adjacent perfect subtrees given left to right: folded from the right, which
    is exactly RFC 9162's recursive definition over their union."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = th.hash_children(left, result)
    return result


def _perfect_root(leaves: Sequence[bytes], th: TreeHash) -> bytes:
    """Root of a perfect subtree (``len(leaves)`` a power of two), level by level: the
    verifier's bulk path, without a call per node through ``TreeHash.hash_children``."""
    level = list(leaves)
    node = NODE_PREFIX
    if th is SHA256:
        sha256 = _sha256
        while len(level) > 1:
            level = [
                sha256(node + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)
            ]
        return level[0]
    digest = th.digest
    while len(level) > 1:
        level = [digest(node + level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class CompactRange:
    """The leaves ``[begin, end)`` as the hashes of their maximal aligned perfect subtrees.

    ``append`` adds the next leaf (amortised one node hash) and says which perfect
    subtrees it completed; ``extend`` adds an adjacent range; ``root`` is the RFC 9162
    MTH of a range starting at leaf 0. Mutable (the store grows its cached border in
    place); ``copy`` one to extend it without changing it.
    """

    __slots__ = ("begin", "end", "hashes", "th")

    def __init__(
        self,
        th: TreeHash = SHA256,
        begin: int = 0,
        end: int | None = None,
        hashes: Sequence[bytes] = (),
    ) -> None:
        end = begin if end is None else end
        if not 0 <= begin <= end:
            raise ProofError(f"no compact range [{begin}, {end})")
        expected = len(perfect_subtrees(begin, end)) if end > begin else 0
        if len(hashes) != expected:
            raise ProofError(
                f"the compact range [{begin}, {end}) has {expected} hashes, not {len(hashes)}"
            )
        self.th = th
        self.begin = begin
        self.end = end
        self.hashes = list(hashes)

    @classmethod
    def of_leaves(
        cls, leaf_hashes: Sequence[bytes], begin: int = 0, th: TreeHash = SHA256
    ) -> CompactRange:
        """The range of ``leaf_hashes`` placed at ``begin ..``, hashed level by level (the
        fast path for many leaves at once; ``append`` is the one for one at a time)."""
        end = begin + len(leaf_hashes)
        hashes = []
        if end > begin:
            for level, index in perfect_subtrees(begin, end):
                at = (index << level) - begin
                hashes.append(_perfect_root(leaf_hashes[at : at + (1 << level)], th))
        return cls(th, begin, end, hashes)

    def copy(self) -> CompactRange:
        twin = CompactRange.__new__(CompactRange)
        twin.th, twin.begin, twin.end, twin.hashes = self.th, self.begin, self.end, self.hashes[:]
        return twin

    def nodes(self) -> list[Node]:
        """``(level, index)`` of each hash, left to right."""
        return perfect_subtrees(self.begin, self.end) if self.end > self.begin else []

    def append(self, h: bytes, level: int = 0) -> list[Completed]:
        """Add the perfect subtree of ``level`` that starts at ``end`` (by default the leaf
        ``end``, ``h`` its leaf hash), merged with each left sibling it completes; return
        the subtrees completed above it, lowest first, as ``(level, index, hash)``: one
        per trailing 1 bit of ``end`` in a range from 0 (what the store writes)."""
        hashes, begin, start = self.hashes, self.begin, self.end
        if start & ((1 << level) - 1):
            raise ProofError(f"a subtree of level {level} cannot start at leaf {start}")
        self.end = start + (1 << level)
        completed: list[Completed] = []
        # a right child (bit ``level`` of its start set) whose left sibling is in range
        while start >> level & 1 and start - (1 << level) >= begin:
            start -= 1 << level
            h = self.th.hash_children(hashes.pop(), h)
            level += 1
            completed.append((level, start >> level, h))
        hashes.append(h)
        return completed

    def extend(self, other: CompactRange) -> None:
        """Append the adjacent range ``other`` (``other.begin == self.end``, same hash)."""
        if other.begin != self.end or other.th is not self.th:
            raise ProofError(
                f"cannot extend [{self.begin}, {self.end}) by [{other.begin}, {other.end})"
                + ("" if other.th is self.th else f" of another hash ({other.th.name})")
            )
        for (level, _), h in zip(other.nodes(), other.hashes, strict=True):
            self.append(h, level)

    def root(self) -> bytes:
        """MTH(D[0:end]) (RFC 9162 §2.1.1); the empty root for an empty range."""
        if self.begin:
            raise ProofError(f"a compact range from leaf {self.begin} has no tree root")
        return fold(self.hashes, self.th) if self.hashes else self.th.empty_root()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return (self.th, self.begin, self.end, self.hashes) == (
            other.th,
            other.begin,
            other.end,
            other.hashes,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        span = f"[{self.begin}, {self.end})"
        return f"CompactRange({self.th.name}, {span}, {len(self.hashes)} hashes)"
