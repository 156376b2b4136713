"""The sealed records inside the ring: signing keys and master keys under the KEK.

Every private key and master key is sealed under the key-encryption key (AES-256-GCM, or
SM4-GCM in the ``sm`` profile) with its name and id bound as associated data, so sealed
keys cannot be swapped between records; a data key is sealed under a master key the same
way. These functions build and re-seal the records of ``keyring.json``'s data; locking,
reading and writing the file is ``keys.ring``'s.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from typing import Any

from keys.envelope import key_size, open_sealed, seal
from keys.profile import DEFAULT_PROFILE
from keys.ring_file import b64, timestamp, unb64
from keys.signing import Signer


def signer_aad(name: str, public_key: bytes) -> bytes:
    return b"sandbox-signing-key/v1\x00" + name.encode() + b"\x00" + public_key


def master_aad(master_id: str) -> bytes:
    return b"sandbox-master-key/v1\x00" + master_id.encode()


def data_key_aad(master_id: bytes) -> bytes:
    return b"sandbox-data-key/v1\x00" + master_id


def add_signer(data: dict[str, Any], kek: bytes, name: str, now: datetime | None) -> str:
    """Generate a signing key ``name`` of the ring's profile, seal it, make it current."""
    entry = data["signers"].setdefault(name, {"current": "", "keys": {}})
    while True:
        signer = Signer.generate(name, data.get("profile", DEFAULT_PROFILE))
        if signer.key_id_hex not in entry["keys"]:  # 4-byte ids: avoid a collision
            break
    sealed = seal(kek, signer.private_bytes_raw(), signer_aad(name, signer.public_key_bytes))
    entry["keys"][signer.key_id_hex] = {
        "alg": signer.algorithm,
        "public": b64(signer.public_key_bytes),
        "private": b64(sealed),
        "created": timestamp(now),
        "retired": None,
    }
    entry["current"] = signer.key_id_hex
    return signer.key_id_hex


def add_master(data: dict[str, Any], kek: bytes, now: datetime | None) -> str:
    """Generate a master key, seal it, make it current and retire the previous one."""
    master = data["master"]
    while True:
        master_id = secrets.token_hex(4)
        if master_id not in master["keys"]:
            break
    key = os.urandom(key_size(data.get("profile", DEFAULT_PROFILE)))
    master["keys"][master_id] = {
        "wrapped": b64(seal(kek, key, master_aad(master_id))),
        "created": timestamp(now),
        "retired": None,
    }
    previous = master["current"]
    if previous:
        master["keys"][previous]["retired"] = timestamp(now)
    master["current"] = master_id
    return master_id


def reseal(data: dict[str, Any], old_kek: bytes, new_kek: bytes) -> None:
    """Re-seal every master key and every remaining private key from ``old_kek`` to
    ``new_kek`` (a passphrase change)."""
    for mid, rec in data["master"]["keys"].items():
        key = open_sealed(old_kek, unb64(rec["wrapped"]), master_aad(mid))
        rec["wrapped"] = b64(seal(new_kek, key, master_aad(mid)))
    for name, entry in data["signers"].items():
        for rec in entry["keys"].values():
            if rec["private"] is None:
                continue
            aad = signer_aad(name, unb64(rec["public"]))
            raw = open_sealed(old_kek, unb64(rec["private"]), aad)
            rec["private"] = b64(seal(new_kek, raw, aad))
