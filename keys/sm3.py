"""SM3 (GB/T 32905-2016), the hash of the ``sm`` profile, as one plain function.

From the standard library when its OpenSSL provides SM3 (a cheaper call, which matters
for hashing a million-entry log), else from ``cryptography`` (which always has it). Both
are checked against the GB/T 32905 examples in ``tests/test_sm_profile.py``.

>>> sm3(b"abc").hex()
'66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0'
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes


def sm3_cryptography(data: bytes) -> bytes:
    """SM3 through ``cryptography`` (always available)."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def _hashlib_sm3() -> Callable[[bytes], bytes] | None:
    try:
        proto = hashlib.new("sm3")
    except ValueError:
        return None

    def sm3_hashlib(data: bytes) -> bytes:
        h = proto.copy()
        h.update(data)
        return h.digest()

    return sm3_hashlib


sm3: Callable[[bytes], bytes] = _hashlib_sm3() or sm3_cryptography
"""SM3 digest (32 bytes) of ``data``."""


class _CryptographySM3:
    """``hashlib``-like streaming SM3 over ``cryptography`` (where hashlib has none)."""

    def __init__(self) -> None:
        self._h = hashes.Hash(hashes.SM3())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.finalize().hex()


def sm3_stream() -> Any:
    """A streaming SM3 object with ``update`` and ``hexdigest`` (for files)."""
    try:
        return hashlib.new("sm3")
    except ValueError:
        return _CryptographySM3()
