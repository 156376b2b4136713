"""RFC 6962 / RFC 9162 §2.1.1 Merkle tree hashing (the whole interface), with SHA-256 or SM3.

The tree's structure is the RFC's whatever the hash: leaves are ``H(0x00 || data)``,
interior nodes ``H(0x01 || left || right)``, the empty tree ``H()``. The ``intl`` profile
uses SHA-256 (as RFC 6962 does); the ``sm`` profile (issue 17) uses SM3 (GB/T 32905-2016),
which also gives 32 bytes, so proofs, compact ranges and checkpoints keep their shapes.
The hash chain of ``audit_log.entry`` uses the same function.

The module-level ``empty_root``, ``hash_leaf`` and ``hash_children`` are SHA-256 (RFC
6962 itself); ``TreeHash`` objects (``SHA256``, ``SM3``) carry either.

>>> empty_root().hex()
'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
>>> hash_leaf(b"").hex()
'6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d'
>>> SM3.empty_root().hex()  # SM3 of the empty string
'1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from keys.sm3 import sm3 as _sm3

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

HashName = Literal["sha256", "sm3"]
_sha256 = hashlib.sha256


@dataclass(frozen=True)
class TreeHash:
    """One hash function in the RFC 6962 roles: ``digest`` is the plain hash."""

    name: HashName
    digest: Callable[[bytes], bytes]

    def empty_root(self) -> bytes:
        """MTH({}) = H() (RFC 9162 §2.1.1)."""
        return self.digest(b"")

    def hash_leaf(self, data: bytes) -> bytes:
        """MTH({d}) = H(0x00 || d)."""
        return self.digest(LEAF_PREFIX + data)

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        """H(0x01 || left || right)."""
        return self.digest(NODE_PREFIX + left + right)

    def __repr__(self) -> str:
        return f"TreeHash({self.name})"

    def __reduce__(self) -> tuple[Callable[[str], TreeHash], tuple[str]]:
        """Pickled by name (the verifier's worker processes send compact ranges back), so
        an unpickled ``SHA256`` is the same object and ``th is SHA256`` still holds."""
        return tree_hash, (self.name,)


SHA256: Final = TreeHash("sha256", lambda data: _sha256(data).digest())
SM3: Final = TreeHash("sm3", _sm3)
TREE_HASHES: Final[dict[str, TreeHash]] = {"sha256": SHA256, "sm3": SM3}
PROFILE_TREE_HASH: Final[dict[str, TreeHash]] = {"intl": SHA256, "sm": SM3}


def tree_hash(name: str) -> TreeHash:
    """The ``TreeHash`` called ``name`` (``sha256`` or ``sm3``); ``ValueError`` otherwise."""
    try:
        return TREE_HASHES[name]
    except KeyError:
        raise ValueError(f"unknown tree hash {name!r}: use 'sha256' or 'sm3'") from None


def empty_root() -> bytes:
    """MTH({}) = SHA-256() (RFC 9162 §2.1.1)."""
    return EMPTY_ROOT


def hash_leaf(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the leaf hash (RFC 9162 §2.1.1)."""
    return _sha256(LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node (RFC 9162 §2.1.1)."""
    return _sha256(NODE_PREFIX + left + right).digest()
