"""Password and API-token hashing.

Passwords are low-entropy, so they get a memory-hard KDF: Argon2id (RFC 9106) through
argon2-cffi with its defaults (RFC 9106 §4 second recommended option's family; the
parameters are stored inside the hash, so they can be raised later and old hashes still
verify; ``password_needs_rehash`` tells when to upgrade at the next login).

API tokens are generated here with 256 bits of entropy; guessing one is infeasible, so a
slow KDF adds nothing and a single SHA-256 suffices to keep the stored value useless to a
thief of the database (the same reasoning as GitHub's token storage). Tokens carry the
prefix ``sbx_`` so secret scanners and people recognise a leaked one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from keys.errors import PasswordError

TOKEN_PREFIX: Final = "sbx_"
TOKEN_BYTES: Final = 32

_hasher = PasswordHasher()  # argon2id


def hash_password(password: str) -> str:
    """Argon2id PHC string (``$argon2id$v=19$m=...``) of ``password``."""
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> None:
    """Raise ``PasswordError`` unless ``password`` matches ``stored``; return ``None`` if it does."""
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise PasswordError("password does not match") from None


def password_needs_rehash(stored: str) -> bool:
    """True when ``stored`` was made with weaker parameters than the current defaults."""
    return _hasher.check_needs_rehash(stored)


def new_token() -> str:
    """A new bearer token: ``sbx_`` + 32 random bytes, URL-safe base64 (43 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex of a bearer token, the only form stored.

    Enough because tokens carry 256 bits of entropy (see module docstring); look tokens up
    by this hash, never by the token itself.
    """
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with a stored hash."""
    return hmac.compare_digest(hash_token(token), stored_hash)
