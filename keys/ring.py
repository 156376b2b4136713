"""The workspace key ring: signing keys, the master key, all encrypted at rest.

Layout of ``keys_dir`` (mode 0700)::

    keyring.json   KDF parameters, a passphrase check value, the wrapped master keys and
                   every signing key (public key in clear, private key sealed), mode 0600
    passphrase     only when no passphrase was supplied at creation: the embedded default
    .lock          advisory lock serialising writers (server and CLI may share the ring)

Where the passphrase comes from (first that is set):

1. the ``passphrase`` argument (e.g. read from a prompt by the CLI);
2. the environment variable ``SANDBOX_KEY_PASSPHRASE``;
3. the file ``keys_dir/passphrase``, generated once (32 random bytes, mode 0600) when a
   ring is created without 1 or 2.

Option 3 is the embedded default: it protects keys copied without their folder (backups of
``keyring.json`` alone, a leaked database dump) but not against someone who can read the
whole ``keys/`` folder. To do better, supply the passphrase from outside the workspace
(1 or 2, e.g. from a secrets manager) and call ``change_passphrase`` once, which re-seals
everything and deletes the generated file.

Key-encryption: scrypt (RFC 7914, N=2^15, r=8, p=1) derives a 256-bit key-encryption key
(KEK) from the passphrase; every private key and master key is sealed under the KEK with
AES-256-GCM, its name and id bound as associated data (so sealed keys cannot be swapped).

Cryptography profile (issue 17): a ring is created for one profile (``keys.profile``) and
records it (``"profile"`` in ``keyring.json``; absent means ``intl``). In the ``sm``
profile the KEK is PBKDF2-HMAC-SM3 (600,000 iterations, 128-bit), keys are sealed with
SM4-GCM, the master and data keys are 128-bit SM4 keys and signing keys are SM2. Opening a
ring with another profile than its own is refused: one workspace is one profile.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple

from keys.envelope import derive_key, derive_key_sm3, key_size, open_sealed, seal
from keys.errors import DecryptionError, KeyNotFound, KeysError, PassphraseError
from keys.notekeys import check_key_name
from keys.profile import DEFAULT_PROFILE, Profile, check_profile
from keys.signing import Signer, public_key_pem

log = logging.getLogger(__name__)

PASSPHRASE_ENV: Final = "SANDBOX_KEY_PASSPHRASE"
LOG_KEY_NAME: Final = "sandbox-audit"
RING_FILE: Final = "keyring.json"
PASSPHRASE_FILE: Final = "passphrase"
FORMAT: Final = "sandbox-keyring/v1"
SCRYPT_N: Final = 2**15
PBKDF2_ITERATIONS: Final = 600_000
WRAPPED_MAGIC: Final = b"SBXK\x01"

_CHECK_PLAINTEXT = b"sandbox key ring passphrase check"


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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _now(now: datetime | None) -> str:
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        raise KeysError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signer_aad(name: str, public_key: bytes) -> bytes:
    return b"sandbox-signing-key/v1\x00" + name.encode() + b"\x00" + public_key


def _master_aad(master_id: str) -> bytes:
    return b"sandbox-master-key/v1\x00" + master_id.encode()


def _data_key_aad(master_id: bytes) -> bytes:
    return b"sandbox-data-key/v1\x00" + master_id


def _write_private_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (mode 0600, fsynced, directory fsynced)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def _locked(keys_dir: Path) -> Iterator[None]:
    fd = os.open(keys_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_passphrase_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    # SECURITY: like ssh with private keys, refuse a passphrase readable by others.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PassphraseError(
            f"{path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}`"
        )
    return path.read_bytes().strip()


def _resolve_passphrase(keys_dir: Path, passphrase: bytes | None, *, create: bool) -> bytes:
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
    _write_private_file(path, generated + b"\n")
    log.warning(
        "generated a key-ring passphrase in %s (the embedded default); to keep it outside "
        "the workspace, set %s and re-seal with `sandbox keys passphrase`",
        path,
        PASSPHRASE_ENV,
    )
    return generated


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
        path = keys_dir / RING_FILE
        with _locked(keys_dir):
            if path.exists():
                data = cls._load(path)
                have = data.get("profile", DEFAULT_PROFILE)
                if wanted is not None and have != wanted:
                    raise KeysError(
                        f"the key ring in {keys_dir} belongs to the {have!r} cryptography "
                        f"profile, not {wanted!r}: a workspace keeps the profile it was "
                        "created with (create a new workspace for the other profile)"
                    )
                pw = _resolve_passphrase(keys_dir, passphrase, create=False)
                kek = cls._derive(pw, data)
                try:
                    open_sealed(kek, _unb64(data["check"]), FORMAT.encode())
                except DecryptionError:
                    raise PassphraseError(
                        f"wrong passphrase for the key ring in {keys_dir} (check "
                        f"{PASSPHRASE_ENV} or the passphrase given)"
                    ) from None
                return cls(keys_dir, kek, data)
            pw = _resolve_passphrase(keys_dir, passphrase, create=True)
            salt = os.urandom(16)
            chosen = wanted or DEFAULT_PROFILE
            kdf: dict[str, Any] = {
                "alg": "scrypt",
                "salt": _b64(salt),
                "n": scrypt_n,
                "r": 8,
                "p": 1,
            }
            if chosen == "sm":
                kdf = {
                    "alg": "pbkdf2-hmac-sm3",
                    "salt": _b64(salt),
                    "iterations": pbkdf2_iterations,
                }
            data = {
                "format": FORMAT,
                "profile": chosen,
                "kdf": kdf,
                "check": "",
                "master": {"current": "", "keys": {}},
                "signers": {},
            }
            kek = cls._derive(pw, data)
            data["check"] = _b64(seal(kek, _CHECK_PLAINTEXT, FORMAT.encode()))
            cls._add_master(data, kek, None)
            _write_private_file(path, cls._dump(data))
            return cls(keys_dir, kek, data)

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise KeysError(f"cannot read key ring {path}: {exc}") from None
        if data.get("format") != FORMAT:
            raise KeysError(f"{path} is not a {FORMAT} key ring")
        return data

    @staticmethod
    def _dump(data: dict[str, Any]) -> bytes:
        return json.dumps(data, indent=1, sort_keys=True).encode() + b"\n"

    @staticmethod
    def _derive(passphrase: bytes, data: dict[str, Any]) -> bytes:
        kdf = data["kdf"]
        if kdf.get("alg") == "pbkdf2-hmac-sm3":
            return derive_key_sm3(passphrase, _unb64(kdf["salt"]), iterations=kdf["iterations"])
        if kdf.get("alg") != "scrypt":
            raise KeysError(f"unsupported KDF {kdf.get('alg')!r}")
        return derive_key(passphrase, _unb64(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"])

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
            data = self._load(self.keys_dir / RING_FILE)
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
        with _locked(self.keys_dir):
            path = self.keys_dir / RING_FILE
            data = self._load(path)
            if data["check"] != self._data["check"]:
                raise PassphraseError(
                    f"the key ring in {self.keys_dir} was re-sealed under another passphrase "
                    "since this process opened it: reopen it"
                )
            yield data
            _write_private_file(path, self._dump(data))
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
                    self._add_signer(data, name, None)
            entry = self._data["signers"][name]
        return self._load_signer(name, entry["current"])

    def _load_signer(self, name: str, key_id: str) -> Signer:
        cached = self._signers.get((name, key_id))
        if cached is not None:
            return cached
        record = self._data["signers"][name]["keys"][key_id]
        if record["private"] is None:
            raise KeyNotFound(f"the private key {name}/{key_id} was destroyed at rotation")
        public = _unb64(record["public"])
        raw = open_sealed(self._kek, _unb64(record["private"]), _signer_aad(name, public))
        signer = Signer.from_private_bytes(name, raw, record.get("alg", "ed25519"))
        if signer.public_key_bytes != public or signer.key_id.hex() != key_id:
            raise KeysError(f"key ring entry {name}/{key_id} is inconsistent")
        self._signers[(name, key_id)] = signer
        return signer

    def _add_signer(self, data: dict[str, Any], name: str, now: datetime | None) -> str:
        entry = data["signers"].setdefault(name, {"current": "", "keys": {}})
        while True:
            signer = Signer.generate(name, data.get("profile", DEFAULT_PROFILE))
            if signer.key_id_hex not in entry["keys"]:  # 4-byte ids: avoid a collision
                break
        sealed = seal(
            self._kek, signer.private_bytes_raw(), _signer_aad(name, signer.public_key_bytes)
        )
        entry["keys"][signer.key_id_hex] = {
            "alg": signer.algorithm,
            "public": _b64(signer.public_key_bytes),
            "private": _b64(sealed),
            "created": _now(now),
            "retired": None,
        }
        entry["current"] = signer.key_id_hex
        return signer.key_id_hex

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
            new = self._add_signer(data, name, now)
            entry["keys"][old]["private"] = None
            entry["keys"][old]["retired"] = _now(now)
        self._signers = {k: v for k, v in self._signers.items() if k != (name, old)}
        return KeyRotation(old, new)

    def public_keys(self, name: str) -> list[PublicKeyInfo]:
        """Every public key ever used under ``name``, current first, then newest first."""
        self._refresh()
        entry = self._data["signers"].get(name)
        if entry is None:
            raise KeyNotFound(f"no key called {name!r}")
        infos = [
            PublicKeyInfo(name, kid, _unb64(rec["public"]), rec["created"], rec["retired"])
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
    @staticmethod
    def _add_master(data: dict[str, Any], kek: bytes, now: datetime | None) -> str:
        master = data["master"]
        while True:
            master_id = secrets.token_hex(4)
            if master_id not in master["keys"]:
                break
        key = os.urandom(key_size(data.get("profile", DEFAULT_PROFILE)))
        master["keys"][master_id] = {
            "wrapped": _b64(seal(kek, key, _master_aad(master_id))),
            "created": _now(now),
            "retired": None,
        }
        previous = master["current"]
        if previous:
            master["keys"][previous]["retired"] = _now(now)
        master["current"] = master_id
        return master_id

    def _master_key(self, master_id: str) -> bytes:
        self._refresh()
        record = self._data["master"]["keys"].get(master_id)
        if record is None:
            raise KeyNotFound(f"master key {master_id} is not in this key ring")
        return open_sealed(self._kek, _unb64(record["wrapped"]), _master_aad(master_id))

    @property
    def master_key_id(self) -> str:
        self._refresh()
        return str(self._data["master"]["current"])

    def _wrap(self, data_key: bytes, master_id: str) -> bytes:
        mid = bytes.fromhex(master_id)
        return WRAPPED_MAGIC + mid + seal(self._master_key(master_id), data_key, _data_key_aad(mid))

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
        return open_sealed(self._master_key(mid.hex()), sealed, _data_key_aad(mid))

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
            new_id = self._add_master(data, self._kek, now)
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
            data["kdf"]["salt"] = _b64(os.urandom(16))
            new_kek = self._derive(new_passphrase, data)
            data["check"] = _b64(seal(new_kek, _CHECK_PLAINTEXT, FORMAT.encode()))
            for mid, rec in data["master"]["keys"].items():
                key = open_sealed(old_kek, _unb64(rec["wrapped"]), _master_aad(mid))
                rec["wrapped"] = _b64(seal(new_kek, key, _master_aad(mid)))
            for name, entry in data["signers"].items():
                for rec in entry["keys"].values():
                    if rec["private"] is None:
                        continue
                    aad = _signer_aad(name, _unb64(rec["public"]))
                    raw = open_sealed(old_kek, _unb64(rec["private"]), aad)
                    rec["private"] = _b64(seal(new_kek, raw, aad))
            self._kek = new_kek
        with contextlib.suppress(FileNotFoundError):
            (self.keys_dir / PASSPHRASE_FILE).unlink()

    def __repr__(self) -> str:
        return f"KeyRing({str(self.keys_dir)!r})"
