"""Standalone verification of an exported log (``OUT.jsonl`` + public key + checkpoint).

Needs only this package and ``keys``: a regulator runs it offline on an export. Checks,
in order:

1. every checkpoint's signature by a trusted key (``bad_signature``), and that no two
   checkpoints of one size disagree (``forked``);
2. every line is the RFC 8785 canonical encoding of a valid entry (``bad_encoding``);
3. line ``i`` has ``seq == i`` and names its predecessor's chain hash in ``prev``; the
   first violation is classified (``edited``, ``deleted``, ``inserted``, ``reordered``);
4. the export holds at least as many entries as the largest checkpoint (``truncated``);
5. the RFC 6962 root of the first ``size`` entries equals each checkpoint's root
   (``edited`` / ``forked``).

How damage is localised: an edit to entry ``k`` changes its leaf hash, so the link
``prev[k+1] == SHA-256(prev[k] || leaf[k])`` breaks right after it; if entry ``k``'s own
``prev`` was edited, the links before *and* after it break. A deleted entry shows as a
jump in ``seq``; swapped entries as a ``seq`` that reappears later; an inserted entry as
a repeated ``seq`` or two entries naming the same predecessor.

The tree and chain hash is the log's: SHA-256 when the trusted keys are Ed25519, SM3 when
they are SM2 (issue 17, ``checkpoint.tree_hash_for_keys``), so the public key alone is
enough to verify a log of either profile.

Limits (documented, also in docs/audit.md): an attacker who rewrites a whole suffix,
recomputing every later ``prev``, is caught by the signed root but cannot be localised to
one entry; truncation back to an older *genuine* checkpoint is only caught by a witness
that has seen a later one.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from audit_log.checkpoint import (
    Checkpoint,
    LogKey,
    load_log_keys,
    open_checkpoint,
    tree_hash_for_keys,
)
from audit_log.compact_range import CompactRange
from audit_log.entry import ZERO_CHAIN, check_canonical
from audit_log.errors import CheckpointError, EntryError, VerificationError
from audit_log.hashing import LEAF_PREFIX, SHA256, TreeHash, tree_hash

_ZERO32 = ZERO_CHAIN
_PARALLEL_MIN_BYTES = 32 * 1024 * 1024
_sha256 = hashlib.sha256


@dataclass(frozen=True)
class VerifyReport:
    """What a successful verification established."""

    entries: int
    root_hash: str
    checkpoint_size: int
    checkpoint_root: str
    origin: str
    checkpoints: int
    unsigned_tail: int
    encoding_checked: bool = True
    tree_hash: str = "sha256"

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "entries": self.entries,
            "root_hash": self.root_hash,
            "checkpoint_size": self.checkpoint_size,
            "checkpoint_root": self.checkpoint_root,
            "origin": self.origin,
            "checkpoints": self.checkpoints,
            "unsigned_tail": self.unsigned_tail,
            "encoding_checked": self.encoding_checked,
            "tree_hash": self.tree_hash,
        }


# --------------------------------------------------------------------------- leaf hashes
def _leaf_hashes(lines: Sequence[bytes], th: TreeHash) -> list[bytes]:
    if th is SHA256:  # the hot loop, without a call per line through ``TreeHash.digest``
        return [_sha256(LEAF_PREFIX + line).digest() for line in lines]
    digest = th.digest
    return [digest(LEAF_PREFIX + line) for line in lines]


# --------------------------------------------------------------------------- per-chunk scan
@dataclass
class _Chunk:
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


def _scan_chunk(
    lines: Sequence[bytes],
    first_index: int,
    problem: str | None,
    wanted: frozenset[int],
    encoding: bool = True,
    th: TreeHash = SHA256,
) -> _Chunk:
    """Check encoding, seq and chain links of ``lines`` and build their compact range.

    Stops checking at the first anomaly (the caller classifies it); the leaves are all
    hashed first so that the compact range stays complete. ``encoding=False`` skips the
    canonical-JSON check (integrity only: order, chain, tree and signatures are still
    checked).
    """
    chunk = _Chunk(first_index, len(lines))
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


def _split_lines(data: bytes, final: bool) -> tuple[list[bytes], str | None]:
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
) -> _Chunk:
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    lines, problem = _split_lines(data, final)
    return _scan_chunk(lines, first_index, problem, wanted, encoding, tree_hash(hash_name))


# --------------------------------------------------------------------------- classification
class _Records:
    """Light per-line facts for classifying the first anomaly (the failure path only).

    In canonical JSON a quote inside a string is always escaped, so ``"seq":`` and
    ``"prev":"`` occur only as keys; the top-level ones are the last occurrences (they
    sort after ``details``).
    """

    def __init__(self, lines: Sequence[bytes], th: TreeHash = SHA256) -> None:
        self.th = th
        self.seqs = array("q")
        self.prevs: list[bytes | None] = []
        self.leaves: list[bytes] = []
        for line in lines:
            self.leaves.append(th.hash_leaf(line))
            self.seqs.append(self._seq(line))
            self.prevs.append(self._prev(line))
        self.n = len(self.leaves)

    @staticmethod
    def _seq(line: bytes) -> int:
        at = line.rfind(b'"seq":')
        digits = b""
        if at >= 0:
            for ch in line[at + 6 : at + 26]:
                if not 48 <= ch <= 57:
                    break
                digits += bytes([ch])
        return int(digits) if digits else -1

    @staticmethod
    def _prev(line: bytes) -> bytes | None:
        at = line.rfind(b'"prev":"')
        try:
            return bytes.fromhex(line[at + 8 : at + 72].decode()) if at >= 0 else None
        except (ValueError, UnicodeDecodeError):
            return None

    def seq(self, q: int) -> int | None:
        return self.seqs[q] if 0 <= q < self.n else None

    def link_ok(self, q: int) -> bool:
        """Does entry q name the chain hash of entry q-1 (computed from their own bytes)?"""
        if q == 0:
            return self.prevs[0] == _ZERO32
        before = self.prevs[q - 1]
        return before is not None and self.prevs[q] == self.th.digest(before + self.leaves[q - 1])


def _classify(rec: _Records, p: int) -> VerificationError:
    s = rec.seq(p)
    assert s is not None
    if s != p:
        if p > 0 and s == rec.seq(p - 1):
            return VerificationError(
                "inserted", s, f"two entries claim seq {s}; one of them was inserted"
            )
        if s >= 0 and rec.seqs.count(s) > 1:
            return VerificationError(
                "inserted", p, f"an extra copy of entry {s} was inserted at position {p}"
            )
        if s > p:
            if p in rec.seqs[p + 1 :]:
                return VerificationError(
                    "reordered", p, f"entry {p} appears after entry {s}: entries were reordered"
                )
            if rec.seq(p + 1) == p + 1:
                return VerificationError(
                    "edited", p, f"entry at position {p} claims seq {s}: its seq was edited"
                )
            return VerificationError(
                "deleted",
                p,
                f"entries {p}..{s - 1} are missing (the entry after {p - 1} is {s})",
            )
        if rec.seq(p + 1) == p + 1:
            return VerificationError(
                "edited", p, f"entry at position {p} claims seq {s}: its seq was edited"
            )
        return VerificationError("inserted", p, f"an entry claiming seq {s} was inserted at {p}")
    # seq is right, the chain link into p is broken
    if p == 0:
        return VerificationError("edited", 0, "entry 0 does not start the chain (prev not zero)")
    if rec.seq(p + 1) == p:
        return VerificationError(
            "inserted", p, f"an entry claiming seq {p} was inserted before the real one"
        )
    if rec.prevs[p] == rec.prevs[p - 1]:
        return VerificationError(
            "inserted",
            p - 1,
            f"entries {p - 1} and {p} name the same predecessor; one was inserted",
        )
    if p + 1 < rec.n and rec.seq(p + 1) == p + 1 and not rec.link_ok(p + 1):
        return VerificationError(
            "edited", p, f"entry {p} was edited (the chain breaks before and after it)"
        )
    return VerificationError(
        "edited", p - 1, f"entry {p - 1} was edited (entry {p} records another hash for it)"
    )


def _load_checkpoints(
    notes: Sequence[str], keys: list[LogKey], origin: str | None
) -> list[Checkpoint]:
    if not notes:
        raise VerificationError(
            "bad_signature",
            None,
            "no signed checkpoint to verify against (expected LOG.checkpoint beside the log, "
            "or --checkpoint FILE)",
        )
    cps = []
    for i, note in enumerate(notes):
        try:
            cps.append(open_checkpoint(note, keys, origin=origin))
        except CheckpointError as exc:
            raise VerificationError("bad_signature", None, f"checkpoint {i + 1}: {exc}") from None
    origins = {cp.origin for cp in cps}
    if len(origins) > 1:
        raise VerificationError(
            "forked", None, f"checkpoints name different logs: {sorted(origins)}"
        )
    by_size: dict[int, Checkpoint] = {}
    for cp in cps:
        other = by_size.setdefault(cp.size, cp)
        if other.root_hash != cp.root_hash:
            raise VerificationError(
                "forked",
                None,
                f"two validly signed checkpoints of size {cp.size} have different roots "
                f"({other.root_hash.hex()[:16]}… and {cp.root_hash.hex()[:16]}…): the log "
                "showed different histories (keep both notes as evidence)",
            )
    return sorted(by_size.values(), key=lambda cp: cp.size)


def _first_anomaly(chunks: Sequence[_Chunk]) -> tuple[int, str | None] | None:
    """Global position of the first anomaly (and its encoding message, if that is it)."""
    previous: _Chunk | None = None
    for chunk in chunks:
        if chunk.count and previous is not None and previous.bad is None:
            if chunk.bad != 0 and chunk.first_prev != previous.last_chain:
                return chunk.first_index, None  # broken link across the chunk boundary
        if chunk.bad is not None:
            return chunk.first_index + chunk.bad, chunk.bad_encoding
        if chunk.count:
            previous = chunk
    return None


def _verify_chunks(
    chunks: Sequence[_Chunk],
    cps: list[Checkpoint],
    records: Callable[[], _Records],
    th: TreeHash = SHA256,
) -> VerifyReport:
    found = _first_anomaly(chunks)
    if found is not None:
        p, encoding = found
        if encoding is not None:
            raise VerificationError("bad_encoding", p, f"line {p + 1}: {encoding}")
        raise _classify(records(), p)
    count = sum(c.count for c in chunks)
    largest = cps[-1]
    if count < largest.size:
        raise VerificationError(
            "truncated",
            count,
            f"the checkpoint covers {largest.size} entries but the log has {count}: "
            f"entries from {count} on are missing",
        )
    roots: dict[int, bytes] = {0: th.empty_root()}
    whole = CompactRange(th)
    for chunk in chunks:
        for size, snapshot in chunk.snapshots.items():
            prefix = whole.copy()
            prefix.extend(snapshot)
            roots[size] = prefix.root()
        if chunk.range is not None:
            whole.extend(chunk.range)
    roots[count] = whole.root()
    matched = [cp for cp in cps if roots[cp.size] == cp.root_hash]
    for cp in cps:
        if roots[cp.size] == cp.root_hash:
            continue
        if any(m.size > cp.size for m in matched):
            raise VerificationError(
                "forked",
                None,
                f"the signed checkpoint of size {cp.size} is not a prefix of the log that a "
                "later signed checkpoint covers: the log showed two histories",
            )
        lower = max((m.size for m in matched if m.size < cp.size), default=0)
        seq = cp.size - 1 if cp.size == count else lower
        raise VerificationError(
            "edited",
            seq,
            f"the first {cp.size} entries do not hash to the signed root; the chain is "
            f"internally consistent, so entry {cp.size - 1} was edited or the entries from "
            f"seq {lower} on were rewritten with a recomputed chain",
        )
    return VerifyReport(
        entries=count,
        root_hash=roots[count].hex(),
        checkpoint_size=largest.size,
        checkpoint_root=largest.root_hash.hex(),
        origin=largest.origin,
        checkpoints=len(cps),
        unsigned_tail=count - largest.size,
        tree_hash=th.name,
    )


def verify_lines(
    lines: Sequence[bytes],
    public_keys: Iterable[str | bytes | LogKey],
    checkpoint_notes: Sequence[str],
    *,
    origin: str | None = None,
    encoding: bool = True,
) -> VerifyReport:
    """Verify in-memory entry lines (without newlines). Raises ``VerificationError``.

    The tree hash is the keys' profile's (SHA-256 for Ed25519, SM3 for SM2)."""
    trusted = load_log_keys(public_keys)
    th = _tree_hash(trusted)
    cps = _load_checkpoints(checkpoint_notes, trusted, origin)
    wanted = frozenset(cp.size for cp in cps)
    chunk = _scan_chunk(lines, 0, None, wanted, encoding, th)
    report = _verify_chunks([chunk], cps, lambda: _Records(lines, th), th)
    return replace(report, encoding_checked=encoding)


def _tree_hash(trusted: list[LogKey]) -> TreeHash:
    if not trusted:
        return SHA256  # ``_load_checkpoints`` then says what is missing
    try:
        return tree_hash_for_keys(trusted)
    except CheckpointError as exc:
        raise VerificationError("bad_signature", None, str(exc)) from None


def default_checkpoint_path(log_path: Path) -> Path:
    """``OUT.jsonl`` → ``OUT.checkpoint`` (where ``export_jsonl`` writes it)."""
    return log_path.with_suffix(".checkpoint")


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


def _scan_file(
    path: Path, cps: list[Checkpoint], workers: int | None, encoding: bool, th: TreeHash
) -> list[_Chunk]:
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


def _file_records(path: Path, th: TreeHash) -> _Records:
    with open(path, "rb") as fh:
        lines, _ = _split_lines(fh.read(), True)
    return _Records(lines, th)


def verify_file(
    log_path: str | os.PathLike[str],
    public_keys: Iterable[str | bytes | LogKey],
    checkpoint_paths: Sequence[str | os.PathLike[str]] | None = None,
    *,
    origin: str | None = None,
    workers: int | None = None,
    encoding: bool = True,
) -> VerifyReport:
    """Verify an exported log file; checkpoints default to ``LOG.checkpoint`` beside it.

    Large files are scanned by ``workers`` processes (default: one per CPU above 32 MB),
    each checking a run of lines and hashing it into aligned Merkle subtrees that the
    parent combines. ``encoding=False`` (CLI ``--integrity-only``) skips the per-entry
    canonical-JSON check (about 70% of the CPU time with orjson installed, 85% without):
    order, chain, tree and signatures are still fully checked, so any change to the
    signed bytes is still caught; what is no longer caught is a non-canonical entry
    written (and signed) by the log itself.
    Raises ``VerificationError`` with ``kind`` and ``seq``.
    """
    path = Path(log_path)
    if checkpoint_paths is None:
        beside = default_checkpoint_path(path)
        checkpoint_paths = [beside] if beside.exists() else []
    notes = []
    for cp_path in checkpoint_paths:
        try:
            notes.append(Path(cp_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise VerificationError(
                "bad_signature", None, f"cannot read checkpoint {cp_path}: {exc}"
            ) from None
    trusted = load_log_keys(public_keys)
    th = _tree_hash(trusted)  # SHA-256 for Ed25519 log keys, SM3 for SM2 ones
    cps = _load_checkpoints(notes, trusted, origin)  # fail fast
    chunks = _scan_file(path, cps, workers, encoding, th)
    report = _verify_chunks(chunks, cps, lambda: _file_records(path, th), th)
    return replace(report, encoding_checked=encoding)
