"""The security risk assessment run when a dataset is registered (第十二条).

Pure functions over an Arrow table and its policy; no I/O. Two questions:

1. **Does any column hold direct identifiers?** Values that look like 18-digit resident
   ID numbers (GB 11643-1999: area code, birth date, sequence, and an ISO 7064 MOD 11-2
   check digit that must be right), mainland mobile numbers (``1[3-9]`` + 9 digits) or
   Chinese personal names (a common surname followed by one or two Han characters). Text and
   integer columns are scanned, whole values and values embedded in free text alike. A
   column already declared ``identifier`` is reported as ``declared`` (the guard never lets
   it into a query); anywhere else it is a ``high`` finding.
2. **How unique are people on their quasi-identifiers?** Over the policy's
   ``quasi_identifier`` columns: the smallest number of persons sharing one combination (the
   dataset's *k* in k-anonymity, Sweeney 2002), the number and share of persons who are
   alone in their combination, and how many fall below ``K_MIN``.

The report is stored with the dataset version; the owner must acknowledge it before the
version is published (``sandbox.catalog.acknowledge_risk``). Examples in the report are
masked: the report itself must not become a copy of the identifiers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REPORT_FORMAT: Final = "data-sandbox/risk-report/v1"
#: Values per column scanned for identifier patterns (evenly spaced rows, deterministic).
SAMPLE_ROWS: Final = 200_000
#: The k-anonymity level below which a combination of quasi-identifiers is a finding
#: (the common threshold of k = 5, e.g. El Emam & Dankar, JAMIA 2008).
K_MIN: Final = 5
#: Share of scanned values that must look like names before a column is called a name column,
#: and how many distinct such values it needs (a category like 高中 is not a name column).
NAME_SHARE: Final = 0.5
NAME_DISTINCT: Final = 10

ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK: Final = "10X98765432"
_ID_BODY = r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
_MOBILE_BODY = r"1[3-9]\d{9}"
ID_PATTERN: Final = r"(?:^|[^0-9])(?P<v>" + _ID_BODY + r")(?:[^0-9]|$)"
MOBILE_PATTERN: Final = r"(?:^|[^0-9])(?:\+?86[- ]?)?(?P<v>" + _MOBILE_BODY + r")(?:[^0-9]|$)"
# The 100 most common surnames (公安部 2020 户籍统计) and common compound surnames.
SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏"
    "苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵"
    "万覃武钱戴严莫孔向常汤"
)
COMPOUND_SURNAMES: Final = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容",
                            "长孙", "宇文", "司徒", "夏侯", "令狐", "轩辕", "西门", "南宫")
NAME_PATTERN: Final = (
    "^(?:" + "|".join(COMPOUND_SURNAMES) + "|[" + SURNAMES + r"])\p{Han}{1,2}$"
)


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


def _valid_ids(values: list[str]) -> np.ndarray:
    """Vectorised :func:`resident_id_valid` for values already matching ``_ID_BODY``."""
    if not values:
        return np.zeros(0, dtype=bool)
    raw = np.array([v.upper() for v in values], dtype="S18").view(np.uint8).reshape(-1, 18)
    digits = raw[:, :17].astype(np.int64) - ord("0")
    check = np.frombuffer(ID_CHECK.encode(), dtype=np.uint8)[(digits * np.array(ID_WEIGHTS)).sum(axis=1) % 11]
    return check == raw[:, 17]


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


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str  # resident_id | mobile | chinese_name
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


def _sample(column: pa.ChunkedArray | pa.Array, cap: int) -> pa.Array:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    arr = arr.drop_null()
    if len(arr) > cap:
        arr = arr.take(pa.array(np.linspace(0, len(arr) - 1, cap).astype(np.int64)))
    return arr


def _as_text(arr: pa.Array) -> pa.Array | None:
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    if pa.types.is_integer(arr.type):
        return pc.cast(arr, pa.string())
    return None


def _extracted(text: pa.Array, pattern: str) -> tuple[list[str], int]:
    """Matched values and how many of them were the whole (stripped) value."""
    found = pc.extract_regex(text, pattern)
    ok = found.is_valid()
    values = pc.struct_field(found.filter(ok), "v").to_pylist()
    whole = pc.sum(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text.filter(ok))),
                            pc.utf8_length(pa.array(values, pa.string())))).as_py() or 0
    return values, int(whole)


def scan_column(name: str, column: pa.ChunkedArray | pa.Array, declared: str,
                sample_rows: int = SAMPLE_ROWS) -> list[Finding]:
    """Identifier-like values in one column (empty list: nothing found)."""
    text = _as_text(_sample(column, sample_rows))
    if text is None or len(text) == 0:
        return []
    scanned = len(text)
    findings = []
    ids, whole = _extracted(text, ID_PATTERN)
    valid = [v for v, ok in zip(ids, _valid_ids(ids), strict=True) if ok]
    if valid:
        findings.append(Finding(name, "resident_id", len(valid), scanned, whole < len(ids), declared,
                                mask(valid[0])))
    phones, whole = _extracted(text, MOBILE_PATTERN)
    if phones:
        findings.append(Finding(name, "mobile", len(phones), scanned, whole < len(phones), declared,
                                mask(phones[0])))
    if pa.types.is_string(text.type) or pa.types.is_large_string(text.type):
        is_name = pc.match_substring_regex(pc.utf8_trim_whitespace(text), NAME_PATTERN)
        names = text.filter(is_name)
        distinct = pc.count_distinct(names).as_py() if len(names) else 0
        if len(names) >= NAME_SHARE * scanned and distinct >= NAME_DISTINCT:
            findings.append(Finding(name, "chinese_name", len(names), scanned, False, declared,
                                    mask(str(names[0].as_py()).strip())))
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


def scan(table: pa.Table, sensitivities: Mapping[str, str], *, privacy_unit: str,
         dataset: str = "", sample_rows: int = SAMPLE_ROWS) -> dict[str, Any]:
    """The full report (JSON-ready) for a table whose columns have declared sensitivities."""
    findings: list[Finding] = []
    for name in table.column_names:
        if name == privacy_unit:
            continue  # the unit is a pseudonymous key by declaration; it is never queryable
        findings += scan_column(name, table.column(name), sensitivities.get(name, "sensitive"), sample_rows)
    qis = [c for c in table.column_names if sensitivities.get(c) == "quasi_identifier"]
    unique = uniqueness(table, qis, privacy_unit)
    problems = [
        f"column {f.column!r} holds what look like {f.kind.replace('_', ' ')}s "
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

