"""The ring's passphrase: where it comes from, and the key-encryption key derived from it.

Where the passphrase comes from (first that is set):

1. the ``passphrase`` argument (e.g. read from a prompt by the CLI);
2. the environment variable ``SANDBOX_KEY_PASSPHRASE``;
3. the file ``keys_dir/passphrase``, generated once (32 random bytes, mode 0600) when a
   ring is created without 1 or 2.

Option 3 is the embedded default: it protects keys copied without their folder (backups of
``keyring.json`` alone, a leaked database dump) but not against someone who can read the
whole ``keys/`` folder. To do better, supply the passphrase from outside the workspace
(1 or 2, e.g. from a secrets manager) and call ``KeyRing.change_passphrase`` once, which
re-seals everything and deletes the generated file.

Key-encryption: scrypt (RFC 7914, N=2^15, r=8, p=1) derives a 256-bit key-encryption key
(KEK) from the passphrase; in the ``sm`` profile (issue 17) PBKDF2-HMAC-SM3 (600,000
iterations) derives a 128-bit one. A sealed check value in the ring tells a wrong
passphrase from a damaged key.

Apart from ``keys.ring`` because it is the one place a secret enters from outside, and its
rules (precedence, file mode, KDF parameters) are what an operator audits.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Final

from keys.envelope import derive_key, derive_key_sm3, open_sealed, seal
from keys.errors import DecryptionError, KeysError, PassphraseError
from keys.ring_file import FORMAT, b64, unb64, write_private_file

log = logging.getLogger(__name__)

PASSPHRASE_ENV: Final = "SANDBOX_KEY_PASSPHRASE"
PASSPHRASE_FILE: Final = "passphrase"
SCRYPT_N: Final = 2**15
PBKDF2_ITERATIONS: Final = 600_000

_CHECK_PLAINTEXT = b"sandbox key ring passphrase check"


def _read_passphrase_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    # SECURITY: like ssh with private keys, refuse a passphrase readable by others.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PassphraseError(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )
    return path.read_bytes().strip()


def resolve_passphrase(keys_dir: Path, passphrase: bytes | None, *, create: bool) -> bytes:
    """The passphrase, by the precedence above; generates the file (3) only if ``create``."""
    if passphrase is not None:
        if not passphrase:
            raise PassphraseError("the passphrase is empty")
        return passphrase
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode()
    path = keys_dir / PASSPHRASE_FILE
    if path.exists():
        return _read_passphrase_file(path)
    if not create:
        raise PassphraseError(
            f"no passphrase for the key ring in {keys_dir}: set {PASSPHRASE_ENV} "
            "(or pass it on the command line prompt)"
        )
    generated = secrets.token_urlsafe(32).encode()
    write_private_file(path, generated + b"\n")
    log.warning(
        "generated a key-ring passphrase in %s (the embedded default); to keep it outside "
        "the workspace, set %s and re-seal with `sandbox keys passphrase`",
        path,
        PASSPHRASE_ENV,
    )
    return generated


def new_kdf(profile: str, salt: bytes, scrypt_n: int, pbkdf2_iterations: int) -> dict[str, Any]:
    """The KDF parameters of a new ring of ``profile`` (stored in ``keyring.json``)."""
    if profile == "sm":
        return {"alg": "pbkdf2-hmac-sm3", "salt": b64(salt), "iterations": pbkdf2_iterations}
    return {"alg": "scrypt", "salt": b64(salt), "n": scrypt_n, "r": 8, "p": 1}


def derive_kek(passphrase: bytes, data: dict[str, Any]) -> bytes:
    """The key-encryption key, by the KDF and parameters the ring records."""
    kdf = data["kdf"]
    if kdf.get("alg") == "pbkdf2-hmac-sm3":
        return derive_key_sm3(passphrase, unb64(kdf["salt"]), iterations=kdf["iterations"])
    if kdf.get("alg") != "scrypt":
        raise KeysError(f"unsupported KDF {kdf.get('alg')!r}")
    return derive_key(passphrase, unb64(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"])


def check_value(kek: bytes) -> str:
    """The sealed check value stored as ``"check"``: opens only under the right KEK."""
    return b64(seal(kek, _CHECK_PLAINTEXT, FORMAT.encode()))


def open_check(kek: bytes, data: dict[str, Any], keys_dir: Path) -> None:
    """``PassphraseError`` unless ``kek`` opens the ring's check value."""
    try:
        open_sealed(kek, unb64(data["check"]), FORMAT.encode())
    except DecryptionError:
        raise PassphraseError(
            f"wrong passphrase for the key ring in {keys_dir} (check "
            f"{PASSPHRASE_ENV} or the passphrase given)"
        ) from None
