"""Authenticated encryption: passphrase KDF, key wrapping, and data files.

Envelope encryption (issue 6, data at rest): each data file is encrypted under its own
random *data key*; the data key is stored only *wrapped* (encrypted) under the workspace
*master key*; the master key is stored only wrapped under a key derived from the
passphrase. Rotating the master key re-wraps the small data keys and never rewrites the
data.

Two ciphers, one per cryptography profile (``keys.profile``, issue 17):

- ``intl``: AES-256-GCM (NIST SP 800-38D), 32-byte keys; passphrase KDF scrypt (RFC 7914).
- ``sm``: SM4-GCM (SM4 of GB/T 32907-2016 in GCM mode, as RFC 8998 §3.1 and GB/T
  36624-2018 name it), 16-byte keys (SM4 has only 128-bit keys); passphrase KDF
  PBKDF2-HMAC-SM3 (RFC 8018 §5.2 with SM3, GB/T 32905).

Blob layout (``encrypt_blob``)::

    b"SBXB" || version || nonce (12) || ciphertext || tag (16)
    version 0x01 = AES-256-GCM, 0x02 = SM4-GCM

The header names the cipher, and the key size must be the cipher's (32 or 16 bytes), so a
key of one profile can never be used with the other's cipher. GCM with random 96-bit nonces
is safe for far more than the 2^32 encryptions per key this product will ever do (NIST SP
800-38D §8.3); a data key encrypts one file version.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from keys.errors import DecryptionError, KeysError
from keys.profile import Profile, check_profile

KEY_SIZE: Final = 32
"""AES-256 key size (the ``intl`` profile)."""
SM4_KEY_SIZE: Final = 16
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
BLOB_MAGIC: Final = b"SBXB\x01"
SM4_BLOB_MAGIC: Final = b"SBXB\x02"

_TAMPERED = (
    "decryption failed: the encrypted data was modified or truncated, or the key or "
    "associated data is not the one it was encrypted with"
)


def key_size(profile: Profile | str) -> int:
    """Symmetric key size of a profile's cipher: 32 (AES-256) or 16 (SM4)."""
    return SM4_KEY_SIZE if check_profile(profile) == "sm" else KEY_SIZE


def derive_key(passphrase: bytes, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    """scrypt(passphrase, salt) → 32-byte key-encryption key (RFC 7914)."""
    if not passphrase:
        raise KeysError("the passphrase is empty")
    return Scrypt(salt=salt, length=KEY_SIZE, n=n, r=r, p=p).derive(passphrase)


def subkey(key: bytes, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 of ``key``: an independent key per (salt, info), e.g. one per engine file."""
    return HKDF(hashes.SHA256(), length, salt, info).derive(key)


def derive_key_sm3(passphrase: bytes, salt: bytes, *, iterations: int) -> bytes:
    """PBKDF2-HMAC-SM3(passphrase, salt, iterations) → 16-byte SM4 key-encryption key."""
    if not passphrase:
        raise KeysError("the passphrase is empty")
    return PBKDF2HMAC(hashes.SM3(), SM4_KEY_SIZE, salt, iterations).derive(passphrase)


def _sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    encryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    encryptor.authenticate_additional_data(aad)
    return encryptor.update(plaintext) + encryptor.finalize() + encryptor.tag


def _sm4_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    ciphertext, tag = data[:-TAG_SIZE], data[-TAG_SIZE:]
    decryptor = Cipher(algorithms.SM4(key), modes.GCM(nonce, tag)).decryptor()
    decryptor.authenticate_additional_data(aad)
    return decryptor.update(ciphertext) + decryptor.finalize()


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce || GCM(key, plaintext, aad)``: AES-256-GCM for a 32-byte key, SM4-GCM for a
    16-byte key (the profile's key size picks the cipher; no other size is accepted)."""
    nonce = os.urandom(NONCE_SIZE)
    if len(key) == KEY_SIZE:
        return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)
    if len(key) == SM4_KEY_SIZE:
        return nonce + _sm4_gcm_encrypt(key, nonce, plaintext, aad)
    raise KeysError("a sealing key is 32 bytes (AES-256-GCM) or 16 bytes (SM4-GCM)")


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Inverse of ``seal``; raises ``DecryptionError`` on any tampering or wrong key."""
    if len(key) not in (KEY_SIZE, SM4_KEY_SIZE):
        raise KeysError("a sealing key is 32 bytes (AES-256-GCM) or 16 bytes (SM4-GCM)")
    if len(sealed) < NONCE_SIZE + TAG_SIZE:
        raise DecryptionError(_TAMPERED)
    nonce, body = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
    try:
        if len(key) == KEY_SIZE:
            return AESGCM(key).decrypt(nonce, body, aad)
        return _sm4_gcm_decrypt(key, nonce, body, aad)
    except InvalidTag:
        raise DecryptionError(_TAMPERED) from None


def encrypt_blob(data_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt a data file under its data key. ``aad`` binds the ciphertext to its context
    (e.g. ``b"dataset:residents:v3"``) so that a file swapped for another fails to decrypt.
    A 32-byte key gives an AES-256-GCM blob, a 16-byte key an SM4-GCM blob."""
    magic = BLOB_MAGIC if len(data_key) == KEY_SIZE else SM4_BLOB_MAGIC
    return magic + seal(data_key, plaintext, aad)


def decrypt_blob(data_key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt ``encrypt_blob`` output; raises ``DecryptionError`` on any change.

    SECURITY: the header's cipher must be the key's (AES-256-GCM needs a 32-byte key,
    SM4-GCM a 16-byte one), so a blob relabelled to the other cipher fails.
    """
    if blob.startswith(BLOB_MAGIC):
        expected = KEY_SIZE
    elif blob.startswith(SM4_BLOB_MAGIC):
        expected = SM4_KEY_SIZE
    else:
        raise DecryptionError(
            "decryption failed: this is not an encrypted sandbox file (bad header); it may "
            "be plaintext, truncated, or damaged"
        )
    if len(data_key) != expected:
        raise DecryptionError(_TAMPERED)
    return open_sealed(data_key, blob[len(BLOB_MAGIC) :], aad)
