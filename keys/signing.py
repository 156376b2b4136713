"""Signing keys and signature verification: Ed25519, or SM2 in the ``sm`` profile.

Verification raises ``SignatureError`` and never returns ``False`` (pyca/cryptography's
habit): a caller cannot forget to look at a boolean. The algorithm of a public key is
told by its form, so a verifier needs nothing but the key: a raw Ed25519 key is 32 bytes,
a raw SM2 key the 65-byte point ``04 || x || y``; PEM keys carry their algorithm OID.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from keys.errors import KeysError, SignatureError
from keys.notekeys import key_hash, note_sigtype, verifier_key
from keys.profile import Profile, check_profile
from keys.sm2 import (
    SM2_PUBLIC_KEY_SIZE,
    SM2PrivateKey,
    sm2_public_key_from_pem,
    sm2_public_key_pem,
    sm2_verify,
)
from keys.sm3 import sm3

ED25519_PUBLIC_KEY_SIZE: Final = 32
ED25519_SIGNATURE_SIZE: Final = 64

SignatureAlgorithm = Literal["ed25519", "sm2"]
PROFILE_SIGNATURE: Final[dict[str, SignatureAlgorithm]] = {"intl": "ed25519", "sm": "sm2"}


def signature_algorithm(public_key: bytes) -> SignatureAlgorithm:
    """``"ed25519"`` or ``"sm2"`` for a raw public key (by its size and form)."""
    if len(public_key) == ED25519_PUBLIC_KEY_SIZE:
        return "ed25519"
    if len(public_key) == SM2_PUBLIC_KEY_SIZE and public_key[0] == 0x04:
        return "sm2"
    raise KeysError("a public key is 32 bytes (Ed25519) or a 65-byte SM2 point (04||x||y)")


def key_profile(public_key: bytes) -> Profile:
    """The cryptography profile a raw public key belongs to (``intl`` or ``sm``)."""
    return "sm" if signature_algorithm(public_key) == "sm2" else "intl"


class Signer:
    """A private signing key (Ed25519 or SM2) with its C2SP name and key id.

    ``key_id`` is the 4-byte C2SP signed-note key hash for the key's note signature type
    (``SHA-256(name || 0x0A || type || public key)[:4]``; type 0x01 for Ed25519, the
    0xff-escaped SM2 type otherwise, see ``keys.notekeys``), which is what a signed note's
    signature line carries. The private key never leaves this object; ``repr`` shows none of it.
    """

    __slots__ = ("_private", "name", "public_key_bytes", "key_id", "algorithm")

    def __init__(self, name: str, private_key: Ed25519PrivateKey | SM2PrivateKey) -> None:
        self._private = private_key
        self.name = name
        self.public_key_bytes: bytes
        self.algorithm: SignatureAlgorithm
        if isinstance(private_key, SM2PrivateKey):
            self.algorithm = "sm2"
            self.public_key_bytes = private_key.public_key_bytes()
        else:
            self.algorithm = "ed25519"
            self.public_key_bytes = private_key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        self.key_id: bytes = key_hash(
            name, note_sigtype(self.public_key_bytes), self.public_key_bytes
        )

    @classmethod
    def generate(cls, name: str, profile: Profile | str = "intl") -> Signer:
        """A new key of the profile's signature algorithm (Ed25519 or SM2)."""
        if check_profile(profile) == "sm":
            return cls(name, SM2PrivateKey.generate())
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(
        cls, name: str, raw: bytes, algorithm: SignatureAlgorithm = "ed25519"
    ) -> Signer:
        if algorithm == "sm2":
            return cls(name, SM2PrivateKey.from_private_bytes(raw))
        if algorithm != "ed25519":
            raise KeysError(f"unknown signature algorithm {algorithm!r}")
        return cls(name, Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def profile(self) -> Profile:
        return "sm" if self.algorithm == "sm2" else "intl"

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def sign(self, msg: bytes) -> bytes:
        """A signature of ``msg``: 64-byte Ed25519 (RFC 8032), or DER SM2 (GB/T 32918.2,
        default distinguishing ID, GM/T 0009)."""
        return self._private.sign(msg)

    def public_key_pem(self) -> str:
        return public_key_pem(self.public_key_bytes)

    def verifier_key(self) -> str:
        """The C2SP verifier key string ``name+keyhash+base64(type||key)``."""
        return verifier_key(self.name, self.public_key_bytes)

    def private_bytes_raw(self) -> bytes:
        """Raw private key bytes, for the key ring to encrypt. Never log or display them."""
        if isinstance(self._private, SM2PrivateKey):
            return self._private.private_bytes_raw()
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, algorithm={self.algorithm!r}, key_id={self.key_id.hex()!r})"


def public_key_pem(public_key: bytes) -> str:
    """SubjectPublicKeyInfo PEM of a raw Ed25519 (32-byte) or SM2 (65-byte) public key."""
    if signature_algorithm(public_key) == "sm2":
        return sm2_public_key_pem(public_key)
    key = Ed25519PublicKey.from_public_bytes(public_key)
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def public_key_bytes(public_key: str | bytes) -> bytes:
    """Raw public key (32-byte Ed25519 or 65-byte SM2) from PEM text/bytes or raw bytes.

    Raises ``KeysError`` for anything that is neither an Ed25519 nor an SM2 public key.
    """
    if isinstance(public_key, bytes) and b"-----BEGIN" not in public_key:
        signature_algorithm(public_key)  # raises for another size
        return public_key
    data = public_key.encode() if isinstance(public_key, str) else public_key
    try:
        loaded = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm:
        loaded = None  # cryptography has no SM2 curve: try the SM2 library
    except (ValueError, TypeError) as exc:
        raise KeysError(f"not a PEM public key: {exc}") from None
    if loaded is None:
        sm2 = sm2_public_key_from_pem(data)
        if sm2 is None:
            raise KeysError("the public key is neither an Ed25519 nor an SM2 key")
        return sm2
    if not isinstance(loaded, Ed25519PublicKey):
        raise KeysError("the public key is neither an Ed25519 nor an SM2 key")
    return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def split_pem_public_keys(text: str) -> list[bytes]:
    """Every public key in a text holding one or more PEM blocks (old keys too)."""
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
    """Check an Ed25519 or SM2 signature; raise ``SignatureError`` if it does not verify.

    ``public_key`` is PEM (str or bytes) or the raw key; its form says the algorithm.
    Returns ``None`` on success.
    """
    raw = public_key_bytes(public_key)
    if signature_algorithm(raw) == "sm2":
        sm2_verify(raw, msg, sig)
        return
    if len(sig) != ED25519_SIGNATURE_SIZE:
        raise SignatureError("signature verification failed")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(sig, msg)
    except InvalidSignature:
        raise SignatureError("signature verification failed") from None


def fingerprint(public_key: bytes) -> str:
    """Hex hash of a raw public key: a name-independent identifier for people to compare.

    SHA-256 of an Ed25519 key; SM3 of an SM2 key's 65-byte point (the ``sm`` profile
    uses national algorithms throughout; ``openssl dgst -sm3`` recomputes it).
    """
    if signature_algorithm(public_key) == "sm2":
        return sm3(public_key).hex()
    return hashlib.sha256(public_key).hexdigest()
