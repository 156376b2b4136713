"""The exceptions of ``keys``: one root, structured subclasses (STYLE.md habit 5).

Following pyca/cryptography, failures that an attacker could use as an oracle are opaque:
a failed signature check or a failed decryption says *that* it failed, never *why*.
"""

from __future__ import annotations


class KeysError(Exception):
    """Root of every error raised by ``keys``."""


class SignatureError(KeysError):
    """A signature did not verify (bad signature, wrong key, or altered message)."""


class PasswordError(KeysError):
    """A password did not match its stored hash (or the stored hash is unusable)."""


class DecryptionError(KeysError):
    """Authenticated decryption failed: the ciphertext, its associated data or the key is wrong."""


class PassphraseError(KeysError):
    """The key ring's passphrase is missing or wrong."""


class KeyNotFound(KeysError):
    """A key id or key name is not in the key ring."""
