"""Ed25519 signing keys and signature verification (the only hazmat use for signatures).

Verification raises ``SignatureError`` and never returns ``False`` (pyca/cryptography's
habit): a caller cannot forget to look at a boolean.
"""

from __future__ import annotations

import hashlib
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from keys.errors import KeysError, SignatureError
from keys.notekeys import ALG_ED25519, key_hash, verifier_key

ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64


class Signer:
    """An Ed25519 private key with its C2SP name and key id.

    ``key_id`` is the 4-byte C2SP signed-note key hash for signature type 0x01
    (``SHA-256(name || 0x0A || 0x01 || public key)[:4]``), which is what a signed note's
    signature line carries. The private key never leaves this object; ``repr`` shows none of it.
    """

    __slots__ = ("_private", "name", "public_key_bytes", "key_id")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.name = name
        self.public_key_bytes: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id: bytes = key_hash(name, ALG_ED25519, self.public_key_bytes)

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, name: str, raw: bytes) -> Signer:
        return cls(name, Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def sign(self, msg: bytes) -> bytes:
        """A 64-byte Ed25519 signature (RFC 8032) of ``msg``."""
        return self._private.sign(msg)

    def public_key_pem(self) -> str:
        return public_key_pem(self.public_key_bytes)

    def verifier_key(self) -> str:
        """The C2SP verifier key string ``name+keyhash+base64(0x01||key)``."""
        return verifier_key(self.name, self.public_key_bytes, ALG_ED25519)

    def private_bytes_raw(self) -> bytes:
        """Raw private key bytes, for the key ring to encrypt. Never log or display them."""
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id.hex()!r})"


def public_key_pem(public_key: bytes) -> str:
    """SubjectPublicKeyInfo PEM of a raw 32-byte Ed25519 public key."""
    key = Ed25519PublicKey.from_public_bytes(public_key)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_key_bytes(public_key: str | bytes) -> bytes:
    """Raw 32-byte Ed25519 public key from PEM text/bytes or raw bytes.

    Raises ``KeysError`` for anything that is not an Ed25519 public key.
    """
    if isinstance(public_key, bytes) and len(public_key) == ED25519_PUBLIC_KEY_SIZE:
        return public_key
    data = public_key.encode() if isinstance(public_key, str) else public_key
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeysError(f"not a PEM public key: {exc}") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise KeysError("the public key is not an Ed25519 key")
    return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def split_pem_public_keys(text: str) -> list[bytes]:
    """Every Ed25519 public key in a text holding one or more PEM blocks (old keys too)."""
    blocks: list[bytes] = []
    marker = "-----END PUBLIC KEY-----"
    for chunk in text.split(marker)[:-1]:
        start = chunk.find("-----BEGIN PUBLIC KEY-----")
        if start < 0:
            raise KeysError("malformed PEM: END without BEGIN")
        blocks.append(public_key_bytes(chunk[start:] + marker + "\n"))
    if not blocks:
        raise KeysError("no PEM public key found")
    return blocks


def verify_signature(public_key: str | bytes, msg: bytes, sig: bytes) -> None:
    """Check an Ed25519 signature; raise ``SignatureError`` if it does not verify.

    ``public_key`` is PEM (str or bytes) or the raw 32-byte key. Returns ``None`` on success.
    """
    raw = public_key_bytes(public_key)
    if len(sig) != ED25519_SIGNATURE_SIZE:
        raise SignatureError("signature verification failed")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(sig, msg)
    except InvalidSignature:
        raise SignatureError("signature verification failed") from None


def fingerprint(public_key: bytes) -> str:
    """SHA-256 hex of a raw public key: a name-independent identifier for people to compare."""
    return hashlib.sha256(public_key).hexdigest()
