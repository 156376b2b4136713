"""Compare SM2 libraries on the GB/T 32918.2 example, edge cases, OpenSSL interop and speed.

The record behind docs/decisions/0009-sm-profile-and-sm2-library.md. The candidates are
not project dependencies; install them in a scratch venv first:

    python -m venv /tmp/smcand && /tmp/smcand/bin/pip install gmssl gmalg gmalglib tongsuopy
    /tmp/smcand/bin/python bench/compare_sm2_libraries.py

A library that is not installed is reported as such. Needs the ``openssl`` command line.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

VEC = json.loads(
    (Path(__file__).resolve().parents[1] / "tests/fixtures/sm/gm-standard-vectors.json").read_text()
)["sm2_signature"]
D = bytes.fromhex(VEC["private_key"])
PUB = bytes.fromhex("04" + VEC["public_key_x"] + VEC["public_key_y"])
UID = VEC["distinguishing_id"].encode()
MSG = VEC["message"].encode()
R, S = int(VEC["r"], 16), int(VEC["s"], 16)
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")


def der(r: int, s: int) -> bytes:
    def integer(v: int) -> bytes:
        b = v.to_bytes((v.bit_length() + 8) // 8 or 1, "big")
        return b"\x02" + bytes([len(b)]) + b

    body = integer(r) + integer(s)
    return b"\x30" + bytes([len(body)]) + body


def un_der(sig: bytes) -> tuple[int, int]:
    """(r, s) of a short-form DER ``SEQUENCE { INTEGER r, INTEGER s }`` (SM2 signatures)."""
    assert sig[0] == 0x30 and sig[2] == 0x02
    r_len = sig[3]
    r = int.from_bytes(sig[4 : 4 + r_len], "big")
    s_at = 4 + r_len
    assert sig[s_at] == 0x02
    return r, int.from_bytes(sig[s_at + 2 : s_at + 2 + sig[s_at + 1]], "big")


def openssl_verifies(rs: tuple[int, int]) -> bool:
    with tempfile.TemporaryDirectory() as d:
        Path(d, "k.der").write_bytes(SPKI_PREFIX + PUB)
        Path(d, "m").write_bytes(MSG)
        Path(d, "s").write_bytes(der(*rs))
        out = subprocess.run(
            [
                "openssl",
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                f"{d}/k.der",
                "-keyform",
                "DER",
                "-rawin",
                "-digest",
                "sm3",
                "-in",
                f"{d}/m",
                "-sigfile",
                f"{d}/s",
                "-pkeyopt",
                f"distid:{VEC['distinguishing_id']}",
            ],
            capture_output=True,
        )
    return out.returncode == 0


def probe(
    name: str,
    verify: Callable[[bytes, int, int], bool],
    sign: Callable[[], tuple[int, int]],
    n: int,
) -> None:
    def safe(pub: bytes, r: int, s: int) -> object:
        try:
            return verify(pub, r, s)
        except Exception as exc:  # noqa: BLE001 (what a library raises is the finding)
            return f"raises {type(exc).__name__}"

    bad_point = PUB[:-1] + bytes([PUB[-1] ^ 1])
    edges = {
        "r=0": safe(PUB, 0, S),
        "s=0": safe(PUB, R, 0),
        "r=n": safe(PUB, N, S),
        "r+n": safe(PUB, R + N, S),
        "s+n": safe(PUB, R, S + N),
        "point off curve": safe(bad_point, R, S),
    }
    t = time.perf_counter()
    for _ in range(n):
        rs = sign()
    sign_ms = (time.perf_counter() - t) / n * 1e3
    t = time.perf_counter()
    for _ in range(n):
        verify(PUB, *rs)
    verify_ms = (time.perf_counter() - t) / n * 1e3
    print(f"{name}: standard vector verifies: {safe(PUB, R, S)}; edge cases: {edges}")
    print(
        f"  own signature verifies in OpenSSL: {openssl_verifies(rs)}; sign {sign_ms:.2f} ms, "
        f"verify {verify_ms:.2f} ms"
    )


def main() -> None:
    print(f"OpenSSL verifies the GB/T 32918.2 example: {openssl_verifies((R, S))}")
    try:
        import tongsuopy.crypto.exceptions as tx
        from tongsuopy.crypto import hashes, serialization
        from tongsuopy.crypto.asymciphers import ec

        algo = ec.ECDSA(hashes.SM3())
        key = ec.derive_private_key(int.from_bytes(D, "big"), ec.SM2())
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        print(f"tongsuopy: public key from the example's d: {point == PUB}")

        def ts_verify(pub: bytes, r: int, s: int) -> bool:
            k = ec.EllipticCurvePublicKey.from_encoded_point(ec.SM2(), pub)
            try:
                k.verify(der(r, s), MSG, algo)
                return True
            except tx.InvalidSignature:
                return False

        def ts_sign() -> tuple[int, int]:
            return un_der(key.sign(MSG, algo))

        probe("tongsuopy", ts_verify, ts_sign, 300)
    except ImportError:
        print("tongsuopy: not installed")
    except Exception:  # noqa: BLE001
        traceback.print_exc()
    for module, label in (("gmalglib", "gmalglib"), ("gmalg", "gmalg"), ("gmssl", "gmssl")):
        try:
            __import__(module)
        except ImportError:
            print(f"{label}: not installed")
            continue
        try:
            if module == "gmalglib":
                from gmalglib import sm2 as gl

                print(f"gmalglib: public key from d: {gl.SM2.get_pk(D) == PUB}")
                signer = gl.SM2(sk=D, pk=PUB, uid=UID)
                probe(
                    "gmalglib",
                    lambda p, r, s: gl.SM2(pk=p, uid=UID).verify(
                        MSG, r.to_bytes(32, "big") + s.to_bytes(32, "big")
                    ),
                    lambda: (
                        int.from_bytes(x := signer.sign(MSG), "big") >> 256,  # noqa: B023 (used within the iteration)
                        int.from_bytes(x[32:], "big"),
                    ),
                    300,
                )
            elif module == "gmalg":
                import gmalg

                fixed = gmalg.SM2(sk=D, uid=UID, pk=PUB, rnd_fn=lambda _bits: int(VEC["k"], 16))
                r, s = fixed.sign(MSG)
                print(
                    f"gmalg: fixed k reproduces (r, s): {(int.from_bytes(r, 'big'), int.from_bytes(s, 'big')) == (R, S)}"
                )
                signer = gmalg.SM2(sk=D, uid=UID, pk=PUB)

                def gm_verify(p: bytes, r: int, s: int) -> bool:
                    def b(v: int) -> bytes:
                        return v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")

                    return bool(gmalg.SM2(uid=UID, pk=p).verify(MSG, b(r), b(s)))

                probe(
                    "gmalg",
                    gm_verify,
                    lambda: tuple(int.from_bytes(x, "big") for x in signer.sign(MSG)),  # noqa: B023
                    10,
                )
            else:
                from gmssl import sm2 as g

                c = g.CryptSM2(private_key=D.hex(), public_key=PUB[1:].hex())
                print(
                    f"gmssl: fixed k reproduces (r, s): {c.sign(bytes.fromhex(c._sm3_z(MSG)), VEC['k']) == VEC['r'] + VEC['s']}"
                )
                probe(
                    "gmssl",
                    lambda p, r, s: g.CryptSM2(
                        private_key="", public_key=p[1:].hex()
                    ).verify_with_sm3(f"{r:064x}{s:064x}", MSG),
                    lambda: (int((x := c.sign_with_sm3(MSG))[:64], 16), int(x[64:], 16)),  # noqa: B023
                    10,
                )
        except Exception:  # noqa: BLE001
            traceback.print_exc()


if __name__ == "__main__":
    main()
