"""Cryptography profiles: which algorithms one workspace uses, fixed at creation (issue 17).

``intl`` (the default) is the international profile: Ed25519 (RFC 8032) signatures,
SHA-256, AES-256-GCM, scrypt and Argon2id. ``sm`` is the Chinese commercial-cryptography
profile that a 密评 assessment (GB/T 39786-2021) expects: SM2 signatures (GB/T 32918.2,
default distinguishing ID of GM/T 0009), SM3 (GB/T 32905), SM4-GCM (GB/T 32907, GCM as
in RFC 8998 §3.1) and PBKDF2-HMAC-SM3 / HMAC-SM3.

The structures do not change between profiles: RFC 6962 trees, C2SP signed notes,
envelope encryption. Only the algorithms do.

>>> check_profile("sm")
'sm'
>>> [PROFILE_ALGORITHMS[p]["signature"] for p in PROFILES]
['Ed25519', 'SM2']
"""

from __future__ import annotations

from typing import Final, Literal

from keys.errors import KeysError

Profile = Literal["intl", "sm"]
PROFILES: Final[tuple[Profile, ...]] = ("intl", "sm")
DEFAULT_PROFILE: Final[Profile] = "intl"

PROFILE_ALGORITHMS: Final[dict[str, dict[str, str]]] = {
    "intl": {
        "signature": "Ed25519",
        "hash": "SHA-256",
        "cipher": "AES-256-GCM",
        "key_kdf": "scrypt",
        "password_hash": "Argon2id",
        "token_hash": "SHA-256",
    },
    "sm": {
        "signature": "SM2",
        "hash": "SM3",
        "cipher": "SM4-GCM",
        "key_kdf": "PBKDF2-HMAC-SM3",
        "password_hash": "PBKDF2-HMAC-SM3",
        "token_hash": "HMAC-SM3",
    },
}


def check_profile(profile: object) -> Profile:
    """Return ``profile`` if it names a profile, else raise ``KeysError`` naming the choices."""
    if profile == "intl":
        return "intl"
    if profile == "sm":
        return "sm"
    raise KeysError(f"unknown cryptography profile {profile!r}: use 'intl' or 'sm'")
