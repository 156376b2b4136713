"""Compact ranges (``audit_log.compact_range``): the one merge of perfect subtrees that the
tree, the store and the verifier share, checked against the naive RFC 9162 root and the
perfect-subtree layout the store writes."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_audit_hashing import naive_root

from audit_log import tree
from audit_log.compact_range import CompactRange, perfect_subtrees
from audit_log.errors import ProofError
from audit_log.hashing import SHA256, SM3, TreeHash

HASHES = pytest.mark.parametrize("th", [SHA256, SM3], ids=lambda th: th.name)


def leaves(n: int, th: TreeHash) -> list[bytes]:
    return [th.hash_leaf(i.to_bytes(4, "big")) for i in range(n)]


@HASHES
def test_appending_leaf_by_leaf_gives_every_root_and_completes_every_stored_node(th):
    """Each append completes exactly the level >= 1 perfect subtrees ending at it (the
    rows the store writes to ``audit_nodes``), and the root matches RFC 9162 at every size."""
    data = leaves(70, th)
    node = tree.leaves_node_reader(data, th)
    streamed = CompactRange(th)
    assert streamed.root() == th.empty_root()
    for seq, leaf in enumerate(data):
        completed = streamed.append(leaf)
        expected = [(lv, seq >> lv) for lv in range(1, 8) if (seq + 1) % (1 << lv) == 0]
        assert [(lv, i) for lv, i, _ in completed] == expected
        assert all(h == node(lv, i) for lv, i, h in completed)
        assert streamed.root() == naive_root(data[: seq + 1], th)
        assert streamed.nodes() == perfect_subtrees(0, seq + 1)
        assert streamed.hashes == [node(lv, i) for lv, i in streamed.nodes()]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=150),
    st.integers(min_value=0, max_value=150),
    st.sampled_from([SHA256, SM3]),
)
def test_ranges_anywhere_are_the_maximal_perfect_subtrees(begin, count, th):
    data = leaves(begin + count, th)
    node = tree.leaves_node_reader(data, th) if data else None
    grown = CompactRange(th, begin)
    for leaf in data[begin:]:
        grown.append(leaf)
    bulk = CompactRange.of_leaves(data[begin:], begin, th)
    assert grown == bulk and (grown.begin, grown.end) == (begin, begin + count)
    if count:
        assert bulk.hashes == [node(lv, i) for lv, i in perfect_subtrees(begin, begin + count)]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=200),
    st.lists(st.integers(min_value=1, max_value=200), max_size=6),
)
def test_extending_by_adjacent_ranges_gives_the_root_of_the_whole(size, cuts):
    data = leaves(size, SHA256)
    bounds = sorted({0, size, *[c % size for c in cuts]})
    whole = CompactRange()
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        before = whole.copy()
        whole.extend(CompactRange.of_leaves(data[a:b], a))
        assert before.end == a  # ``copy`` is independent of what it was copied from
    assert whole == CompactRange.of_leaves(data)
    assert whole.root() == naive_root(data)


def test_misuse_is_refused():
    data = leaves(8, SHA256)
    with pytest.raises(ProofError, match="has 1 hashes, not 2"):
        CompactRange(SHA256, 0, 4, data[:2])
    with pytest.raises(ProofError, match="no tree root"):
        CompactRange.of_leaves(data[3:], 3).root()
    with pytest.raises(ProofError, match="cannot extend"):
        CompactRange.of_leaves(data[:3]).extend(CompactRange.of_leaves(data[4:], 4))
    with pytest.raises(ProofError, match="another hash"):
        CompactRange(SHA256).extend(CompactRange(SM3))
    with pytest.raises(ProofError, match="cannot start at leaf 1"):
        CompactRange.of_leaves(data[:1]).append(data[1], 1)


@HASHES
def test_pickles_with_its_tree_hash(th):
    """The verifier's worker processes send ranges back: the hash stays the same object."""
    original = CompactRange.of_leaves(leaves(11, th), 5, th)
    copy = pickle.loads(pickle.dumps(original))
    assert copy == original and copy.th is th
