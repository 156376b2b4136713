"""Keys of the sandbox: signing, key ids, encryption at rest, password and token hashing.

The only package that touches ``cryptography.hazmat`` (STYLE.md). Verification raises,
never returns ``False``.
"""

from keys.credentials import (
    TOKEN_MAC_KEY,
    TOKEN_PREFIX,
    hash_password,
    hash_token,
    new_token,
    password_needs_rehash,
    token_matches,
    verify_password,
)
from keys.envelope import decrypt_blob, encrypt_blob, key_size, subkey
from keys.errors import (
    DecryptionError,
    KeyNotFound,
    KeysError,
    PassphraseError,
    PasswordError,
    SignatureError,
)
from keys.notekeys import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    ALG_SM2,
    ALG_SM2_COSIGNATURE_V1,
    VerifierKey,
    check_key_name,
    cosignature_sigtype,
    key_hash,
    note_sigtype,
    sigtype_bytes,
    verifier_key,
)
from keys.passphrase import PASSPHRASE_ENV
from keys.profile import DEFAULT_PROFILE, PROFILE_ALGORITHMS, PROFILES, Profile, check_profile
from keys.ring import LOG_KEY_NAME, KeyRing, KeyRotation, PublicKeyInfo
from keys.signing import (
    Signer,
    fingerprint,
    key_profile,
    public_key_bytes,
    public_key_pem,
    signature_algorithm,
    split_pem_public_keys,
    verify_signature,
)
from keys.sm3 import sm3, sm3_stream

__all__ = [
    "subkey",
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "ALG_SM2",
    "ALG_SM2_COSIGNATURE_V1",
    "DEFAULT_PROFILE",
    "PROFILES",
    "PROFILE_ALGORITHMS",
    "Profile",
    "check_profile",
    "cosignature_sigtype",
    "key_profile",
    "key_size",
    "note_sigtype",
    "signature_algorithm",
    "sm3",
    "sm3_stream",
    "sigtype_bytes",
    "LOG_KEY_NAME",
    "PASSPHRASE_ENV",
    "TOKEN_MAC_KEY",
    "TOKEN_PREFIX",
    "DecryptionError",
    "KeyNotFound",
    "KeyRing",
    "KeyRotation",
    "KeysError",
    "PassphraseError",
    "PasswordError",
    "PublicKeyInfo",
    "SignatureError",
    "Signer",
    "VerifierKey",
    "check_key_name",
    "decrypt_blob",
    "encrypt_blob",
    "fingerprint",
    "hash_password",
    "hash_token",
    "key_hash",
    "new_token",
    "password_needs_rehash",
    "public_key_bytes",
    "public_key_pem",
    "split_pem_public_keys",
    "token_matches",
    "verifier_key",
    "verify_password",
    "verify_signature",
]
