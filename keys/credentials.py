"""Password and API-token hashing, per cryptography profile (``keys.profile``).

Passwords are low-entropy, so they get a slow KDF:

- ``intl``: Argon2id (RFC 9106) through argon2-cffi with its defaults (the parameters
  are stored inside the hash, so they can be raised later and old hashes still verify;
  ``password_needs_rehash`` tells when to upgrade at the next login).
- ``sm``: PBKDF2-HMAC-SM3 (RFC 8018 §5.2 with SM3 of GB/T 32905), 600,000 iterations, a
  16-byte random salt, a 32-byte output, stored as
  ``$pbkdf2-sm3$i=600000$<salt b64>$<hash b64>``. Why not Argon2id here: a 密评
  assessment (GB/T 39786-2021) accepts password storage built on approved algorithms, and
  Argon2 is not one, while an HMAC-SM3-based KDF is. PBKDF2 is not memory-hard, so the
  iteration count is what slows guessing; it matches OWASP's figure for PBKDF2 with a
  256-bit hash, and is stored in the hash so it can be raised.

``verify_password`` accepts both forms whatever the profile (the form is in the hash).

API tokens are generated here with 256 bits of entropy; guessing one is infeasible, so a
slow KDF adds nothing and one hash suffices to keep the stored value useless to a thief of
the database (the same reasoning as GitHub's token storage): SHA-256 in ``intl``,
HMAC-SM3 in ``sm`` under the fixed domain-separation key ``data-sandbox token/v1`` (the
SM3-based MAC the profile asks for; the key separates token hashes from every other SM3
use, it is not a secret). Tokens carry the prefix ``sbx_`` so secret scanners and people
recognise a leaked one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from keys.errors import PasswordError
from keys.profile import Profile, check_profile

TOKEN_PREFIX: Final = "sbx_"
TOKEN_BYTES: Final = 32
PBKDF2_SM3_PREFIX: Final = "$pbkdf2-sm3$"
PBKDF2_SM3_ITERATIONS: Final = 600_000
TOKEN_MAC_KEY: Final = b"data-sandbox token/v1"

_hasher = PasswordHasher()  # argon2id


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _pbkdf2_sm3(password: str, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(hashes.SM3(), 32, salt, iterations).derive(password.encode())


def hash_password(
    password: str, profile: Profile | str = "intl", *, iterations: int = PBKDF2_SM3_ITERATIONS
) -> str:
    """The stored form of ``password``: an Argon2id PHC string (``intl``) or
    ``$pbkdf2-sm3$i=N$salt$hash`` (``sm``)."""
    if check_profile(profile) == "intl":
        return _hasher.hash(password)
    salt = os.urandom(16)
    return f"{PBKDF2_SM3_PREFIX}i={iterations}${_b64(salt)}${_b64(_pbkdf2_sm3(password, salt, iterations))}"


def verify_password(stored: str, password: str) -> None:
    """Raise ``PasswordError`` unless ``password`` matches ``stored``; return ``None`` if it does."""
    if stored.startswith(PBKDF2_SM3_PREFIX):
        try:
            params, salt_b64, hash_b64 = stored[len(PBKDF2_SM3_PREFIX) :].split("$")
            if not params.startswith("i="):
                raise ValueError("no iteration count")
            iterations = int(params[2:])
            salt, expected = _unb64(salt_b64), _unb64(hash_b64)
            if not 1 <= iterations <= 10**8:
                raise ValueError("iteration count out of range")
        except (ValueError, binascii.Error):
            raise PasswordError("password does not match") from None
        if not hmac.compare_digest(_pbkdf2_sm3(password, salt, iterations), expected):
            raise PasswordError("password does not match")
        return
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise PasswordError("password does not match") from None


def password_needs_rehash(stored: str, profile: Profile | str = "intl") -> bool:
    """True when ``stored`` is weaker than the current defaults or of the other profile."""
    if stored.startswith(PBKDF2_SM3_PREFIX):
        if check_profile(profile) != "sm":
            return True
        try:
            return int(stored[len(PBKDF2_SM3_PREFIX) :].split("$")[0][2:]) < PBKDF2_SM3_ITERATIONS
        except ValueError:
            return True
    if check_profile(profile) == "sm":
        return True
    return _hasher.check_needs_rehash(stored)


def new_token() -> str:
    """A new bearer token: ``sbx_`` + 32 random bytes, URL-safe base64 (43 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str, profile: Profile | str = "intl") -> str:
    """The only stored form of a bearer token: SHA-256 hex (``intl``) or HMAC-SM3 hex
    (``sm``).

    Enough because tokens carry 256 bits of entropy (see module docstring); look tokens up
    by this hash, never by the token itself.
    """
    if check_profile(profile) == "intl":
        return hashlib.sha256(token.encode()).hexdigest()
    mac = crypto_hmac.HMAC(TOKEN_MAC_KEY, hashes.SM3())
    mac.update(token.encode())
    return mac.finalize().hex()


def token_matches(token: str, stored_hash: str, profile: Profile | str = "intl") -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(hash_token(token, profile), stored_hash)
