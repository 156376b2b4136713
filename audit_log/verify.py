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

Limits (documented, also in docs/audit.md): an attacker who rewrites a whole suffix,
recomputing every later ``prev``, is caught by the signed root but cannot be localised to
one entry; truncation back to an older *genuine* checkpoint is only caught by a witness
that has seen a later one.
"""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from audit_log.checkpoint import Checkpoint, LogKey, load_log_keys, open_checkpoint
from audit_log.entry import ZERO_CHAIN, check_canonical
from audit_log.errors import CheckpointError, EntryError, VerificationError
from audit_log.hashing import LEAF_PREFIX
from audit_log.tree import RootBuilder

_ZERO32 = ZERO_CHAIN
_PARALLEL_MIN_BYTES = 32 * 1024 * 1024


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
        }


@dataclass
class _Scan:
    """Per-line facts of a run of lines (built in worker processes for big files)."""

    count: int = 0
    seqs: array = field(default_factory=lambda: array("q"))
    prevs: bytearray = field(default_factory=bytearray)
    leaves: bytearray = field(default_factory=bytearray)
    errors: dict[int, str] = field(default_factory=dict)


def _scan_lines(lines: Sequence[bytes]) -> _Scan:
    scan = _Scan()
    sha256 = hashlib.sha256
    seqs, prevs, leaves, errors = scan.seqs, scan.prevs, scan.leaves, scan.errors
    for i, line in enumerate(lines):
        leaves += sha256(LEAF_PREFIX + line).digest()
        try:
            obj = check_canonical(line)
        except EntryError as exc:
            errors[i] = str(exc)
            seqs.append(-1)
            prevs += _ZERO32
            continue
        seqs.append(obj["seq"])
        prevs += bytes.fromhex(obj["prev"])
    scan.count = len(lines)
    return scan


def _split_lines(data: bytes, final: bool) -> tuple[list[bytes], str | None]:
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when data ends with a newline
    problem = None
    if tail:
        lines.append(tail)
        if final:
            problem = "the last line has no terminating newline"
    return lines, problem


def _scan_range(path: str, start: int, end: int, final: bool) -> _Scan:
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    lines, problem = _split_lines(data, final)
    scan = _scan_lines(lines)
    if problem and scan.count:
        scan.errors.setdefault(scan.count - 1, problem)
    return scan


def _merge(scans: Iterable[_Scan]) -> _Scan:
    total = _Scan()
    for scan in scans:
        for i, msg in scan.errors.items():
            total.errors[total.count + i] = msg
        total.seqs.extend(scan.seqs)
        total.prevs += scan.prevs
        total.leaves += scan.leaves
        total.count += scan.count
    return total


def _scan_file(path: Path, workers: int | None) -> _Scan:
    file_size = path.stat().st_size
    if workers is None:
        workers = (os.cpu_count() or 1) if file_size >= _PARALLEL_MIN_BYTES else 1
    if workers <= 1 or file_size == 0:
        return _scan_range(str(path), 0, file_size, True)
    pieces = workers * 4
    bounds = [0]
    with open(path, "rb") as fh:
        for k in range(1, pieces):
            fh.seek(file_size * k // pieces)
            fh.readline()
            pos = fh.tell()
            if bounds[-1] < pos < file_size:
                bounds.append(pos)
    bounds.append(file_size)
    ranges = list(zip(bounds[:-1], bounds[1:], strict=True))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_scan_range, str(path), a, b, i == len(ranges) - 1)
            for i, (a, b) in enumerate(ranges)
        ]
        return _merge(f.result() for f in futures)


class _View:
    """Random access to the scan for classifying the first anomaly."""

    def __init__(self, scan: _Scan) -> None:
        self.scan = scan
        self.n = scan.count

    def seq(self, q: int) -> int | None:
        return self.scan.seqs[q] if 0 <= q < self.n else None

    def prev(self, q: int) -> bytes:
        return bytes(self.scan.prevs[32 * q : 32 * q + 32])

    def leaf(self, q: int) -> bytes:
        return bytes(self.scan.leaves[32 * q : 32 * q + 32])

    def link_ok(self, q: int) -> bool:
        """Does entry q name the chain hash of entry q-1 (computed from their own bytes)?"""
        if q == 0:
            return self.prev(0) == _ZERO32
        return self.prev(q) == hashlib.sha256(self.prev(q - 1) + self.leaf(q - 1)).digest()


def _first_anomaly(view: _View) -> int | None:
    scan = view.scan
    first = min(scan.errors) if scan.errors else view.n
    for i, s in enumerate(scan.seqs):
        if i >= first:
            break
        if s != i:
            first = i
            break
    # link check over the (so far) clean prefix, in one pass
    prevs, leaves = scan.prevs, scan.leaves
    sha256 = hashlib.sha256
    chain = _ZERO32
    for q in range(first):
        if prevs[32 * q : 32 * q + 32] != chain:
            return q
        chain = sha256(chain + leaves[32 * q : 32 * q + 32]).digest()
    return first if first < view.n else None


def _classify(view: _View, p: int) -> VerificationError:
    scan = view.scan
    if p in scan.errors:
        return VerificationError("bad_encoding", p, f"line {p + 1}: {scan.errors[p]}")
    s = view.seq(p)
    assert s is not None
    if s != p:
        if p > 0 and s == view.seq(p - 1):
            return VerificationError(
                "inserted", s, f"two entries claim seq {s}; one of them was inserted"
            )
        if s >= 0 and scan.seqs.count(s) > 1:
            return VerificationError(
                "inserted", p, f"an extra copy of entry {s} was inserted at position {p}"
            )
        if s > p:
            if p in scan.seqs[p + 1 :]:
                return VerificationError(
                    "reordered", p, f"entry {p} appears after entry {s}: entries were reordered"
                )
            if view.seq(p + 1) == p + 1:
                return VerificationError(
                    "edited", p, f"entry at position {p} claims seq {s}: its seq was edited"
                )
            return VerificationError(
                "deleted",
                p,
                f"entries {p}..{s - 1} are missing (the entry after {p - 1} is {s})",
            )
        if view.seq(p + 1) == p + 1:
            return VerificationError(
                "edited", p, f"entry at position {p} claims seq {s}: its seq was edited"
            )
        return VerificationError("inserted", p, f"an entry claiming seq {s} was inserted at {p}")
    # seq is right, the chain link into p is broken
    if p == 0:
        return VerificationError("edited", 0, "entry 0 does not start the chain (prev not zero)")
    if view.seq(p + 1) == p:
        return VerificationError("inserted", p, f"an entry claiming seq {p} was inserted before the real one")
    if view.prev(p) == view.prev(p - 1):
        return VerificationError(
            "inserted", p - 1, f"entries {p - 1} and {p} name the same predecessor; one was inserted"
        )
    if p + 1 < view.n and view.seq(p + 1) == p + 1 and not view.link_ok(p + 1):
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
        raise VerificationError("forked", None, f"checkpoints name different logs: {sorted(origins)}")
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


def verify_scan(
    scan: _Scan,
    public_keys: Iterable[str | bytes | LogKey],
    checkpoint_notes: Sequence[str],
    *,
    origin: str | None = None,
) -> VerifyReport:
    keys = load_log_keys(public_keys)
    cps = _load_checkpoints(checkpoint_notes, keys, origin)
    view = _View(scan)
    p = _first_anomaly(view)
    if p is not None:
        raise _classify(view, p)
    largest = cps[-1]
    if scan.count < largest.size:
        raise VerificationError(
            "truncated",
            scan.count,
            f"the checkpoint covers {largest.size} entries but the log has {scan.count}: "
            f"entries from {scan.count} on are missing",
        )
    builder = RootBuilder()
    roots: dict[int, bytes] = {}
    wanted = sorted({cp.size for cp in cps} | {scan.count})
    leaves = scan.leaves
    at = 0
    for size in wanted:
        for q in range(at, size):
            builder.push(bytes(leaves[32 * q : 32 * q + 32]))
        at = size
        roots[size] = builder.root()
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
        seq = cp.size - 1 if cp.size == scan.count else lower
        raise VerificationError(
            "edited",
            seq,
            f"the first {cp.size} entries do not hash to the signed root; the chain is "
            f"internally consistent, so entry {cp.size - 1} was edited or the entries from "
            f"seq {lower} on were rewritten with a recomputed chain",
        )
    return VerifyReport(
        entries=scan.count,
        root_hash=roots[scan.count].hex(),
        checkpoint_size=largest.size,
        checkpoint_root=largest.root_hash.hex(),
        origin=largest.origin,
        checkpoints=len(cps),
        unsigned_tail=scan.count - largest.size,
    )


def verify_lines(
    lines: Sequence[bytes],
    public_keys: Iterable[str | bytes | LogKey],
    checkpoint_notes: Sequence[str],
    *,
    origin: str | None = None,
) -> VerifyReport:
    """Verify in-memory entry lines (without newlines). Raises ``VerificationError``."""
    return verify_scan(_scan_lines(lines), public_keys, checkpoint_notes, origin=origin)


def default_checkpoint_path(log_path: Path) -> Path:
    """``OUT.jsonl`` → ``OUT.checkpoint`` (where ``export_jsonl`` writes it)."""
    return log_path.with_suffix(".checkpoint")


def verify_file(
    log_path: str | os.PathLike[str],
    public_keys: Iterable[str | bytes | LogKey],
    checkpoint_paths: Sequence[str | os.PathLike[str]] | None = None,
    *,
    origin: str | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Verify an exported log file; checkpoints default to ``LOG.checkpoint`` beside it.

    Large files are scanned by ``workers`` processes (default: one per CPU above 32 MB).
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
            raise VerificationError("bad_signature", None, f"cannot read checkpoint {cp_path}: {exc}") from None
    keys = load_log_keys(public_keys)
    _load_checkpoints(notes, keys, origin)  # fail fast before reading a big log
    return verify_scan(_scan_file(path, workers), keys, notes, origin=origin)
