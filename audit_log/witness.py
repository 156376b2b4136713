"""The regulator as witness: C2SP tlog-cosignature/v1 over checkpoints it has checked.

Non-equivocation needs someone outside the log (issue 5): the witness remembers the last
checkpoint it accepted for each origin, accepts a new one only with a valid RFC 9162
consistency proof from it, and then cosigns. A same-size checkpoint with another root, a
proof that does not verify, or a smaller tree is refused with ``ForkError`` or
``RollbackError`` and the conflicting notes are written beside the state as evidence.

Cosignature (https://c2sp.org/tlog-cosignature, Ed25519 type)::

    signed message = "cosignature/v1\\n" + "time <POSIX seconds>\\n" + checkpoint body
    key hash       = SHA-256(name || 0x0A || 0x04 || Ed25519 public key)[:4]
    signature line = "— <name> base64(key hash || u64 big-endian time || signature)"

An SM2 witness (``sm`` profile, issue 17) signs the same message with SM2 and uses the
0xff-escaped SM2 cosignature type of ``keys.notekeys`` in its key hash; the consistency
proofs it checks use the log's tree hash (SM3 for a log with SM2 keys).

The first checkpoint ever seen for an origin is trusted on first use (documented in
docs/audit.md): start the witness when the log starts, or compare the first checkpoint out
of band.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit_log.checkpoint import (
    Checkpoint,
    LogKey,
    Note,
    NoteSignature,
    load_log_keys,
    open_checkpoint,
    tree_hash_for_keys,
)
from audit_log.entry import format_time
from audit_log.errors import (
    CheckpointError,
    ForkError,
    ProofError,
    RollbackError,
    WitnessError,
)
from audit_log.proofs import verify_consistency
from keys import (
    KeysError,
    SignatureError,
    Signer,
    cosignature_sigtype,
    key_hash,
    public_key_bytes,
    verifier_key,
    verify_signature,
)

COSIGNATURE_HEADER = "cosignature/v1\n"


def cosignature_message(checkpoint_body: str, timestamp: int) -> bytes:
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{checkpoint_body}".encode()


def cosign(signer: Signer, checkpoint_body: str, timestamp: int) -> NoteSignature:
    """A cosignature/v1 of ``checkpoint_body`` at ``timestamp`` (POSIX seconds)."""
    if not 0 <= timestamp < 2**63:
        raise WitnessError("cosignature timestamp out of range")
    kid = key_hash(
        signer.name, cosignature_sigtype(signer.public_key_bytes), signer.public_key_bytes
    )
    sig = signer.sign(cosignature_message(checkpoint_body, timestamp))
    return NoteSignature(signer.name, kid, struct.pack(">Q", timestamp) + sig)


def witness_verifier_key(signer: Signer) -> str:
    """The witness's C2SP vkey (type 0x04, or the SM2 cosignature type), to publish to
    whoever checks cosignatures."""
    return verifier_key(
        signer.name, signer.public_key_bytes, cosignature_sigtype(signer.public_key_bytes)
    )


def verify_cosignature(note: str, name: str, public_key: str | bytes) -> int:
    """Check that ``note`` carries a valid cosignature by witness ``name``; return its time.

    Raises ``CheckpointError`` if absent or invalid.
    """
    try:
        raw = public_key_bytes(public_key)
    except KeysError as exc:
        raise CheckpointError(f"bad witness key: {exc}") from None
    parsed = Note.parse(note)
    kid = key_hash(name, cosignature_sigtype(raw), raw)
    for sig in parsed.signatures:
        if sig.name != name or sig.key_hash != kid:
            continue
        if len(sig.signature) < 8 + 8 or len(sig.signature) > 8 + 72:
            raise CheckpointError(f"malformed cosignature by {name}")
        (timestamp,) = struct.unpack(">Q", sig.signature[:8])
        try:
            verify_signature(raw, cosignature_message(parsed.text, timestamp), sig.signature[8:])
        except SignatureError:
            raise CheckpointError(f"the cosignature by {name} does not verify") from None
        return int(timestamp)
    raise CheckpointError(f"no cosignature by witness {name}")


@dataclass(frozen=True)
class Accepted:
    """What the witness remembers per origin."""

    origin: str
    size: int
    root_hash: bytes
    note: str
    accepted_at: str


class Witness:
    """A witness with its signing key, the log keys it trusts, and a state file.

    The state file (JSON) is the witness's own, kept by the regulator, never by the log.
    """

    def __init__(
        self,
        signer: Signer,
        log_keys: Iterable[str | bytes | LogKey],
        state_path: str | os.PathLike[str],
    ) -> None:
        self.signer = signer
        self.log_keys = list(log_keys)
        self.state_path = Path(state_path)
        try:
            self.tree_hash = tree_hash_for_keys(load_log_keys(self.log_keys))
        except CheckpointError as exc:
            raise WitnessError(f"log keys refused: {exc}") from None

    def _load(self) -> dict[str, Any]:
        if not self.state_path.exists():
            return {"format": "sandbox-witness/v1", "logs": {}}
        state: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        if state.get("format") != "sandbox-witness/v1":
            raise WitnessError(f"{self.state_path} is not a witness state file")
        return state

    def _save(self, state: dict[str, Any]) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(f".{self.state_path.name}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(state, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.state_path)

    def accepted(self, origin: str) -> Accepted | None:
        rec = self._load()["logs"].get(origin)
        if rec is None:
            return None
        return Accepted(
            origin, rec["size"], base64.b64decode(rec["root"]), rec["note"], rec["accepted_at"]
        )

    def _evidence(self, kind: str, old_note: str, new_note: str, now: datetime) -> Path:
        stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = self.state_path.with_name(f"{self.state_path.stem}.{kind}-{stamp}.txt")
        path.write_text(
            f"# {kind} detected by witness {self.signer.name} at {format_time(now)}\n"
            f"# previously accepted checkpoint:\n{old_note}\n# presented checkpoint:\n{new_note}",
            encoding="utf-8",
        )
        return path

    def add_checkpoint(
        self, note: str, consistency_proof: Sequence[bytes], now: datetime
    ) -> NoteSignature:
        """Check ``note`` against the last accepted checkpoint and cosign it.

        ``consistency_proof`` goes from the last accepted size to the new size (empty the
        first time and for an unchanged size). Raises ``WitnessError`` (signature),
        ``RollbackError`` (smaller tree) or ``ForkError`` (same size, other root, or a
        proof that fails); the state is unchanged when anything is refused.
        """
        try:
            checkpoint = open_checkpoint(note, self.log_keys)
        except CheckpointError as exc:
            raise WitnessError(f"checkpoint refused: {exc}") from None
        old = self.accepted(checkpoint.origin)
        if old is not None:
            self._check_extends(old, checkpoint, note, consistency_proof, now)
        state = self._load()
        state["logs"][checkpoint.origin] = {
            "size": checkpoint.size,
            "root": base64.b64encode(checkpoint.root_hash).decode(),
            "note": note,
            "accepted_at": format_time(now),
        }
        self._save(state)
        return cosign(self.signer, Note.parse(note).text, int(now.timestamp()))

    def _check_extends(
        self,
        old: Accepted,
        new: Checkpoint,
        note: str,
        proof: Sequence[bytes],
        now: datetime,
    ) -> None:
        if new.size < old.size:
            path = self._evidence("rollback", old.note, note, now)
            raise RollbackError(
                f"ROLLBACK: {new.origin} presented size {new.size} after the witness accepted "
                f"size {old.size}; evidence in {path}",
                old_size=old.size,
                new_size=new.size,
            )
        try:
            verify_consistency(
                old.size, new.size, old.root_hash, new.root_hash, proof, self.tree_hash
            )
        except ProofError as exc:
            path = self._evidence("fork", old.note, note, now)
            raise ForkError(
                f"FORK: {new.origin} size {new.size} is not consistent with the accepted size "
                f"{old.size} ({exc}); evidence in {path}",
                old_note=old.note,
                new_note=note,
            ) from None


def cosigned_note(note: str, signature: NoteSignature) -> str:
    """``note`` with the cosignature line appended."""
    return note + signature.line()
