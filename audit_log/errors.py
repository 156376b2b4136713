"""Exceptions of ``audit_log``: one root (``AuditError``) and structured subclasses."""

from __future__ import annotations

from typing import Literal, get_args

DamageKind = Literal[
    "edited",
    "deleted",
    "inserted",
    "reordered",
    "truncated",
    "forked",
    "bad_signature",
    "bad_encoding",
]
#: The same kinds as values, in the same order (one list: the type's).
DAMAGE_KINDS: tuple[DamageKind, ...] = get_args(DamageKind)


class AuditError(Exception):
    """Root of every error raised by ``audit_log``."""

    code = "audit_error"


class EntryError(AuditError):
    """An entry cannot be encoded or decoded (not canonical JSON, bad field, bad time)."""

    code = "bad_entry"


class ProofError(AuditError):
    """A Merkle proof is malformed or does not verify, or its sizes are out of range."""

    code = "bad_proof"


class CheckpointError(AuditError):
    """A checkpoint or signed note is malformed or its signature does not verify."""

    code = "bad_checkpoint"


class StoreError(AuditError):
    """The stored log is unusable for the requested operation (e.g. no transaction)."""

    code = "store_error"


class VerificationError(AuditError):
    """An exported log failed verification.

    ``kind`` says what damage was found; ``seq`` is the first bad sequence number, or
    ``None`` where no single entry is to blame (a bad signature, or a fork proven by two
    checkpoints rather than by an entry).
    """

    code = "verification_failed"

    def __init__(self, kind: DamageKind, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.kind: DamageKind = kind
        self.seq = seq
        self.message = message

    def __str__(self) -> str:
        where = f" at seq {self.seq}" if self.seq is not None else ""
        return f"{self.kind}{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"ok": False, "kind": self.kind, "seq": self.seq, "message": self.message}


class WitnessError(AuditError):
    """The witness refused a checkpoint."""

    code = "witness_refused"


class ForkError(WitnessError):
    """Two checkpoints that cannot both be true: same size and other root, or no valid
    consistency proof between them. SECURITY: evidence of equivocation; keep both notes."""

    code = "fork"

    def __init__(self, message: str, *, old_note: str, new_note: str) -> None:
        super().__init__(message)
        self.old_note = old_note
        self.new_note = new_note


class RollbackError(WitnessError):
    """A checkpoint smaller than one already accepted: the log went backwards."""

    code = "rollback"

    def __init__(self, message: str, *, old_size: int, new_size: int) -> None:
        super().__init__(message)
        self.old_size = old_size
        self.new_size = new_size
