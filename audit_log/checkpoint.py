"""Checkpoints (C2SP tlog-checkpoint) signed as C2SP signed notes with Ed25519 or SM2.

Checkpoint body (https://c2sp.org/tlog-checkpoint)::

    <origin>\\n
    <tree size, ASCII decimal, no leading zeros>\\n
    <root hash, standard base64 with padding>\\n
    [<extension line>\\n ...]

Signed note (https://c2sp.org/signed-note): the body, one empty line, then one line per
signature ``— <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>``, where
the key hash is ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` and the signature is
over the body bytes exactly. Verifiers ignore signatures by keys they do not know (this is
how witness cosignatures ride along) and fail on a known key whose signature is bad.

In the ``sm`` profile (issue 17) the note format is the same; the signature is SM2 (DER,
GB/T 32918.2 with the default distinguishing ID of GM/T 0009) and the key hash uses the
0xff-escaped SM2 signature type of ``keys.notekeys``. The profile of a log is told by its
key: a verifier trusting SM2 log keys hashes the tree with SM3 (``tree_hash_for_keys``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from audit_log.errors import CheckpointError
from audit_log.hashing import HASH_SIZE, PROFILE_TREE_HASH, TreeHash
from keys import (
    ALG_ED25519,
    ALG_SM2,
    KeysError,
    SignatureError,
    Signer,
    VerifierKey,
    check_key_name,
    key_hash,
    key_profile,
    note_sigtype,
    public_key_bytes,
    split_pem_public_keys,
    verify_signature,
)

EM_DASH: Final = "\u2014"
MAX_SIGNATURES: Final = 100
_MAX_SIZE: Final = 2**63 - 1


@dataclass(frozen=True)
class Checkpoint:
    """A log's signed statement: ``origin`` has ``size`` entries with root ``root_hash``."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("the origin must be one non-empty line")
        if not 0 <= self.size <= _MAX_SIZE:
            raise CheckpointError("tree size out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError("the root hash must be 32 bytes")
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise CheckpointError("extension lines must be non-empty single lines")
            lines.append(ext)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint body (the note text, without signatures)."""
        if not body.endswith("\n"):
            raise CheckpointError("a checkpoint body ends with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("a checkpoint has an origin, a size and a root hash line")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise CheckpointError("the checkpoint origin line is empty")
        if (
            not size_text.isascii()
            or not size_text.isdigit()
            or (len(size_text) > 1 and size_text[0] == "0")
        ):
            raise CheckpointError(f"tree size {size_text!r} is not a decimal without leading zeros")
        size = int(size_text)
        if size > _MAX_SIZE:
            raise CheckpointError("tree size out of range")
        try:
            root_hash = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            raise CheckpointError("the root hash line is not base64") from None
        if len(root_hash) != HASH_SIZE or base64.b64encode(root_hash).decode() != root_text:
            raise CheckpointError("the root hash is not 32 bytes in canonical base64")
        if any(not ext for ext in extensions):
            raise CheckpointError("empty extension line in checkpoint")
        return cls(origin, size, root_hash, tuple(extensions))


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_hash + self.signature).decode()
        return f"{EM_DASH} {self.name} {blob}\n"


@dataclass(frozen=True)
class Note:
    """A parsed signed note: ``text`` (ends with a newline) and its signature lines."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(sig.line() for sig in self.signatures)

    @classmethod
    def parse(cls, note: str) -> Note:
        """Split a signed note into text and signatures (C2SP signed-note §Format)."""
        if not isinstance(note, str):
            raise CheckpointError("a signed note is text")
        split = note.rfind("\n\n")
        if split < 0:
            raise CheckpointError("a signed note has a blank line before its signatures")
        text, block = note[: split + 1], note[split + 2 :]
        if any((ord(ch) < 0x20 and ch != "\n") or ch == "\x7f" for ch in text):
            raise CheckpointError("note text contains control characters")
        if not block.endswith("\n"):
            raise CheckpointError("the last signature line must end with a newline")
        signatures = []
        for line in block[:-1].split("\n"):
            signatures.append(_parse_signature_line(line))
        if len(signatures) > MAX_SIGNATURES:
            raise CheckpointError("too many signatures on the note")
        return cls(text, tuple(signatures))


def _parse_signature_line(line: str) -> NoteSignature:
    prefix = EM_DASH + " "
    if not line.startswith(prefix):
        raise CheckpointError(f"signature line does not start with '{EM_DASH} '")
    parts = line[len(prefix) :].split(" ")
    if len(parts) != 2:
        raise CheckpointError("a signature line is '— <name> <base64>'")
    name, blob_text = parts
    try:
        check_key_name(name)
        blob = base64.b64decode(blob_text, validate=True)
    except (KeysError, binascii.Error, ValueError):
        raise CheckpointError(f"malformed signature line for {name!r}") from None
    if len(blob) < 5:
        raise CheckpointError("a note signature holds a 4-byte key hash and a signature")
    return NoteSignature(name, blob[:4], blob[4:])


def note_signature(signer: Signer, text: str) -> NoteSignature:
    """Sign ``text`` (a note body) as a signed-note signature (Ed25519 or SM2)."""
    return NoteSignature(signer.name, signer.key_id, signer.sign(text.encode()))


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    return Note(text, tuple(note_signature(s, text) for s in signers)).encode()


def sign_checkpoint(checkpoint: Checkpoint, signer: Signer) -> str:
    return sign_note(checkpoint.body(), [signer])


@dataclass(frozen=True)
class LogKey:
    """A key trusted to sign checkpoints. ``name`` is ``None`` for a bare PEM/raw key,
    which then matches a signature line of any name whose key hash fits."""

    public_key: bytes
    name: str | None = None


def load_log_keys(keys: Iterable[str | bytes | LogKey]) -> list[LogKey]:
    """Accept PEM text (one or more blocks), C2SP vkey strings, raw 32-byte Ed25519 or
    65-byte SM2 keys."""
    out: list[LogKey] = []
    for key in keys:
        if isinstance(key, LogKey):
            out.append(key)
        elif isinstance(key, str) and "-----BEGIN" not in key:
            try:
                vkey = VerifierKey.parse(key)
            except KeysError as exc:
                raise CheckpointError(f"bad verifier key: {exc}") from None
            if vkey.alg not in (ALG_ED25519, ALG_SM2):
                raise CheckpointError(
                    "a log key must be a note key (Ed25519 type 0x01 or the SM2 type)"
                )
            out.append(LogKey(vkey.public_key, vkey.name))
        elif isinstance(key, bytes) and b"-----BEGIN" not in key:
            try:
                out.append(LogKey(public_key_bytes(key)))
            except KeysError as exc:
                raise CheckpointError(f"bad public key: {exc}") from None
        else:
            text = key.decode() if isinstance(key, bytes) else key
            try:
                out.extend(LogKey(pk) for pk in split_pem_public_keys(text))
            except KeysError as exc:
                raise CheckpointError(f"bad public key: {exc}") from None
    return out


def verify_note(note: str | Note, keys: Iterable[str | bytes | LogKey]) -> tuple[Note, list[str]]:
    """Check the signatures of ``note`` by known ``keys``.

    Returns the note and the names whose signatures verified; raises ``CheckpointError``
    if a known key's signature is bad or no known key signed.
    """
    parsed = Note.parse(note) if isinstance(note, str) else note
    trusted = load_log_keys(keys)
    verified: list[str] = []
    msg = parsed.text.encode()
    for sig in parsed.signatures:
        for key in trusted:
            if key.name is not None and key.name != sig.name:
                continue
            if key_hash(sig.name, note_sigtype(key.public_key), key.public_key) != sig.key_hash:
                continue
            try:
                verify_signature(key.public_key, msg, sig.signature)
            except SignatureError:
                raise CheckpointError(
                    f"the signature by {sig.name} ({sig.key_hash.hex()}) does not verify"
                ) from None
            verified.append(sig.name)
            break
    if not verified:
        raise CheckpointError("the note carries no signature by a trusted key")
    return parsed, verified


def open_checkpoint(
    note: str, keys: Iterable[str | bytes | LogKey], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return its content; raises ``CheckpointError``."""
    parsed, _ = verify_note(note, keys)
    checkpoint = Checkpoint.parse(parsed.text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(
            f"checkpoint origin {checkpoint.origin!r} is not the expected {origin!r}"
        )
    return checkpoint


def tree_hash_for_keys(keys: Iterable[LogKey]) -> TreeHash:
    """The tree hash of a log whose trusted keys are ``keys``: SHA-256 for Ed25519 keys,
    SM3 for SM2 keys (issue 17). Keys of both profiles together are refused: one log is
    one profile, and guessing would let a key of the other profile choose the hash."""
    profiles = {key_profile(k.public_key) for k in keys}
    if len(profiles) != 1:
        raise CheckpointError(
            "the trusted log keys mix the international (Ed25519) and SM (SM2) profiles; "
            "give only the keys of the log's own profile"
            if profiles
            else "no trusted log key"
        )
    return PROFILE_TREE_HASH[profiles.pop()]


def key_ids(note: str) -> list[str]:
    return [sig.key_hash.hex() for sig in Note.parse(note).signatures]


__all__ = [
    "Checkpoint",
    "LogKey",
    "Note",
    "NoteSignature",
    "key_ids",
    "load_log_keys",
    "note_signature",
    "open_checkpoint",
    "public_key_bytes",
    "sign_checkpoint",
    "sign_note",
    "tree_hash_for_keys",
    "verify_note",
]
