"""SM2 signatures (GB/T 32918.2-2016) through ``tongsuopy`` (the decision: docs/decisions).

Signatures use the default distinguishing ID ``1234567812345678`` that GM/T 0009-2012
§10 specifies when the parties agree on no other, with SM3 as the hash (Z = SM3(ENTL ||
ID || a || b || xG || yG || xA || yA), e = SM3(Z || M)); this is what ``tongsuopy``
(Tongsuo, an OpenSSL fork) does by default and what ``openssl pkeyutl -pkeyopt
distid:1234567812345678`` checks. A signature is the DER ``SEQUENCE { r, s }`` of GM/T
0009 §7.3 (what OpenSSL reads and writes). Public keys travel as the 65-byte uncompressed
point ``04 || x || y`` (GB/T 32918.1 §4.2.9) or as SubjectPublicKeyInfo PEM with
id-ecPublicKey and the SM2 curve OID 1.2.156.10197.1.301.

No curve arithmetic is written here (issue 17): every operation is the library's.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

# tongsuopy ships no type information (no py.typed): its values are typed here by use
from tongsuopy.crypto import hashes as ts_hashes  # type: ignore[import-untyped]
from tongsuopy.crypto import serialization as ts_serialization  # type: ignore[import-untyped]
from tongsuopy.crypto.asymciphers import ec as ts_ec  # type: ignore[import-untyped]
from tongsuopy.crypto.exceptions import (  # type: ignore[import-untyped]
    InternalError,
    InvalidSignature,
    UnsupportedAlgorithm,
)

from keys.errors import KeysError, SignatureError

SM2_PUBLIC_KEY_SIZE: Final = 65
SM2_PRIVATE_KEY_SIZE: Final = 32
DEFAULT_DISTINGUISHING_ID: Final = b"1234567812345678"
_N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
_ALGORITHM = ts_ec.ECDSA(ts_hashes.SM3())  # SM2 with SM3 and the default ID on an SM2 key


class SM2PrivateKey:
    """An SM2 private key; signs with SM3 and the default distinguishing ID."""

    __slots__ = ("_key",)

    def __init__(self, key: ts_ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        return cls(ts_ec.generate_private_key(ts_ec.SM2()))

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> SM2PrivateKey:
        """From the 32-byte big-endian scalar d (1 <= d <= n-2, GB/T 32918.1 §6.1)."""
        if len(raw) != SM2_PRIVATE_KEY_SIZE:
            raise KeysError("an SM2 private key is 32 bytes")
        d = int.from_bytes(raw, "big")
        if not 1 <= d <= _N - 2:
            raise KeysError("the SM2 private key is out of range")
        return cls(ts_ec.derive_private_key(d, ts_ec.SM2()))

    def private_bytes_raw(self) -> bytes:
        return int(self._key.private_numbers().private_value).to_bytes(SM2_PRIVATE_KEY_SIZE, "big")

    def public_key_bytes(self) -> bytes:
        return bytes(
            self._key.public_key().public_bytes(
                ts_serialization.Encoding.X962, ts_serialization.PublicFormat.UncompressedPoint
            )
        )

    def sign(self, msg: bytes) -> bytes:
        """DER-encoded SM2 signature of ``msg`` (random k per signature)."""
        return bytes(self._key.sign(msg, _ALGORITHM))


def _load_public(raw: bytes) -> ts_ec.EllipticCurvePublicKey:
    if len(raw) != SM2_PUBLIC_KEY_SIZE or raw[0] != 0x04:
        raise KeysError("an SM2 public key is the 65-byte uncompressed point 04||x||y")
    try:
        return ts_ec.EllipticCurvePublicKey.from_encoded_point(ts_ec.SM2(), raw)
    except ValueError:
        raise KeysError("the SM2 public key is not a point on the SM2 curve") from None


def sm2_verify(public_key: bytes, msg: bytes, sig: bytes) -> None:
    """Raise ``SignatureError`` unless ``sig`` (DER) is a valid SM2 signature of ``msg``.

    SECURITY: only the canonical DER of ``(r, s)`` with 1 <= r, s < n is accepted (GB/T
    32918.2 §7.1 B1, B2), checked before the library sees it, so a signature has exactly
    one encoding (no malleable re-encodings in a signed note).
    """
    key = _load_public(public_key)
    try:
        r, s = decode_dss_signature(sig)
    except ValueError:
        raise SignatureError("signature verification failed") from None
    if not (1 <= r < _N and 1 <= s < _N) or encode_dss_signature(r, s) != sig:
        raise SignatureError("signature verification failed")
    try:
        key.verify(sig, msg, _ALGORITHM)
    except (InvalidSignature, ValueError, InternalError):
        raise SignatureError("signature verification failed") from None


def sm2_public_key_pem(public_key: bytes) -> str:
    """SubjectPublicKeyInfo PEM of a 65-byte SM2 public key (what ``openssl`` reads)."""
    return bytes(
        _load_public(public_key).public_bytes(
            ts_serialization.Encoding.PEM, ts_serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()


def sm2_public_key_from_pem(data: bytes) -> bytes | None:
    """The 65-byte point of an SM2 PEM public key, or ``None`` if ``data`` is no SM2 key."""
    try:
        key = ts_serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, ts_ec.EllipticCurvePublicKey) or not isinstance(key.curve, ts_ec.SM2):
        return None
    return bytes(
        key.public_bytes(
            ts_serialization.Encoding.X962, ts_serialization.PublicFormat.UncompressedPoint
        )
    )
