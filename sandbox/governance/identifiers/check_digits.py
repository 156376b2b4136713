"""Check digits of the national codes: a value of the right shape is a code only if its check passes.

Scalar functions (with the standards' own worked examples) and vectorised versions over
Arrow arrays for the scanner (GB 11643-1999, GB 32100-2015, GB 11714-1997, ISO/IEC 7812-1).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: GB 11643-1999 resident ID numbers: weights of the 17 body digits, and the check character of
#: each remainder mod 11 (ISO 7064 MOD 11-2).
ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK: Final = "10X98765432"
#: GB 32100-2015 统一社会信用代码: 31 code characters (no I O S V Z) and the weights of §4.3.
CREDIT_CHARS: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
#: GB 11714-1997 组织机构代码: weights of the eight body characters.
ORG_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)


def resident_id_valid(value: str) -> bool:
    """Whether an 18-character resident ID number has the right ISO 7064 MOD 11-2 check digit.

    >>> resident_id_valid("11010519491231002X")   # GB 11643-1999's own example
    True
    >>> resident_id_valid("110105194912310021")
    False
    """
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], ID_WEIGHTS, strict=True))
    return ID_CHECK[total % 11] == value[17].upper()


def valid_resident_ids(values: list[str]) -> np.ndarray:
    """Vectorised :func:`resident_id_valid` for values already matching ``ID_BODY``."""
    if not values:
        return np.zeros(0, dtype=bool)
    raw = np.array([v.upper() for v in values], dtype="S18").view(np.uint8).reshape(-1, 18)
    digits = raw[:, :17].astype(np.int64) - ord("0")
    check = np.frombuffer(ID_CHECK.encode(), dtype=np.uint8)[(digits * np.array(ID_WEIGHTS)).sum(axis=1) % 11]
    return check == raw[:, 17]


def credit_code_valid(value: str) -> bool:
    """Whether an 18-character 统一社会信用代码 has the right check character (GB 32100-2015 §4.3).

    C18 = 31 − (Σ Ci·Wi mod 31), over the 31 code characters 0–9 A–Y without I O S V Z.

    >>> credit_code_valid("91350100M000100Y43")   # the example printed in GB 32100-2015
    True
    >>> credit_code_valid("91350100M000100Y44")
    False
    """
    if len(value) != 18 or any(c not in CREDIT_CHARS for c in value.upper()):
        return False
    value = value.upper()
    total = sum(CREDIT_CHARS.index(c) * w for c, w in zip(value[:17], CREDIT_WEIGHTS, strict=True))
    return CREDIT_CHARS[(31 - total % 31) % 31] == value[17]


def organization_code_valid(value: str) -> bool:
    """Whether a 9-character 组织机构代码 (``XXXXXXXX-X`` or without the hyphen) checks (GB 11714-1997).

    C9 = 11 − (Σ Ci·Wi mod 11), 10 written ``X`` and 11 written ``0``; letters count A = 10 … Z = 35.

    >>> organization_code_valid("M000100Y-4")
    True
    >>> organization_code_valid("600037341")
    True
    >>> organization_code_valid("600037342")
    False
    """
    value = value.replace("-", "").upper()
    if len(value) != 9 or not value[:8].isalnum() or not value.isascii():
        return False
    total = sum(int(c, 36) * w for c, w in zip(value[:8], ORG_WEIGHTS, strict=True))
    return "0123456789X0"[11 - total % 11] == value[8]


def luhn_valid(value: str) -> bool:
    """Whether a card number passes the Luhn check (ISO/IEC 7812-1 Annex B).

    >>> luhn_valid("6222021234567890128")
    True
    >>> luhn_valid("6222021234567890127")
    False
    """
    digits = [int(c) for c in value if c.isdigit()]
    if len(digits) != len(value.replace(" ", "").replace("-", "")):
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def char_matrix(values: pa.Array, width: int) -> np.ndarray:
    """ASCII strings of one length → an (n, width) uint8 matrix, read from Arrow's buffers."""
    values = pc.cast(values, pa.string())
    if len(values) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset: values.offset + len(values) + 1]
    if values.null_count or (np.diff(offsets) != width).any():  # not expected from our patterns; be safe
        return np.array([(v or "").encode()[:width].ljust(width, b"\0") for v in values.to_pylist()],
                        dtype=f"S{width}").view(np.uint8).reshape(-1, width)
    data = np.frombuffer(values.buffers()[2], dtype=np.uint8)
    return data[offsets[0]: offsets[0] + len(values) * width].reshape(-1, width)


def _code_values(chars: str) -> np.ndarray:
    table = np.full(256, -1, dtype=np.int64)
    for i, c in enumerate(chars):
        table[ord(c)] = i
    return table


_CREDIT_TABLE = _code_values("0123456789ABCDEFGHJKLMNPQRTUWXY")
_BASE36_TABLE = _code_values("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def valid_credit_codes(values: pa.Array) -> np.ndarray:
    """Vectorised :func:`credit_code_valid` for upper-case values matching ``_CREDIT_BODY``."""
    m = _CREDIT_TABLE[char_matrix(values, 18)]
    if m.size == 0:
        return np.zeros(0, dtype=bool)
    check = (31 - (m[:, :17] * np.array(CREDIT_WEIGHTS)).sum(axis=1) % 31) % 31
    return np.asarray((m.min(axis=1) >= 0) & (check == m[:, 17]), dtype=bool)


def valid_org_codes(values: pa.Array) -> np.ndarray:
    """Vectorised :func:`organization_code_valid` for 9 upper-case characters (hyphen removed)."""
    raw = char_matrix(values, 9)
    m = _BASE36_TABLE[raw]
    if m.size == 0:
        return np.zeros(0, dtype=bool)
    expected = np.frombuffer(b"0123456789X0", dtype=np.uint8)[11 - (m[:, :8] * np.array(ORG_WEIGHTS)).sum(axis=1) % 11]
    return np.asarray((m[:, :8].min(axis=1) >= 0) & (expected == raw[:, 8]), dtype=bool)


def valid_luhn(values: pa.Array) -> np.ndarray:
    """Vectorised :func:`luhn_valid` for 16–19 digit strings (left-padded with zeros to 19)."""
    digits = char_matrix(pc.utf8_lpad(values, 19, "0"), 19).astype(np.int64) - ord("0")
    doubled = digits[:, -2::-2] * 2
    total = digits[:, ::-2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    return np.asarray(total % 10 == 0, dtype=bool)
