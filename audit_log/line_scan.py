"""The scan of an exported log's lines, in chunks that worker processes check in parallel.

Apart from ``audit_log.verify`` because it is the part that must be fast (a regulator's
export may hold millions of entries): each chunk checks encoding, ``seq`` and chain links
of a run of lines and hashes it into aligned Merkle subtrees (``CompactRange``), so the
parent only combines ranges and, on failure, asks ``audit_log.damage`` what went wrong.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from audit_log.checkpoint import Checkpoint
from audit_log.compact_range import CompactRange
from audit_log.entry import ZERO_CHAIN, check_canonical
from audit_log.errors import EntryError
from audit_log.hashing import LEAF_PREFIX, SHA256, TreeHash, tree_hash

_ZERO32 = ZERO_CHAIN
_PARALLEL_MIN_BYTES = 32 * 1024 * 1024
_sha256 = hashlib.sha256


def _leaf_hashes(lines: Sequence[bytes], th: TreeHash) -> list[bytes]:
    if th is SHA256:  # the hot loop, without a call per line through ``TreeHash.digest``
        return [_sha256(LEAF_PREFIX + line).digest() for line in lines]
    digest = th.digest
    return [digest(LEAF_PREFIX + line) for line in lines]


@dataclass
class Chunk:
    """What one worker established about a run of lines ``first_index ..``: its checks,
    its compact range, and the ranges of its prefixes that end at a checkpoint's size."""

    first_index: int
    count: int = 0
    bad: int | None = None  # local index of the first anomaly
    bad_encoding: str | None = None  # message when the anomaly is an encoding error
    first_prev: bytes = _ZERO32
    last_chain: bytes = _ZERO32
    range: CompactRange | None = None
    snapshots: dict[int, CompactRange] = field(default_factory=dict)


def _seq_prev_light(line: bytes) -> tuple[int, bytes]:
    """``seq`` and ``prev`` of a line without decoding it (integrity-only mode).

    In canonical JSON a quote inside a string is always escaped, so ``"seq":`` and
    ``"prev":"`` occur only as keys, and the top-level ones are the last occurrences
    (they sort after ``details``). Raises ``EntryError`` if either is missing.
    """
    at = line.rfind(b'"seq":')
    end = at + 6
    while end < len(line) and 48 <= line[end] <= 57:
        end += 1
    p = line.rfind(b'"prev":"')
    if at < 0 or end == at + 6 or p < 0 or line[p + 72 : p + 73] != b'"':
        raise EntryError("no top-level seq and prev")
    try:
        return int(line[at + 6 : end]), bytes.fromhex(line[p + 8 : p + 72].decode())
    except (ValueError, UnicodeDecodeError):
        raise EntryError("prev is not 64 hex digits") from None


def scan_chunk(
    lines: Sequence[bytes],
    first_index: int,
    problem: str | None,
    wanted: frozenset[int],
    encoding: bool = True,
    th: TreeHash = SHA256,
) -> Chunk:
    """Check encoding, seq and chain links of ``lines`` and build their compact range.

    Stops checking at the first anomaly (the caller classifies it); the leaves are all
    hashed first so that the compact range stays complete. ``encoding=False`` skips the
    canonical-JSON check (integrity only: order, chain, tree and signatures are still
    checked).
    """
    chunk = Chunk(first_index, len(lines))
    leaves = _leaf_hashes(lines, th)
    digest = th.digest
    chain = _ZERO32
    for i, line in enumerate(lines):
        try:
            if encoding:
                obj = check_canonical(line)
                seq, prev = obj["seq"], bytes.fromhex(obj["prev"])
            else:
                seq, prev = _seq_prev_light(line)
        except EntryError as exc:
            chunk.bad, chunk.bad_encoding = i, str(exc)
            break
        if i == 0:
            chunk.first_prev = prev
        if (
            seq != first_index + i
            or (i == 0 and first_index == 0 and prev != _ZERO32)
            or (i > 0 and prev != chain)
        ):
            chunk.bad = i
            break
        chain = digest(prev + leaves[i])
    chunk.range = CompactRange.of_leaves(leaves, first_index, th)
    for size in wanted:
        if first_index < size <= first_index + len(lines):
            chunk.snapshots[size] = CompactRange.of_leaves(
                leaves[: size - first_index], first_index, th
            )
    chunk.last_chain = chain
    if problem and lines and chunk.bad is None:
        chunk.bad, chunk.bad_encoding = len(lines) - 1, problem
    return chunk


def split_lines(data: bytes, final: bool) -> tuple[list[bytes], str | None]:
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when data ends with a newline
    problem = None
    if tail:
        lines.append(tail)
        if final:
            problem = "the last line has no terminating newline"
    return lines, problem


def _count_lines(path: str, start: int, end: int) -> int:
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _scan_range(
    path: str,
    start: int,
    end: int,
    first_index: int,
    final: bool,
    wanted: frozenset[int],
    encoding: bool = True,
    hash_name: str = "sha256",
) -> Chunk:
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    lines, problem = split_lines(data, final)
    return scan_chunk(lines, first_index, problem, wanted, encoding, tree_hash(hash_name))


def first_anomaly(chunks: Sequence[Chunk]) -> tuple[int, str | None] | None:
    """Global position of the first anomaly (and its encoding message, if that is it)."""
    previous: Chunk | None = None
    for chunk in chunks:
        if chunk.count and previous is not None and previous.bad is None:
            if chunk.bad != 0 and chunk.first_prev != previous.last_chain:
                return chunk.first_index, None  # broken link across the chunk boundary
        if chunk.bad is not None:
            return chunk.first_index + chunk.bad, chunk.bad_encoding
        if chunk.count:
            previous = chunk
    return None


def _ranges(path: Path, pieces: int) -> list[tuple[int, int]]:
    file_size = path.stat().st_size
    bounds = [0]
    with open(path, "rb") as fh:
        for k in range(1, pieces):
            fh.seek(file_size * k // pieces)
            fh.readline()
            pos = fh.tell()
            if bounds[-1] < pos < file_size:
                bounds.append(pos)
    bounds.append(file_size)
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def scan_file(
    path: Path, cps: list[Checkpoint], workers: int | None, encoding: bool, th: TreeHash
) -> list[Chunk]:
    file_size = path.stat().st_size
    if workers is None:
        workers = (os.cpu_count() or 1) if file_size >= _PARALLEL_MIN_BYTES else 1
    wanted = frozenset(cp.size for cp in cps)
    if workers <= 1 or file_size == 0:
        return [_scan_range(str(path), 0, file_size, 0, True, wanted, encoding, th.name)]
    ranges = _ranges(path, workers * 4)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        counts = list(pool.map(_count_lines, [str(path)] * len(ranges), *zip(*ranges, strict=True)))
        firsts = [sum(counts[:k]) for k in range(len(ranges))]
        futures = [
            pool.submit(
                _scan_range,
                str(path),
                a,
                b,
                firsts[k],
                k == len(ranges) - 1,
                wanted,
                encoding,
                th.name,
            )
            for k, (a, b) in enumerate(ranges)
        ]
        return [f.result() for f in futures]
