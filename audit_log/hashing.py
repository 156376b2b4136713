"""RFC 6962 / RFC 9162 §2.1.1 Merkle tree hashing with SHA-256 (the whole interface).

>>> empty_root().hex()
'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
>>> hash_leaf(b"").hex()
'6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d'
"""

from __future__ import annotations

import hashlib
from typing import Final

HASH_SIZE: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def empty_root() -> bytes:
    """MTH({}) = SHA-256() (RFC 9162 §2.1.1)."""
    return EMPTY_ROOT


def hash_leaf(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the leaf hash (RFC 9162 §2.1.1)."""
    return _sha256(LEAF_PREFIX + data).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node (RFC 9162 §2.1.1)."""
    return _sha256(NODE_PREFIX + left + right).digest()
