"""What each column of a derivative is: dropped (and why), a quasi-identifier, a measure or a category.

The allow-list of :mod:`sandbox.governance.deidentify`: a column leaves only when it is safe
by construction; everything else is dropped, whatever its declaration.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance import risk_scan
from sandbox.governance.deidentification.generalisation import TOP
from sandbox.governance.identifiers.normalise import normalise_array
from sandbox.governance.identifiers.persons import ID_HEADER, NAME_HEADER
from sandbox.governance.policy import ColumnPolicy, DatasetPolicy

#: A column that is not a quasi-identifier or a bounded measure is kept only as a category of
#: at most this many distinct values (more is free text or a code, dropped).
CATEGORY_MAX: Final = 50

#: Headers that say a column describes a person's demographics or whereabouts: a quasi-identifier
#: whatever it is declared (Sweeney 2000: birth date, sex and postcode single out 87 % of people).
QI_HEADER: Final = re.compile(
    r"(?:^|[^a-z])(?:sex|gender|age|ages|birth\w*|born|dob|district|county|street|town|township|village|"
    r"community|post_?code|postal\w*|zip\w*|ethnic\w*|nation\w*|marital|marriage|occupation|job|education|"
    r"degree|date|day|time|month|year)(?:$|[^a-z])"
    r"|性别|年龄|岁|出生|生日|区县|县区|[区县市镇乡村]$|街道|乡镇|社区|居委|村委|邮编|邮政编码|民族|国籍|籍贯|婚姻|职业|学历|"
    r"文化程度|日期|时间",
    re.IGNORECASE,
)
SEX_VALUES: Final = frozenset({"男", "女", "男性", "女性", "m", "f", "male", "female", "未知"})
_AREA_VALUE: Final = re.compile(r"(?:省|市|区|县|旗|街道|镇|乡|社区|村|居委会)$")



@dataclass
class ColumnRoles:
    """The allow-list's verdict: the dropped columns and why, the kept ones' roles and values.

    Mutable: later stages drop more (a column the previous release lacks, one a re-scan flags).
    """

    dropped: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # name -> quasi_identifier | measure | category
    why_qi: dict[str, str] = field(default_factory=dict)
    recoded: dict[str, int] = field(default_factory=dict)  # category -> persons whose rare value became *
    base: dict[str, Any] = field(default_factory=dict)  # kept column -> its values (categories recoded)


def flagged_columns(report: Mapping[str, Any]) -> dict[str, str]:
    """The columns a risk report found identifiers in, each with the reason the recipe gives."""
    out: dict[str, str] = {}
    for f in report.get("identifier_findings", []):
        out.setdefault(f["column"], f"the risk scan found {risk_scan.KIND_LABELS.get(f['kind'], f['kind'])} "
                                    f"(declared {f['declared']})")
    return out


def _text_values(arr: pa.ChunkedArray, limit: int = 20_000) -> list[str]:
    """Up to ``limit`` distinct non-null values as case-folded, NFKC-normalised text."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return []
    distinct = pc.unique(arr.drop_null())
    if isinstance(distinct, pa.ChunkedArray):
        distinct = distinct.combine_chunks()
    return [v.strip().casefold() for v in normalise_array(distinct.slice(0, limit)).to_pylist()]


def recognised_qi(name: str, col: ColumnPolicy | None, arr: pa.ChunkedArray) -> str | None:
    """Why a column is a quasi-identifier whatever its declaration, or None.

    >>> recognised_qi("出生日期", None, pa.chunked_array([["x"]]))
    'its header names a demographic or place (出生日期)'
    >>> recognised_qi("s", None, pa.chunked_array([["男", "女", "女"]]))
    'its values are sexes'
    """
    if (col is not None and col.type == "date") or pa.types.is_temporal(arr.type):
        return "a date"
    if QI_HEADER.search(name.strip()):
        return f"its header names a demographic or place ({name})"
    values = _text_values(arr)
    if values and len(values) <= 10 and all(v in SEX_VALUES for v in values):
        return "its values are sexes"
    if values and sum(1 for v in values if _AREA_VALUE.search(v)) >= 0.9 * len(values):
        return "its values are districts, streets or villages"
    if values and sum(1 for v in values if re.fullmatch(r"\d{6}", v)) >= 0.9 * len(values) and len(values) > 1:
        return "its values look like postcodes"
    return None


def _value_persons(arr: pa.ChunkedArray, person: pa.Array) -> pa.Table:
    """How many persons hold each value of ``arr`` (nulls are a value too)."""
    t = pa.table({"v": arr, "p": person}).group_by(["v", "p"]).aggregate([])
    return t.group_by(["v"]).aggregate([([], "count_all")])


def _as_category(arr: pa.ChunkedArray, person: pa.Array, persons: int, k: int,
                 max_suppression: float) -> tuple[pa.ChunkedArray | None, str, int]:
    """The column recoded as a category (rare values → ``*``), or None and why not."""
    support = _value_persons(arr, person)
    distinct = support.num_rows
    if distinct > CATEGORY_MAX:
        return None, (f"free text or near-unique values ({distinct:,} distinct over {persons:,} persons; a kept "
                      f"category has at most {CATEGORY_MAX})"), 0
    counts = support.column("count_all").to_numpy()
    rare = support.column("v").filter(pa.array(counts < k))
    held = int(counts[counts < k].sum())
    if held > max_suppression * persons:
        return None, (f"{held:,} persons hold one of {len(rare):,} values shared by fewer than {k} persons "
                      "(a near-identifier, not a category)"), 0
    if len(rare) == 0:
        return arr, "", 0
    text = pc.cast(arr, pa.string())
    is_rare = pc.fill_null(pc.is_in(text, value_set=pc.cast(rare, pa.string())), False)
    if rare.null_count:
        is_rare = pc.or_(is_rare, pc.is_null(text))
    return pc.if_else(is_rare, TOP, text), "", held



def classify_columns(table: pa.Table, policy: DatasetPolicy, flagged: Mapping[str, str], linking: list[str],
                     person: pa.Array, persons: int, k_target: int, max_suppression: float) -> ColumnRoles:
    """Each column dropped (with the reason the recipe shows) or kept in its role, in table order."""
    out = ColumnRoles()
    for name in table.column_names:
        col = policy.columns.get(name) or ColumnPolicy(name, "text", "sensitive")
        arr = table.column(name)
        if name == policy.privacy_unit:
            out.dropped[name] = "privacy unit: a persistent pseudonym linking a person's rows"
        elif col.sensitivity == "identifier":
            out.dropped[name] = "declared identifier"
        elif name in flagged:
            out.dropped[name] = flagged[name]
        elif ID_HEADER.search(name) or NAME_HEADER.search(name):
            out.dropped[name] = "its header names an identifier (a name, number, account, plate or address)"
        elif name in linking:
            out.dropped[name] = "a person's own number (a record number or code): it links that person's rows"
        elif col.sensitivity == "quasi_identifier" or (why := recognised_qi(name, col, arr)):
            out.roles[name] = "quasi_identifier"
            out.why_qi[name] = "declared" if col.sensitivity == "quasi_identifier" else f"recognised: {why}"
            out.base[name] = arr
        elif col.type in ("int", "float") and col.bounds is not None:
            out.roles[name] = "measure"
            out.base[name] = arr
        else:
            kept, why_not, held = _as_category(arr, person, persons, k_target, max_suppression)
            if kept is None:
                out.dropped[name] = why_not
            else:
                out.roles[name] = "category"
                out.base[name] = kept
                if held:
                    out.recoded[name] = held
    return out
