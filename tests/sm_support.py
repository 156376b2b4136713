"""An implementation independent of the sandbox for the ``sm`` profile: Debian's OpenSSL
command line (issue 17, "interoperability with an independent implementation").

Only ``subprocess`` + ``openssl`` and the standard library here; no ``keys`` or
``audit_log`` code, so a test comparing the two compares two implementations. Tests that
need it are marked ``requires_openssl_sm2`` and skip cleanly where OpenSSL has no SM2.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

DISTID = "1234567812345678"  # GM/T 0009-2012 default distinguishing ID
SM2_NOTE_TYPE = b"\xffdata-sandbox/sm2"  # docs/audit.md, "SM2 signature types"
SM2_COSIGNATURE_TYPE = b"\xffdata-sandbox/sm2-cosignature/v1"


@functools.cache
def openssl_has_sm2() -> bool:
    if shutil.which("openssl") is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        key = Path(d) / "k.pem"
        made = subprocess.run(
            ["openssl", "genpkey", "-algorithm", "SM2", "-out", str(key)], capture_output=True
        )
        sm3 = subprocess.run(["openssl", "dgst", "-sm3"], input=b"abc", capture_output=True)
        return made.returncode == 0 and sm3.returncode == 0


requires_openssl_sm2 = pytest.mark.skipif(
    not openssl_has_sm2(), reason="the openssl command line here has no SM2/SM3"
)


def run(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


def sm3(data: bytes) -> bytes:
    """``openssl dgst -sm3 -binary``."""
    out = run(["dgst", "-sm3", "-binary"], data)
    assert out.returncode == 0, out.stderr
    return out.stdout


def verify(public_pem: str, msg: bytes, der_sig: bytes) -> bool:
    """``openssl pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678``."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "pub.pem").write_text(public_pem)
        (Path(d) / "msg").write_bytes(msg)
        (Path(d) / "sig").write_bytes(der_sig)
        out = run(
            [
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                f"{d}/pub.pem",
                "-rawin",
                "-digest",
                "sm3",
                "-in",
                f"{d}/msg",
                "-sigfile",
                f"{d}/sig",
                "-pkeyopt",
                f"distid:{DISTID}",
            ]
        )
    return out.returncode == 0 and b"Signature Verified Successfully" in out.stdout


def new_key(folder: Path) -> tuple[Path, str]:
    """An SM2 key made by OpenSSL: (private key file, public key PEM)."""
    key = folder / "openssl-sm2.pem"
    out = run(["genpkey", "-algorithm", "SM2", "-out", str(key)])
    assert out.returncode == 0, out.stderr
    pub = run(["pkey", "-in", str(key), "-pubout"])
    assert pub.returncode == 0, pub.stderr
    return key, pub.stdout.decode()


def sign(key: Path, msg: bytes) -> bytes:
    """A DER SM2 signature of ``msg`` made by OpenSSL."""
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "msg").write_bytes(msg)
        out = run(
            [
                "pkeyutl",
                "-sign",
                "-inkey",
                str(key),
                "-rawin",
                "-digest",
                "sm3",
                "-in",
                f"{d}/msg",
                "-pkeyopt",
                f"distid:{DISTID}",
            ]
        )
    assert out.returncode == 0, out.stderr
    return out.stdout


def public_point(public_pem: str) -> bytes:
    """The 65-byte point 04||x||y of a PEM SM2 key, as OpenSSL prints it."""
    der = run(["pkey", "-pubin", "-outform", "DER"], public_pem.encode()).stdout
    point = der[-65:]
    assert point[0] == 4
    return point


def key_hash(name: str, sigtype: bytes, point: bytes) -> bytes:
    """C2SP signed-note key hash (first 4 bytes of SHA-256(name || 0x0A || type || key))."""
    return hashlib.sha256(name.encode() + b"\n" + sigtype + point).digest()[:4]


def check_note(note: str, name: str, public_pem: str) -> tuple[str, int, bytes]:
    """Verify an SM2-signed checkpoint note written by the sandbox with OpenSSL alone;
    return (origin, size, root hash). Raises ``AssertionError`` if anything is off."""
    text, _, sigs = note.partition("\n\n")
    text += "\n"
    kid = key_hash(name, SM2_NOTE_TYPE, public_point(public_pem))
    for line in sigs.splitlines():
        dash, signer, blob_b64 = line.split(" ")
        blob = base64.b64decode(blob_b64)
        if dash == "\u2014" and signer == name and blob[:4] == kid:
            assert verify(public_pem, text.encode(), blob[4:]), "OpenSSL refused the signature"
            origin, size, root = text.split("\n")[:3]
            return origin, int(size), base64.b64decode(root)
    raise AssertionError(f"no signature line by {name} with key hash {kid.hex()}")
