"""Persons, not rows: which columns hold one person's own values, and the rows they link.

Shared by the risk scan's per-person value support and the de-identified derivative's
k-anonymity (:mod:`sandbox.governance.deidentify`): a patient's five visits under five visit
numbers and one ID number are one person.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance.identifiers.check_digits import resident_id_valid
from sandbox.governance.identifiers.normalise import normalise_array

#: Headers that name an identifier: such a column never leaves an open download, and links rows
#: of one person (the same ID number under two visit numbers is one person).
ID_HEADER: Final = re.compile(
    r"身份证|证件号|证号|护照|手机|电话|联系方式|邮箱|银行卡|卡号|账号|帐号|车牌|社保|医保卡|病历号|档案号|住址|地址|"
    r"(?:^|[^a-z])(?:id_?(?:number|no|card)|sfz\w*|phone|mobile|tel|email|e_?mail|passport|account\w*|card_?no|"
    r"iban|plate|address|ssn)(?:$|[^a-z])",
    re.IGNORECASE,
)
#: Headers of names: never published, but not used to link persons (two people may share 王伟).
NAME_HEADER: Final = re.compile(r"姓名|名字|户主|联系人|代理人|(?:^|[^a-z])(?:full_?)?name(?:$|[^a-z])", re.IGNORECASE)
#: Scan kinds whose values are one person's (or one enterprise's) own: they link rows into persons.
LINKING_KINDS: Final = frozenset({"resident_id", "mobile", "credit_code", "organization_code", "bank_card",
                                  "email", "licence_plate", "ip_address"})
#: Headers of record numbers that are one person's own in hospitals, schools and workplaces
#: (住院号 …): linking, like :data:`ID_HEADER`, whatever their declaration.
RECORD_HEADER: Final = re.compile(r"住院号|门诊号|病案号|就诊卡号|患者编号|病人编号|学号|工号|员工编号|职工号|会员号|"
                                  r"(?:^|[^a-z])(?:patient|student|employee|member|mrn)_?(?:id|no|number|code)?(?:$|[^a-z])",
                                  re.IGNORECASE)
#: A code in a form no pattern knows (ZY202600001, P-000123): optional letters, five or more digits.
_CODE_VALUE: Final = r"^[A-Z]{0,4}[\-_]?\d{5,}[A-Z0-9]{0,4}$"
#: Share of a text column's distinct values that must look like codes for it to link persons.
CODE_SHARE: Final = 0.9
#: Columns with more distinct values than this that only *look* like codes link persons; a
#: declared, found or named identifier links whatever its number of values.
LINK_DISTINCT_MIN: Final = 50


def _code_like(arr: pa.ChunkedArray) -> bool:
    """Whether a text column's distinct values are (almost all) record numbers in some form."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return False
    distinct = pc.unique(arr.drop_null())
    if isinstance(distinct, pa.ChunkedArray):
        distinct = distinct.combine_chunks()
    if len(distinct) <= LINK_DISTINCT_MIN:
        return False
    head = pc.utf8_trim_whitespace(normalise_array(distinct.slice(0, 5000)))
    hits = pc.sum(pc.match_substring_regex(head, _CODE_VALUE)).as_py() or 0
    return hits >= CODE_SHARE * len(head)


def linking_columns(table: pa.Table, unit: str, sensitivities: Mapping[str, str],
                    findings: Iterable[Mapping[str, Any]], exclude: Iterable[str] = ()) -> list[str]:
    """The columns whose values are one person's own, which link that person's rows: those where
    the scan found an identifier of a linking kind, those declared ``identifier`` or named so by
    their header (not names: two people may share 王伟), record numbers by header (住院号, 学号 …)
    and text columns of more than ``LINK_DISTINCT_MIN`` values that are almost all codes
    (ZY202600001): linking too much only merges persons (k is then harder to reach), linking too
    little counts one person's visits as several (k is then a lie). ``exclude``: columns known
    to be something else (quasi-identifiers: a postcode is not a person's own code)."""
    kinds: dict[str, set[str]] = {}
    for f in findings:
        kinds.setdefault(f["column"], set()).add(f["kind"])
    skip = set(exclude)
    out = []
    for name in table.column_names:
        if name == unit:
            continue
        found = kinds.get(name, set())
        name_like = bool(NAME_HEADER.search(name)) or bool(found and not found & LINKING_KINDS)
        declared = sensitivities.get(name) == "identifier"
        if (found & LINKING_KINDS) or (not name_like and (declared or ID_HEADER.search(name)
                                                          or RECORD_HEADER.search(name))):
            out.append(name)
        elif not name_like and name not in skip and sensitivities.get(name) != "quasi_identifier" \
                and _code_like(table.column(name)):
            out.append(name)
    return out


def _codes(arr: pa.ChunkedArray, cap: int | None = None) -> np.ndarray:
    """Dense integer codes of a column's values, text read as the scanner reads it (normalised,
    trimmed: one ID number typed with spaces, dashes or full-width digits is one value); -1 for
    nulls, empty text and (with ``cap``) values on more than ``cap`` rows (a placeholder such as
    无 links nobody) — except valid resident ID numbers, which are one person's however often
    they recur (a dialysis patient's hundred visits)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    is_text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    if is_text and len(arr):
        arr = pc.utf8_trim_whitespace(normalise_array(arr.cast(pa.string())))
    enc = pc.dictionary_encode(arr)
    codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    if is_text and len(enc.dictionary):
        blank = np.asarray(pc.equal(enc.dictionary, "").to_numpy(zero_copy_only=False))
        codes[(codes >= 0) & blank[np.maximum(codes, 0)]] = -1
    if cap is not None and (codes >= 0).any():
        counts = np.bincount(codes[codes >= 0], minlength=len(enc.dictionary))
        placeholder = counts > cap
        if is_text and placeholder.any():
            words = enc.dictionary.to_pylist()
            for i in np.flatnonzero(placeholder):
                placeholder[i] = not resident_id_valid(words[i] or "")
        codes[(codes >= 0) & placeholder[np.maximum(codes, 0)]] = -1
    return codes


def person_labels(table: pa.Table, unit: str, linking: list[str]) -> np.ndarray:
    """One label per row: rows sharing the unit *or* any value of a ``linking`` column are one
    person (connected components, by label propagation).

    >>> t = pa.table({"visit": [1, 2, 3], "idn": ["A", "A", "B"]})
    >>> person_labels(t, "visit", ["idn"]).tolist()
    [0, 0, 2]
    """
    n = table.num_rows
    labels = np.arange(n, dtype=np.int64)
    if n == 0:
        return labels
    cap = max(20, n // 100)  # one person's rows (visits); more is a placeholder value
    columns = [_codes(table.column(unit)), *(_codes(table.column(c), cap) for c in linking)]
    for _ in range(64):
        before = labels.copy()
        for codes in columns:
            ok = codes >= 0
            if not ok.any():
                continue
            mins = np.full(int(codes.max()) + 1, n, dtype=np.int64)
            np.minimum.at(mins, codes[ok], labels[ok])
            labels[ok] = mins[codes[ok]]
        labels = labels[labels]  # path halving: each row points at its label's label
        if np.array_equal(labels, before):
            break
    return labels
