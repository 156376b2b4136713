"""Matching identifier kinds in a column of text: the row-aligned hits of each pattern and check.

Each detector returns, per row, whether it matched, whether the match is the whole value and
the matched value; :mod:`sandbox.governance.risk_scan` turns them into findings. Examples are
masked (:func:`mask`): a report must not become a copy of the identifiers.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance.identifiers.check_digits import (
    ID_CHECK,
    ID_WEIGHTS,
    char_matrix,
    valid_credit_codes,
    valid_luhn,
    valid_org_codes,
)
from sandbox.governance.identifiers.normalise import normalise
from sandbox.governance.identifiers.patterns import (
    ADDRESS_PATTERN,
    BANK_CARD_PATTERN,
    CHECKSUM_SHARE,
    COMPANY_PATTERN,
    COMPANY_TYPE_PATTERN,
    COMPANY_WHOLE_PATTERN,
    CREDIT_CODE_PATTERN,
    EMAIL_PATTERN,
    EMBEDDED_NAME_PATTERN,
    ID_BODY,
    IPV4_PATTERN,
    IPV6_PATTERN,
    LEGAL_REP_PATTERN,
    NAME_DISTINCT,
    NAME_SHARE,
    ORG_CODE_PATTERN,
    PLATE_PATTERN,
)


def mask(value: str) -> str:
    """Keep the first and last characters, hide the rest (examples in a report).

    >>> mask("13812345678")
    '1*********8'
    >>> mask("王伟")
    '王*'
    """
    if len(value) <= 2:
        return value[:1] + "*" * (len(value) - 1)
    return value[0] + "*" * (len(value) - 2) + value[-1]


#: A run of this many digits in a column name is an ID number, phone or card, not a label.
HEADER_DIGITS: Final = 11


def identifiers_in_headers(names: Iterable[str]) -> list[str]:
    """Column names that carry what looks like a personal identifier, masked: a run of
    :data:`HEADER_DIGITS` or more digits (after :func:`normalise`: spaces, dashes and
    full-width digits do not hide one) or an e-mail address. Column names are public
    metadata (the catalog, the recipe), so such a name is refused at registration.

    >>> identifiers_in_headers(["district", "2023年1月至2024年12月", "王秀英370102199003071234复核",
    ...                          "联系 138 1234 5678", "x@example.com"])
    ['王秀英******************复核', '联系 *** **** ****', '*@*']
    """
    out = []
    for name in names:
        text = normalise(str(name)) or ""
        if re.search(rf"\d{{{HEADER_DIGITS},}}", text) or re.search(EMAIL_PATTERN, text):
            # masked for the error message: every digit, and an address's parts
            shown = re.sub(r"[０-９\d]", "*", str(name))
            out.append(re.sub(r"[^\s@]+@[^\s@]+", "*@*", shown))
    return out


def extract(text: pa.Array, pattern: str, fields: tuple[str, ...] = ("v",)) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Row-aligned: which rows match, whether the match is the whole value, the matched value (or null)."""
    found = pc.extract_regex(text, pattern)
    values = pc.struct_field(found, fields[0])
    for extra in fields[1:]:
        # a group outside the matching alternative comes back as "", not null
        values = pc.if_else(pc.greater(pc.utf8_length(values), 0), values, pc.struct_field(found, extra))
    hit = pc.fill_null(pc.is_valid(values), False).to_numpy(zero_copy_only=False)
    whole = pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), pc.utf8_length(values)), False)
    return np.asarray(hit, dtype=bool), np.asarray(whole.to_numpy(zero_copy_only=False), dtype=bool), values


