"""Key names, key hashes and verifier keys of the C2SP signed-note format (pure, no I/O).

C2SP signed-note (https://c2sp.org/signed-note): a key is named by a string without spaces
or ``+``; its *key hash* (key ID) is the first four bytes of
``SHA-256(name || 0x0A || signature type || public key)``; type ``0x01`` is Ed25519 note
signatures, ``0x04`` an Ed25519 tlog cosignature (https://c2sp.org/tlog-cosignature).
A verifier key ("vkey") is ``name + "+" + hex(key hash) + "+" + base64(type || public key)``.

SM2 (issue 17) has no type in C2SP's registry, so it follows the signed-note rule for
types outside it: the identifier ``0xff`` followed by a unique name. This project uses
``0xff || "data-sandbox/sm2"`` for SM2 note signatures and ``0xff ||
"data-sandbox/sm2-cosignature/v1"`` for SM2 tlog cosignatures; the public key after the
identifier is the 65-byte uncompressed point. The key hash stays SHA-256 (the signed-note
key hash is an identifier, not a security function, and changing it would break every
existing verifier's parser). See docs/audit.md, "SM2 signature types".

>>> key_hash("PeterNeumann", ALG_ED25519, bytes(32)).hex()
'60b9fb2a'
>>> sigtype_bytes(ALG_SM2)[:1]
b'\\xff'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from keys.errors import KeysError

ALG_ED25519 = 0x01
"""C2SP signed-note signature type of Ed25519 note signatures."""
ALG_COSIGNATURE_V1 = 0x04
"""C2SP tlog-cosignature signature type of Ed25519 ``cosignature/v1`` signatures."""
ALG_SM2 = b"\xffdata-sandbox/sm2"
"""Signature type of SM2 note signatures (0xff-escaped, outside C2SP's registry)."""
ALG_SM2_COSIGNATURE_V1 = b"\xffdata-sandbox/sm2-cosignature/v1"
"""Signature type of SM2 ``cosignature/v1`` signatures (0xff-escaped)."""

SigType = int | bytes
_KEY_SIZES: dict[bytes, int] = {
    bytes([ALG_ED25519]): 32,
    bytes([ALG_COSIGNATURE_V1]): 32,
    ALG_SM2: 65,
    ALG_SM2_COSIGNATURE_V1: 65,
}


def sigtype_bytes(alg: SigType) -> bytes:
    """The on-the-wire identifier of a signature type (one byte, or 0xff + a name)."""
    return bytes([alg]) if isinstance(alg, int) else bytes(alg)


def note_sigtype(public_key: bytes) -> SigType:
    """The note signature type of a raw public key: Ed25519 (32 bytes) or SM2 (65 bytes)."""
    if len(public_key) == 32:
        return ALG_ED25519
    if len(public_key) == 65 and public_key[0] == 0x04:
        return ALG_SM2
    raise KeysError("a public key is 32 bytes (Ed25519) or a 65-byte SM2 point")


def cosignature_sigtype(public_key: bytes) -> SigType:
    """The tlog-cosignature/v1 type of a raw public key (0x04 or the SM2 one)."""
    return ALG_COSIGNATURE_V1 if note_sigtype(public_key) == ALG_ED25519 else ALG_SM2_COSIGNATURE_V1


_MAX_NAME = 255


def check_key_name(name: str) -> str:
    """Return ``name`` if it is a valid signed-note key name, else raise ``KeysError``.

    Names are non-empty UTF-8 without Unicode spaces or ``+`` (C2SP signed-note §Signatures).
    """
    if not isinstance(name, str) or not name:
        raise KeysError("a key name must be a non-empty string")
    if len(name.encode()) > _MAX_NAME:
        raise KeysError(f"key name is longer than {_MAX_NAME} bytes")
    if "+" in name or any(ch.isspace() for ch in name) or not name.isprintable():
        raise KeysError(f"key name {name!r} must not contain spaces, '+' or control characters")
    return name


def key_hash(name: str, alg: SigType, public_key: bytes) -> bytes:
    """The 4-byte C2SP key hash of ``public_key`` named ``name`` for signature type ``alg``."""
    check_key_name(name)
    return hashlib.sha256(name.encode() + b"\n" + sigtype_bytes(alg) + public_key).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """A parsed C2SP verifier key: who signs (``name``), which key (``key_hash``), and the key."""

    name: str
    key_hash: bytes
    alg: SigType
    public_key: bytes

    def encode(self) -> str:
        material = base64.b64encode(sigtype_bytes(self.alg) + self.public_key).decode()
        return f"{self.name}+{self.key_hash.hex()}+{material}"

    @classmethod
    def parse(cls, vkey: str) -> VerifierKey:
        """Parse ``name+hash+base64``; the hash must match the key (C2SP signed-note)."""
        parts = vkey.strip().split("+", 2)  # base64 may itself contain "+"
        if len(parts) != 3:
            raise KeysError("a verifier key is 'name+keyhash+base64(type||key)'")
        name, hash_hex, material_b64 = parts
        check_key_name(name)
        try:
            claimed = bytes.fromhex(hash_hex)
            material = base64.b64decode(material_b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise KeysError(f"malformed verifier key: {exc}") from None
        if len(claimed) != 4 or len(hash_hex) != 8:
            raise KeysError("a verifier key's key hash is 4 bytes (8 hex digits)")
        alg: SigType | None = None
        for known, size in _KEY_SIZES.items():
            if material.startswith(known) and len(material) == len(known) + size:
                alg = known[0] if len(known) == 1 else known
                public_key = material[len(known) :]
                break
        if alg is None:
            raise KeysError(
                "only Ed25519 (type 0x01 or 0x04) and SM2 (0xff data-sandbox/sm2…) verifier "
                "keys are supported"
            )
        if key_hash(name, alg, public_key) != claimed:
            raise KeysError("verifier key hash does not match its name and public key")
        return cls(name=name, key_hash=claimed, alg=alg, public_key=public_key)


def verifier_key(name: str, public_key: bytes, alg: SigType | None = None) -> str:
    """The C2SP vkey string of a public key; the note signature type of its algorithm by
    default (Ed25519 0x01, or SM2)."""
    chosen = note_sigtype(public_key) if alg is None else alg
    return VerifierKey(name, key_hash(name, chosen, public_key), chosen, public_key).encode()
