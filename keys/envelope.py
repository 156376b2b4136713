"""Authenticated encryption: passphrase KDF, key wrapping, and data files (AES-256-GCM).

Envelope encryption (issue 6, data at rest): each data file is encrypted under its own
random 256-bit *data key*; the data key is stored only *wrapped* (encrypted) under the
workspace *master key*; the master key is stored only wrapped under a key derived from the
passphrase with scrypt (RFC 7914). Rotating the master key re-wraps the small data keys and
never rewrites the data.

Blob layout (``encrypt_blob``)::

    b"SBXB" || 0x01 || nonce (12) || AES-256-GCM ciphertext || tag (16)

AES-GCM with random 96-bit nonces is safe for far more than the 2^32 encryptions per key
this product will ever do (NIST SP 800-38D §8.3); a data key encrypts one file version.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from keys.errors import DecryptionError, KeysError

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
BLOB_MAGIC: Final = b"SBXB\x01"

_TAMPERED = (
    "decryption failed: the encrypted data was modified or truncated, or the key or "
    "associated data is not the one it was encrypted with"
)


def derive_key(passphrase: bytes, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    """scrypt(passphrase, salt) → 32-byte key-encryption key (RFC 7914)."""
    if not passphrase:
        raise KeysError("the passphrase is empty")
    return Scrypt(salt=salt, length=KEY_SIZE, n=n, r=r, p=p).derive(passphrase)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce || AES-256-GCM(key, plaintext, aad)``."""
    if len(key) != KEY_SIZE:
        raise KeysError("AES-256-GCM needs a 32-byte key")
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of ``seal``; raises ``DecryptionError`` on any tampering or wrong key."""
    if len(key) != KEY_SIZE:
        raise KeysError("AES-256-GCM needs a 32-byte key")
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError(_TAMPERED)
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
    except InvalidTag:
        raise DecryptionError(_TAMPERED) from None


def encrypt_blob(data_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt a data file under its data key. ``aad`` binds the ciphertext to its context
    (e.g. ``b"dataset:residents:v3"``) so that a file swapped for another fails to decrypt."""
    return BLOB_MAGIC + seal(data_key, plaintext, aad)


def decrypt_blob(data_key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt ``encrypt_blob`` output; raises ``DecryptionError`` on any change."""
    if not blob.startswith(BLOB_MAGIC):
        raise DecryptionError(
            "decryption failed: this is not an encrypted sandbox file (bad header); it may "
            "be plaintext, truncated, or damaged"
        )
    return open_sealed(data_key, blob[len(BLOB_MAGIC) :], aad)
