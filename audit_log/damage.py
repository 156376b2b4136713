"""Which damage, and where: classifying the first anomaly an export's scan found.

How damage is localised: an edit to entry ``k`` changes its leaf hash, so the link
``prev[k+1] == SHA-256(prev[k] || leaf[k])`` breaks right after it; if entry ``k``'s own
``prev`` was edited, the links before *and* after it break. A deleted entry shows as a
jump in ``seq``; swapped entries as a ``seq`` that reappears later; an inserted entry as
a repeated ``seq`` or two entries naming the same predecessor.

Apart from the scan (``audit_log.line_scan``) because it runs on the failure path only,
re-reading light per-line facts, and its rules are the part a reader checks against the
documented damage kinds (``audit_log.errors.DAMAGE_KINDS``).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from audit_log.entry import ZERO_CHAIN
from audit_log.errors import VerificationError
from audit_log.hashing import SHA256, TreeHash

_ZERO32 = ZERO_CHAIN


class Records:
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


def classify(rec: Records, p: int) -> VerificationError:
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
