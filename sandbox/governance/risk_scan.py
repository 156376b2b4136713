"""The security risk assessment run when a dataset is registered (第十二条).

Pure functions over an Arrow table and its policy; no I/O. Two questions:

1. **Does any column hold direct identifiers?** Values that look like 18-digit resident
   ID numbers (GB 11643-1999: area code, birth date, sequence, and an ISO 7064 MOD 11-2
   check digit that must be right), mainland mobile numbers (``1[3-9]`` + 9 digits) or
   Chinese personal names (a common surname followed by one or two Han characters); and, for
   the enterprise data most bureaus hold (issue 13), 统一社会信用代码 (GB 32100-2015 check
   character), 组织机构代码 (GB 11714-1997 check character), company names (a legal form such
   as 有限公司 or 专业合作社; shop-like suffixes only in a column full of them), legal
   representatives (a header such as 法定代表人 over personal names, or 法定代表人张三 in
   text), bank card numbers (16–19 digits, Luhn), licence plates (GA 36-2018, new-energy
   included), detailed addresses (a road and a house number, or an estate and a building),
   e-mail and IPv4/IPv6 addresses. Text and integer columns are scanned, whole values and
   values embedded in free text alike. A column already declared ``identifier`` is reported
   as ``declared`` (the guard never lets it into a query); anywhere else it is a ``high``
   finding. Check-digit kinds are reported when more of a column's same-shaped values validate
   than chance explains (:func:`~sandbox.governance.identifiers.matching.beyond_chance`), so
   serials and amounts that pass a check by chance do not, while real codes mixed with other
   numbers still do. Values are normalised before matching
   (:func:`~sandbox.governance.identifiers.normalise.normalise`: NFKC full-width → half-width,
   spaces and hyphens inside digit runs and between digits and Han characters removed, upper
   case), integral float
   columns are scanned as integers, first-generation 15-digit ID numbers count when they fill
   a column, a resident ID number split over two or three adjacent columns is found, and
   names are also found with a title (张伟先生), after a role in text (户主张伟), with a
   surname beyond the top 100 (``SURNAMES_MORE``) or in pinyin (ZHANG WEI). What
   identifiers look like, their check digits and the matching are in
   :mod:`sandbox.governance.identifiers`; this module turns matches into findings per column.
2. **How unique are people on their quasi-identifiers?** Over the policy's
   ``quasi_identifier`` columns: the smallest number of persons sharing one combination (the
   dataset's *k* in k-anonymity, Sweeney 2002), the number and share of persons who are
   alone in their combination, and how many fall below ``K_MIN``.

The report is stored with the dataset version; the owner must acknowledge it before the
version is published (``sandbox.governance.open_catalog.acknowledge_risk``). Examples in the report are
masked: the report itself must not become a copy of the identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance.identifiers.check_digits import valid_resident_ids
from sandbox.governance.identifiers.matching import (
    digit_findings,
    extract,
    first_example,
    mask,
    scatter,
    text_findings,
)
from sandbox.governance.identifiers.normalise import as_text, normalise_array
from sandbox.governance.identifiers.patterns import (
    CHECKSUM_SHARE,
    ID15_PATTERN,
    ID15_SHARE,
    ID_BODY,
    ID_PATTERN,
    LEGAL_REP_HEADER,
    MOBILE_PATTERN,
    NAME_DISTINCT,
    NAME_PATTERN,
    NAME_SHARE,
    PINYIN_NAME_PATTERN,
    PLACEHOLDERS,
    TRIGGER_PATTERN,
)
from sandbox.governance.identifiers.persons import linking_columns, person_labels

REPORT_FORMAT: Final = "data-sandbox/risk-report/v1"
#: Values per column scanned for identifier patterns at registration (evenly spaced rows,
#: deterministic); ``sample_rows=None`` scans every value (what the unconditional derivative does).
SAMPLE_ROWS: Final = 200_000
#: The k-anonymity level below which a combination of quasi-identifiers is a finding
#: (the common threshold of k = 5, e.g. El Emam & Dankar, JAMIA 2008).
K_MIN: Final = 5

#: How each kind reads in the report's problems (and in the console).
KIND_LABELS: Final = {
    "resident_id": "resident ID numbers", "mobile": "mobile numbers", "chinese_name": "personal names",
    "credit_code": "unified social credit codes (统一社会信用代码)",
    "organization_code": "organization codes (组织机构代码)", "company_name": "company names",
    "legal_representative": "legal representatives' names", "bank_card": "bank card numbers",
    "licence_plate": "licence plates", "address": "detailed addresses", "email": "e-mail addresses",
    "ip_address": "IP addresses",
}


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str  # a key of KIND_LABELS
    matches: int
    scanned: int
    embedded: bool  # found inside longer text rather than as whole values
    declared: str  # the column's declared sensitivity
    example: str

    @property
    def severity(self) -> str:
        return "declared" if self.declared == "identifier" else "high"

    @property
    def share(self) -> float:
        return self.matches / self.scanned if self.scanned else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "column": self.column, "kind": self.kind, "matches": self.matches, "scanned": self.scanned,
            "share": round(self.share, 6), "embedded": self.embedded, "declared": self.declared,
            "severity": self.severity, "example": self.example,
        }


def _sample(column: pa.ChunkedArray | pa.Array, cap: int | None) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.drop_null()
    if cap is not None and len(arr) > cap:
        arr = arr.take(pa.array(np.linspace(0, len(arr) - 1, cap).astype(np.int64)))
    return arr


def scan_column(name: str, column: pa.ChunkedArray | pa.Array, declared: str,
                sample_rows: int | None = SAMPLE_ROWS) -> list[Finding]:
    """Identifier-like values in one column (empty list: nothing found); ``sample_rows=None``
    scans every value."""
    raw = _sample(column, sample_rows)
    is_text = pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type) or (
        pa.types.is_dictionary(raw.type) and pa.types.is_string(raw.type.value_type))
    text = as_text(raw)
    if text is None or len(text) == 0:
        return []
    text = normalise_array(text) if is_text else text
    scanned = len(text)
    findings = []
    id_hit, id_whole, id_values = extract(text, ID_PATTERN)
    ids = scatter(id_hit, valid_resident_ids(id_values.filter(pa.array(id_hit)).to_pylist()))
    id15, id15_whole, id15_values = extract(text, ID15_PATTERN)
    if id15.sum() >= ID15_SHARE * scanned and not ids.any():
        ids, id_whole, id_values = id15, id15_whole, id15_values
    if ids.any():
        findings.append(Finding(name, "resident_id", int(ids.sum()), scanned, bool((ids & ~id_whole).any()),
                                declared, first_example(id_values, ids)))
    phones, phone_whole, phone_values = extract(text, MOBILE_PATTERN)
    if phones.any():
        findings.append(Finding(name, "mobile", int(phones.sum()), scanned, bool((phones & ~phone_whole).any()),
                                declared, first_example(phone_values, phones)))
    hinted = bool(LEGAL_REP_HEADER.search(name))
    if is_text:
        trimmed = pc.utf8_trim_whitespace(text)
        is_name = pc.or_(pc.match_substring_regex(trimmed, NAME_PATTERN),
                         pc.match_substring_regex(trimmed, PINYIN_NAME_PATTERN))
        names = text.filter(is_name)
        distinct = pc.count_distinct(names).as_py() if len(names) else 0
        # shares over the values that name anybody (a column of agents, mostly 无, is a name column);
        # a small column of distinct names is a name column too (9 sole traders of one village)
        meaningful = scanned - int(pc.sum(pc.is_in(trimmed, pa.array(sorted(PLACEHOLDERS)))).as_py() or 0)
        if len(names) >= NAME_SHARE * max(meaningful, 1) and (
                distinct >= NAME_DISTINCT or hinted and distinct or distinct >= 2 and distinct == len(names)):
            findings.append(Finding(name, "legal_representative" if hinted else "chinese_name", len(names),
                                    scanned, False, declared, mask(str(names[0].as_py()).strip())))
    # PERF: a value that is wholly a resident ID or a mobile number holds nothing else to look for.
    findings += _enterprise_findings(name, text, declared, scanned, is_text,
                                     (ids & id_whole) | (phones & phone_whole), findings)
    return findings


def _enterprise_findings(name: str, text: pa.Array, declared: str, scanned: int,
                         is_text: bool, done: np.ndarray, already: list[Finding]) -> list[Finding]:
    """Enterprise, card, plate, address, e-mail and IP findings; only rows passing one cheap trigger."""
    trigger = np.asarray(pc.fill_null(pc.match_substring_regex(text, TRIGGER_PATTERN), False)
                         .to_numpy(zero_copy_only=False), dtype=bool) & ~done
    if not trigger.any():
        return []
    rows = pa.array(trigger)
    candidates = text.filter(rows)
    results = digit_findings(candidates)
    if is_text and not pc.all(pc.ascii_is_alnum(candidates)).as_py():
        results.update(text_findings(candidates, scanned))
    findings = []
    for kind, (hit, whole, values) in results.items():
        if kind == "chinese_name" and any(f.kind == "chinese_name" for f in already):
            continue
        if hit.any():
            findings.append(Finding(name, kind, int(hit.sum()), scanned, bool((hit & ~whole).any()), declared,
                                    first_example(values, hit)))
    return findings


def uniqueness(table: pa.Table, quasi_identifiers: Iterable[str], unit: str) -> dict[str, Any]:
    """k-anonymity over persons: how many persons share each quasi-identifier combination.

    A person with several rows (visits) counts once per combination they appear in.
    """
    qis = list(quasi_identifiers)
    if not qis:
        return {"columns": [], "k_min": K_MIN, "note": "no quasi_identifier columns are declared"}
    per_person = table.select([*qis, unit]).group_by([*qis, unit]).aggregate([])
    classes = per_person.group_by(qis).aggregate([([], "count_all")])
    sizes = classes.column("count_all").to_numpy()
    persons = int(pc.count_distinct(table.column(unit)).as_py())
    unique = int((sizes == 1).sum())
    below = int(sizes[sizes < K_MIN].sum())
    return {
        "columns": qis,
        "k_min": K_MIN,
        "persons": persons,
        "classes": int(len(sizes)),
        "k": int(sizes.min()) if len(sizes) else 0,
        "unique_persons": unique,
        "unique_share": round(unique / persons, 6) if persons else 0.0,
        "persons_below_k_min": below,
    }


def split_id_findings(table: pa.Table, sensitivities: Mapping[str, str], *, privacy_unit: str,
                      sample_rows: int | None = SAMPLE_ROWS) -> list[Finding]:
    """Resident ID numbers split over two or three adjacent columns (area code | birth date |
    sequence and check digit): each column of a window whose concatenation is a valid ID number
    in at least ``CHECKSUM_SHARE`` of the rows (and at least 3) is reported."""
    names = [n for n in table.column_names if n != privacy_unit]
    texts: dict[str, pa.Array | None] = {}
    widths: dict[str, int] = {}
    for n in names:
        arr = table.column(n).combine_chunks()
        if sample_rows is not None and len(arr) > sample_rows:
            arr = arr.take(pa.array(np.linspace(0, len(arr) - 1, sample_rows).astype(np.int64)))
        t = as_text(arr) if len(arr) else None
        if t is None or len(t) != len(arr):
            texts[n] = None
            continue
        is_str = pa.types.is_string(t.type)
        # PERF: only short digit strings can be a piece of an ID number (checked on the first 1,000)
        head = normalise_array(t.slice(0, 1000)) if is_str else t.slice(0, 1000)
        pieces = pc.sum(pc.match_substring_regex(pc.fill_null(head, ""), r"^[0-9X]{1,16}$")).as_py() or 0
        texts[n] = pc.fill_null(normalise_array(t) if is_str else t, "") if pieces >= CHECKSUM_SHARE * len(head) else None
        if texts[n] is not None:  # the usual width of a piece: a window of pieces must add up to 18
            counts = pc.value_counts(pc.utf8_length(pc.fill_null(head, "")))
            widths[n] = int(counts.field("values")[int(np.argmax(counts.field("counts").to_numpy()))].as_py())
    out: list[Finding] = []
    seen: set[str] = set()
    for width in (3, 2):
        for i in range(len(names) - width + 1):
            window = names[i:i + width]
            if any(texts[n] is None for n in window) or seen.issuperset(window) or sum(
                    widths[n] for n in window) != 18:
                continue
            joined = pc.binary_join_element_wise(*(texts[n] for n in window), "")
            hit, whole, values = extract(joined, "^" + r"(?P<v>" + ID_BODY + ")$")
            good = scatter(hit, valid_resident_ids(values.filter(pa.array(hit)).to_pylist()))
            if good.sum() >= 3 and good.sum() >= CHECKSUM_SHARE * len(joined):
                seen.update(window)
                out += [Finding(n, "resident_id", int(good.sum()), len(joined), True,
                                sensitivities.get(n, "sensitive"), first_example(values, good)) for n in window]
    return out


#: Columns with more distinct values than this get no value support (None: never listable).
SUPPORT_DISTINCT_MAX: Final = 10_000


def value_support(table: pa.Table, unit: str, sensitivities: Mapping[str, str] | None = None,
                  linking: list[str] | None = None) -> dict[str, int | None]:
    """Per column, the fewest *persons* holding any one of its values (None when the column has
    more than ``SUPPORT_DISTINCT_MAX`` distinct values). A column's policy ``public_values`` are
    listed on public pages only when this is at least ``K_MIN`` (``sandbox.governance.open_catalog``): a value
    held by one person, listed to anyone, is that person's. Persons are rows linked through the
    unit and the ``linking`` columns (:func:`person_labels`, as the unconditional derivative
    counts them): a patient's five visits under five visit numbers and one ID number are one
    person, not five.

    >>> t = pa.table({"visit": [1, 2, 3, 4], "idn": ["A"] * 4, "code": ["x"] * 4})
    >>> value_support(t, "visit", {"idn": "identifier"}, ["idn"])
    {'code': 1}
    """
    out: dict[str, int | None] = {}
    sensitivities = sensitivities or {}
    if unit not in table.column_names or table.num_rows == 0:
        return out
    if linking:
        person: pa.ChunkedArray | pa.Array = pa.array(person_labels(table, unit, linking))
        one_row_each = len(np.unique(person.to_numpy())) == table.num_rows
    else:
        person = table.column(unit)
        one_row_each = pc.count_distinct(person, mode="all").as_py() == table.num_rows
    for name in table.column_names:
        if name == unit or sensitivities.get(name) == "identifier":
            continue  # an identifier column has no public values (sandbox.governance.policy refuses them)
        col = table.column(name)
        if pc.count_distinct(col, mode="all").as_py() > SUPPORT_DISTINCT_MAX:
            out[name] = None
            continue
        if one_row_each:  # PERF: persons per value = rows per value
            out[name] = int(pc.min(pc.value_counts(col).field("counts")).as_py())
            continue
        per = pa.table({"v": col, "u": person}).group_by(["v", "u"]).aggregate([])
        out[name] = int(pc.min(per.group_by(["v"]).aggregate([([], "count_all")]).column("count_all")).as_py())
    return out


def scan(table: pa.Table, sensitivities: Mapping[str, str], *, privacy_unit: str,
         dataset: str = "", sample_rows: int | None = SAMPLE_ROWS) -> dict[str, Any]:
    """The full report (JSON-ready) for a table whose columns have declared sensitivities
    (``sample_rows=None``: every value is scanned, not a sample)."""
    findings: list[Finding] = []
    for name in table.column_names:
        if name == privacy_unit:
            continue  # the unit is a pseudonymous key by declaration; it is never queryable
        findings += scan_column(name, table.column(name), sensitivities.get(name, "sensitive"), sample_rows)
    findings += split_id_findings(table, sensitivities, privacy_unit=privacy_unit, sample_rows=sample_rows)
    qis = [c for c in table.column_names if sensitivities.get(c) == "quasi_identifier"]
    unique = uniqueness(table, qis, privacy_unit)
    linking = (linking_columns(table, privacy_unit, sensitivities, [f.as_dict() for f in findings])
               if privacy_unit in table.column_names else [])
    support = value_support(table, privacy_unit, sensitivities, linking)
    problems = [
        f"column {f.column!r} holds what look like {KIND_LABELS.get(f.kind, f.kind)} "
        f"({f.matches} of {f.scanned} values{' inside text' if f.embedded else ''}) but is declared "
        f"{f.declared!r}; declare it identifier or remove it"
        for f in findings if f.severity == "high"
    ]
    if qis and unique["k"] < K_MIN:
        problems.append(
            f"{unique['unique_persons']} persons ({unique['unique_share']:.1%}) are unique on "
            f"{', '.join(qis)} and the smallest group has {unique['k']} (k < {K_MIN}); only "
            "differentially private aggregates may be released, never row-level data"
        )
    return {
        "format": REPORT_FORMAT,
        "dataset": dataset,
        "rows": table.num_rows,
        "identifier_findings": [f.as_dict() for f in findings],
        "quasi_identifiers": unique,
        "value_support": support,
        "passed": not problems,
        "problems": problems,
    }


def summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """A short form for audit entries: counts only, no examples."""
    qi = report.get("quasi_identifiers") or {}
    return {
        "passed": report.get("passed"),
        "findings": [
            {"column": f["column"], "kind": f["kind"], "severity": f["severity"]}
            for f in report.get("identifier_findings", [])
        ],
        "k": qi.get("k"),
        "unique_share": qi.get("unique_share"),
    }

