"""The workspace key ring: signing keys, the master key, all encrypted at rest.

Layout of ``keys_dir`` (mode 0700)::

    keyring.json   KDF parameters, a passphrase check value, the wrapped master keys and
                   every signing key (public key in clear, private key sealed), mode 0600
    passphrase     only when no passphrase was supplied at creation: the embedded default
    .lock          advisory lock serialising writers (server and CLI may share the ring)

Where the passphrase comes from and how the key-encryption key is derived from it:
``keys.passphrase``. How each key is sealed in the ring: ``keys.sealed_keys``. The file
itself (atomic writes, the lock): ``keys.ring_file``. This module is the ring's lifetime:
opening or creating it, following other processes' changes, and rotating keys.

Cryptography profile (issue 17): a ring is created for one profile (``keys.profile``) and
records it (``"profile"`` in ``keyring.json``; absent means ``intl``). In the ``sm``
profile the KEK is PBKDF2-HMAC-SM3 (600,000 iterations, 128-bit), keys are sealed with
SM4-GCM, the master and data keys are 128-bit SM4 keys and signing keys are SM2. Opening a
ring with another profile than its own is refused: one workspace is one profile.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from keys.envelope import key_size, open_sealed, seal
from keys.errors import DecryptionError, KeyNotFound, KeysError, PassphraseError
from keys.notekeys import check_key_name
from keys.passphrase import (
    PASSPHRASE_FILE,
    PBKDF2_ITERATIONS,
    SCRYPT_N,
    check_value,
    derive_kek,
    new_kdf,
    open_check,
    resolve_passphrase,
)
from keys.profile import DEFAULT_PROFILE, Profile, check_profile
from keys.ring_file import (
    FORMAT,
    RING_FILE,
    b64,
    dump_ring,
    load_ring,
    locked,
    timestamp,
    unb64,
    write_private_file,
)
from keys.sealed_keys import (
    add_master,
    add_signer,
    data_key_aad,
    master_aad,
    reseal,
    signer_aad,
)
from keys.signing import Signer, public_key_pem

LOG_KEY_NAME: Final = "sandbox-audit"
WRAPPED_MAGIC: Final = b"SBXK\x01"


class KeyRotation(NamedTuple):
    """Result of a rotation: hex key ids before and after (the caller logs both)."""

    old_key_id: str
    new_key_id: str


@dataclass(frozen=True)
class PublicKeyInfo:
    """A public key of the ring, kept after rotation so old signatures still verify."""

    name: str
    key_id: str
    public_key: bytes
    created: str
    retired: str | None

    def pem(self) -> str:
        return public_key_pem(self.public_key)


class KeyRing:
    """Keys of one workspace. Open with ``KeyRing.open_or_create(keys_dir)``.

    The ring re-reads ``keyring.json`` when another process changed it (e.g. ``sandbox keys
    rotate`` while the server runs), so a rotated key is used from the next signature on.
    """

    def __init__(self, keys_dir: Path, kek: bytes, data: dict[str, Any]) -> None:
        self.keys_dir = keys_dir
        self._kek = kek
        self._data = data
        self._stamp = self._file_stamp()
        self._signers: dict[tuple[str, str], Signer] = {}

    # ----------------------------------------------------------------- opening
    @classmethod
    def open_or_create(
        cls,
        keys_dir: Path | str,
        passphrase: bytes | None = None,
        *,
        scrypt_n: int = SCRYPT_N,
        profile: Profile | str | None = None,
        pbkdf2_iterations: int = PBKDF2_ITERATIONS,
    ) -> KeyRing:
        """Open the ring in ``keys_dir``, creating it (and its master key) if absent.

        ``scrypt_n`` (``intl``) and ``pbkdf2_iterations`` (``sm``) apply only at creation
        (tests use small values); an existing ring keeps the parameters it was created
        with. ``profile`` is the cryptography profile of a new ring (default ``intl``); for
        an existing ring it must be the ring's own or ``None`` (``KeysError`` otherwise:
        a workspace cannot change profile). Raises ``PassphraseError`` on a wrong or
        missing passphrase.
        """
        wanted = None if profile is None else check_profile(profile)
        keys_dir = Path(keys_dir)
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with locked(keys_dir):
            if (keys_dir / RING_FILE).exists():
                return cls._open(keys_dir, passphrase, wanted)
            return cls._create(
                keys_dir, passphrase, wanted or DEFAULT_PROFILE, scrypt_n, pbkdf2_iterations
            )

    @classmethod
    def _open(cls, keys_dir: Path, passphrase: bytes | None, wanted: Profile | None) -> KeyRing:
        """Open the existing ring (under the lock): same profile, right passphrase."""
        data = load_ring(keys_dir / RING_FILE)
        have = data.get("profile", DEFAULT_PROFILE)
        if wanted is not None and have != wanted:
            raise KeysError(
                f"the key ring in {keys_dir} belongs to the {have!r} cryptography "
                f"profile, not {wanted!r}: a workspace keeps the profile it was "
                "created with (create a new workspace for the other profile)"
            )
        kek = derive_kek(resolve_passphrase(keys_dir, passphrase, create=False), data)
        open_check(kek, data, keys_dir)
        return cls(keys_dir, kek, data)

    @classmethod
    def _create(
        cls,
        keys_dir: Path,
        passphrase: bytes | None,
        profile: Profile,
        scrypt_n: int,
        pbkdf2_iterations: int,
    ) -> KeyRing:
        """Create a ring of ``profile`` with its first master key (under the lock)."""
        pw = resolve_passphrase(keys_dir, passphrase, create=True)
        salt = os.urandom(16)
        data: dict[str, Any] = {
            "format": FORMAT,
            "profile": profile,
            "kdf": new_kdf(profile, salt, scrypt_n, pbkdf2_iterations),
            "check": "",
            "master": {"current": "", "keys": {}},
            "signers": {},
        }
        kek = derive_kek(pw, data)
        data["check"] = check_value(kek)
        add_master(data, kek, None)
        write_private_file(keys_dir / RING_FILE, dump_ring(data))
        return cls(keys_dir, kek, data)

    @property
    def profile(self) -> Profile:
        """The ring's cryptography profile (``intl`` for rings made before issue 17)."""
        return check_profile(self._data.get("profile", DEFAULT_PROFILE))

    def _file_stamp(self) -> tuple[int, int, int]:
        st = (self.keys_dir / RING_FILE).stat()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            data = load_ring(self.keys_dir / RING_FILE)
            if data["check"] != self._data["check"]:
                raise PassphraseError(
                    f"the key ring in {self.keys_dir} was re-sealed under another passphrase "
                    "since this process opened it: reopen it (restart the server)"
                )
            self._data = data
            self._stamp = stamp

    @contextlib.contextmanager
    def _mutating(self) -> Iterator[dict[str, Any]]:
        """Lock, re-read, let the caller change the data, write it back atomically."""
        with locked(self.keys_dir):
            path = self.keys_dir / RING_FILE
            data = load_ring(path)
            if data["check"] != self._data["check"]:
                raise PassphraseError(
                    f"the key ring in {self.keys_dir} was re-sealed under another passphrase "
                    "since this process opened it: reopen it"
                )
            yield data
            write_private_file(path, dump_ring(data))
            self._data = data
            self._stamp = self._file_stamp()

    # --------------------------------------------------------------- signing keys
    def log_signer(self) -> Signer:
        """The current Ed25519 audit-log key (name ``sandbox-audit``), created on first use."""
        return self.signer(LOG_KEY_NAME)

    def signer(self, name: str) -> Signer:
        """The current signing key called ``name`` (e.g. ``owner:alice``), created on demand."""
        check_key_name(name)
        self._refresh()
        entry = self._data["signers"].get(name)
        if entry is None:
            with self._mutating() as data:
                if name not in data["signers"]:
                    add_signer(data, self._kek, name, None)
            entry = self._data["signers"][name]
        return self._load_signer(name, entry["current"])

    def _load_signer(self, name: str, key_id: str) -> Signer:
        cached = self._signers.get((name, key_id))
        if cached is not None:
            return cached
        record = self._data["signers"][name]["keys"][key_id]
        if record["private"] is None:
            raise KeyNotFound(f"the private key {name}/{key_id} was destroyed at rotation")
        public = unb64(record["public"])
        raw = open_sealed(self._kek, unb64(record["private"]), signer_aad(name, public))
        signer = Signer.from_private_bytes(name, raw, record.get("alg", "ed25519"))
        if signer.public_key_bytes != public or signer.key_id.hex() != key_id:
            raise KeysError(f"key ring entry {name}/{key_id} is inconsistent")
        self._signers[(name, key_id)] = signer
        return signer

    def rotate_log_key(self, now: datetime | None = None) -> KeyRotation:
        """Replace the audit-log key; see ``rotate_signer``."""
        return self.rotate_signer(LOG_KEY_NAME, now=now)

    def rotate_signer(self, name: str, now: datetime | None = None) -> KeyRotation:
        """Make a new current key for ``name``; keep the old *public* key for verification.

        SECURITY: the old private key is destroyed (removed from the ring file), so a key
        that leaked can no longer sign in this workspace's name after rotation. The caller
        must log the rotation (action ``key.rotated``) so verifiers learn the new key id
        from a log entry signed under the old key's checkpoints.
        """
        self.signer(name)  # make sure it exists
        with self._mutating() as data:
            entry = data["signers"][name]
            old = entry["current"]
            new = add_signer(data, self._kek, name, now)
            entry["keys"][old]["private"] = None
            entry["keys"][old]["retired"] = timestamp(now)
        self._signers = {k: v for k, v in self._signers.items() if k != (name, old)}
        return KeyRotation(old, new)

    def public_keys(self, name: str) -> list[PublicKeyInfo]:
        """Every public key ever used under ``name``, current first, then newest first."""
        self._refresh()
        entry = self._data["signers"].get(name)
        if entry is None:
            raise KeyNotFound(f"no key called {name!r}")
        infos = [
            PublicKeyInfo(name, kid, unb64(rec["public"]), rec["created"], rec["retired"])
            for kid, rec in entry["keys"].items()
        ]
        current = [i for i in infos if i.key_id == entry["current"]]
        older = sorted(
            (i for i in infos if i.key_id != entry["current"]),
            key=lambda i: i.created,
            reverse=True,
        )
        return current + older

    def log_public_keys(self) -> list[PublicKeyInfo]:
        self.log_signer()
        return self.public_keys(LOG_KEY_NAME)

    def signer_names(self) -> list[str]:
        self._refresh()
        return sorted(self._data["signers"])

    # ------------------------------------------------------------- master / data keys
    def _master_key(self, master_id: str) -> bytes:
        self._refresh()
        record = self._data["master"]["keys"].get(master_id)
        if record is None:
            raise KeyNotFound(f"master key {master_id} is not in this key ring")
        return open_sealed(self._kek, unb64(record["wrapped"]), master_aad(master_id))

    @property
    def master_key_id(self) -> str:
        self._refresh()
        return str(self._data["master"]["current"])

    def _wrap(self, data_key: bytes, master_id: str) -> bytes:
        mid = bytes.fromhex(master_id)
        return WRAPPED_MAGIC + mid + seal(self._master_key(master_id), data_key, data_key_aad(mid))

    def new_data_key(self) -> tuple[bytes, bytes]:
        """A fresh data key (256-bit AES, or 128-bit SM4 in the ``sm`` profile) and its
        wrapped form (store only the wrapped form)."""
        data_key = os.urandom(key_size(self.profile))
        return data_key, self._wrap(data_key, self.master_key_id)

    def unwrap_data_key(self, wrapped: bytes) -> bytes:
        """The data key inside ``wrapped``; raises ``DecryptionError`` if it was altered."""
        if not wrapped.startswith(WRAPPED_MAGIC) or len(wrapped) < len(WRAPPED_MAGIC) + 4:
            raise DecryptionError("not a wrapped sandbox data key (bad header)")
        mid = wrapped[len(WRAPPED_MAGIC) : len(WRAPPED_MAGIC) + 4]
        sealed = wrapped[len(WRAPPED_MAGIC) + 4 :]
        return open_sealed(self._master_key(mid.hex()), sealed, data_key_aad(mid))

    def rotate_master_key(
        self, wrapped_keys: list[bytes], now: datetime | None = None
    ) -> list[bytes]:
        """Make a new master key and re-wrap ``wrapped_keys`` under it (data untouched).

        Every input is unwrapped first, so a bad one fails the rotation before anything
        changes. The retired master stays in the ring (still able to unwrap) so that a
        crash between this call and the caller storing the re-wrapped keys loses nothing;
        call ``destroy_retired_master_keys`` once the new wrapped keys are committed.
        """
        plain = [self.unwrap_data_key(w) for w in wrapped_keys]
        with self._mutating() as data:
            new_id = add_master(data, self._kek, now)
        return [self._wrap(k, new_id) for k in plain]

    def destroy_retired_master_keys(self) -> list[str]:
        """Delete retired master keys; data keys still wrapped under them become unreadable."""
        with self._mutating() as data:
            master = data["master"]
            gone = [mid for mid in master["keys"] if mid != master["current"]]
            for mid in gone:
                del master["keys"][mid]
        return gone

    # ----------------------------------------------------------------- passphrase
    def change_passphrase(self, new_passphrase: bytes, *, scrypt_n: int | None = None) -> None:
        """Re-seal every key under ``new_passphrase`` and delete a generated passphrase file."""
        if not new_passphrase:
            raise PassphraseError("the passphrase is empty")
        with self._mutating() as data:
            old_kek = self._kek
            if scrypt_n is not None and data["kdf"]["alg"] == "scrypt":
                data["kdf"]["n"] = scrypt_n
            data["kdf"]["salt"] = b64(os.urandom(16))
            new_kek = derive_kek(new_passphrase, data)
            data["check"] = check_value(new_kek)
            reseal(data, old_kek, new_kek)
            self._kek = new_kek
        with contextlib.suppress(FileNotFoundError):
            (self.keys_dir / PASSPHRASE_FILE).unlink()

    def __repr__(self) -> str:
        return f"KeyRing({str(self.keys_dir)!r})"