def scatter(hit: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row mask of the hits whose (compacted) check result is True."""
    out = np.zeros(len(hit), dtype=bool)
    out[np.flatnonzero(hit)] = valid
    return out


def first_example(values: pa.Array, rows: np.ndarray) -> str:
    """The first matched value, masked: a report shows what was found, never the identifier itself."""
    return mask(str(values[int(np.flatnonzero(rows)[0])].as_py()).strip())


def beyond_chance(valid: int, candidates: int, chance: float) -> bool:
    """Whether ``valid`` of ``candidates`` same-shaped values passing a check digit is more than
    chance explains (a check passes by chance with probability ``chance``): at least
    ``CHECKSUM_SHARE`` of them, or at least 3 and four standard deviations above the binomial
    mean — so 20 real bank cards among 40 account numbers of the same shape are found, while
    1,000 serials (about 100 Luhn-valid by chance) are not.

    >>> beyond_chance(20, 60, 0.1), beyond_chance(100, 1000, 0.1), beyond_chance(1, 1, 0.1)
    (True, False, True)
    """
    if valid == 0:
        return False
    if valid >= CHECKSUM_SHARE * candidates:
        return True
    mean = chance * candidates
    return valid >= 3 and valid >= mean + 4 * math.sqrt(mean * (1 - chance)) + 3


def _checked(text: pa.Array, pattern: str, check: Any, fields: tuple[str, ...] = ("v",),
             clean: str = "", chance: float = 0.1) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Rows whose match has a valid check digit, if more validate than chance explains."""
    hit, whole, values = extract(text, pattern, fields)
    candidates = values.filter(pa.array(hit))
    if clean:
        candidates = pc.replace_substring_regex(candidates, clean, "")
    good = scatter(hit, check(pc.utf8_upper(candidates)) if len(candidates) else np.zeros(0, dtype=bool))
    if not beyond_chance(int(good.sum()), int(hit.sum()), chance):
        good[:] = False  # no more valid checks than chance: serials or amounts of the same shape, not codes
    return good, whole, values


def _resident_ids(values: pa.Array) -> np.ndarray:
    """Which values are whole, valid resident ID numbers (so they are not also cards or credit codes)."""
    shaped = np.asarray(pc.match_substring_regex(values, "^" + ID_BODY + "$").to_numpy(zero_copy_only=False),
                        dtype=bool)
    raw = char_matrix(pc.utf8_upper(values.filter(pa.array(shaped))), 18)
    digits = raw[:, :17].astype(np.int64) - ord("0")
    check = np.frombuffer(ID_CHECK.encode(), dtype=np.uint8)[(digits * np.array(ID_WEIGHTS)).sum(axis=1) % 11]
    return scatter(shaped, check == raw[:, 17])


def _credit_codes(values: pa.Array) -> np.ndarray:
    return valid_credit_codes(values) & ~_resident_ids(values)


def _bank_cards(values: pa.Array) -> np.ndarray:
    """Luhn-valid, and not an 18-digit resident ID or credit code that happens to pass Luhn too."""
    ok = valid_luhn(values)
    eighteen = np.asarray(pc.equal(pc.utf8_length(values), 18).to_numpy(zero_copy_only=False), dtype=bool)
    if eighteen.any():
        codes = values.filter(pa.array(eighteen))
        ok[eighteen] &= ~(_resident_ids(codes) | valid_credit_codes(codes))
    return ok


def digit_findings(text: pa.Array) -> dict[str, tuple[np.ndarray, np.ndarray, pa.Array]]:
    """Codes with check digits (credit codes, organisation codes, bank cards), each by kind."""
    return {
        "credit_code": _checked(text, CREDIT_CODE_PATTERN, _credit_codes, chance=1 / 31),
        "organization_code": _checked(text, ORG_CODE_PATTERN, valid_org_codes, ("v", "w"), clean="-",
                                      chance=1 / 11),
        "bank_card": _checked(text, BANK_CARD_PATTERN, _bank_cards, clean="[ -]", chance=1 / 10),
    }


def _valid_ips(values: pa.Array) -> np.ndarray:
    """IPv6 candidates that parse (checked once per distinct value) and are not loopback/unspecified."""
    distinct = pc.unique(values).to_pylist()
    ok = []
    for v in distinct:
        try:
            ok.append(not ipaddress.ip_address(v).is_loopback and not ipaddress.ip_address(v).is_unspecified)
        except ValueError:
            ok.append(False)
    return np.asarray(pc.is_in(values, pa.array([v for v, good in zip(distinct, ok, strict=True) if good],
                                               pa.string())).to_numpy(zero_copy_only=False), dtype=bool)


def text_findings(text: pa.Array, scanned: int) -> dict[str, tuple[np.ndarray, np.ndarray, pa.Array]]:
    """Identifiers written in text (plates, e-mail, addresses, IPs, company and personal names), each by kind."""
    out = {}
    for kind, pattern in (("licence_plate", PLATE_PATTERN), ("email", EMAIL_PATTERN), ("address", ADDRESS_PATTERN)):
        out[kind] = extract(text, pattern)
    v4, whole4, values4 = extract(text, IPV4_PATTERN)
    v6, whole6, values6 = extract(text, IPV6_PATTERN)
    v6 = scatter(v6, _valid_ips(values6.filter(pa.array(v6)))) if v6.any() else v6
    out["ip_address"] = (v4 | v6, np.where(v4, whole4, whole6), pc.coalesce(values4, values6))
    hit, whole, values = extract(text, COMPANY_PATTERN)
    if hit.any():  # an enterprise type (有限责任公司, 类型为股份有限公司) is not a name
        hit &= ~np.asarray(pc.fill_null(pc.match_substring_regex(values, COMPANY_TYPE_PATTERN), False)
                           .to_numpy(zero_copy_only=False), dtype=bool)
    weak = np.asarray(pc.match_substring_regex(text, COMPANY_WHOLE_PATTERN).to_numpy(zero_copy_only=False), dtype=bool)
    if weak.sum() >= NAME_SHARE * scanned and pc.count_distinct(text.filter(pa.array(weak))).as_py() >= NAME_DISTINCT:
        values = pc.if_else(pa.array(hit), values, pc.utf8_trim_whitespace(text))
        whole = np.where(hit, whole, weak)
        hit = hit | weak
    out["company_name"] = (hit, whole, values)
    out["legal_representative"] = extract(text, LEGAL_REP_PATTERN)
    hit, whole, values = extract(text, EMBEDDED_NAME_PATTERN)
    out["chinese_name"] = (hit, whole & False, values)
    return out
