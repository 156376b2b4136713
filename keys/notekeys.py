"""Key names, key hashes and verifier keys of the C2SP signed-note format (pure, no I/O).

C2SP signed-note (https://c2sp.org/signed-note): a key is named by a string without spaces
or ``+``; its *key hash* (key ID) is the first four bytes of
``SHA-256(name || 0x0A || signature type || public key)``; type ``0x01`` is Ed25519 note
signatures, ``0x04`` an Ed25519 tlog cosignature (https://c2sp.org/tlog-cosignature).
A verifier key ("vkey") is ``name + "+" + hex(key hash) + "+" + base64(type || public key)``.

>>> key_hash("PeterNeumann", ALG_ED25519, bytes(32)).hex()
'60b9fb2a'
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


def key_hash(name: str, alg: int, public_key: bytes) -> bytes:
    """The 4-byte C2SP key hash of ``public_key`` named ``name`` for signature type ``alg``."""
    check_key_name(name)
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """A parsed C2SP verifier key: who signs (``name``), which key (``key_hash``), and the key."""

    name: str
    key_hash: bytes
    alg: int
    public_key: bytes

    def encode(self) -> str:
        material = base64.b64encode(bytes([self.alg]) + self.public_key).decode()
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
        if len(material) != 33 or material[0] not in (ALG_ED25519, ALG_COSIGNATURE_V1):
            raise KeysError("only Ed25519 verifier keys (type 0x01 or 0x04) are supported")
        alg, public_key = material[0], material[1:]
        if key_hash(name, alg, public_key) != claimed:
            raise KeysError("verifier key hash does not match its name and public key")
        return cls(name=name, key_hash=claimed, alg=alg, public_key=public_key)


def verifier_key(name: str, public_key: bytes, alg: int = ALG_ED25519) -> str:
    """The C2SP vkey string of an Ed25519 public key."""
    return VerifierKey(name, key_hash(name, alg, public_key), alg, public_key).encode()
