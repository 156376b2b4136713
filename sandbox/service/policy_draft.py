"""A policy drafted from the data, for its owner to review (issue 13, ``sandbox datasets draft``).

The owner may see the data; the draft is a starting point, never registered by itself. Every
suggestion is written with the figures it came from as TOML comments, so the owner can judge it:

- **types**: from the file as :mod:`sandbox.governance.file_readers` reads it without a policy (codes
  with leading zeros or 11+ digits stay text);
- **sensitivity**: ``identifier`` when the risk scan (:func:`sandbox.governance.risk_scan.scan_column`)
  finds identifier-like values, or when a text column has nearly one value per unit (a name
  or a code of the unit: company names, credit codes in another column); ``quasi_identifier``
  when the name says place, age, sex, birth, ethnicity, occupation, education or industry;
  ``sensitive`` otherwise. The privacy unit is never an identifier (the policy forbids it;
  the guard never lets it into a query);
- **bounds** for numbers: the clamp range the bounding report suggests
  (:mod:`sandbox.service.bounding_report`: the narrowest of [0, P90] … [0, max] keeping 99 % of the
  value mass, rounded away from zero), with the shares of rows and mass it cuts; for dates,
  the whole years the data spans;
- **public values** for columns of at most :data:`PUBLIC_MAX` distinct values, each held by
  at least ``risk_scan.K_MIN`` units (a rarer value would be disclosed by being listed);
- **contribution bounds**: one row per unit when that is so; otherwise the L0 and L∞ the
  bounding report suggests over the public-value columns as group keys (the smallest keeping
  99 % of the rows; when none of its candidates does, L0 is the most groups a unit has),
  with the spread of rows per unit as comments;
- **units**: never guessed. Each number column carries the line ``# unit = ""`` commented
  out, for the owner to fill in ("元", "岁", "次") and uncomment; a draft registered as it
  is declares no units.

PRIVACY: the draft holds figures of the data (bounds, public values). It is for the owner
only and is not stored by the sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from query_guard.catalog import DEFAULT_TEXT_MAX_LENGTH
from sandbox.governance import risk_scan
from sandbox.governance.policy import NAME_RE
from sandbox.service import bounding_report

PUBLIC_MAX: Final = 50
NAMES_UNIT_SHARE: Final = 0.9
UNIT_HINTS: Final = ("person_id", "unit_id", "统一社会信用代码", "信用代码", "credit_code", "enterprise_id",
                     "身份证", "id_number", "企业编号", "单位编号", "人员编号")
QI_HINTS: Final = ("区", "县", "街道", "乡", "镇", "社区", "村", "地区", "district", "region", "town",
                   "年龄", "age", "性别", "sex", "gender", "出生", "birth", "民族", "ethnic", "职业",
                   "occupation", "学历", "education", "婚姻", "marital", "行业", "industry", "邮编", "postcode")


@dataclass(frozen=True)
class ColumnDraft:
    name: str
    type: str
    sensitivity: str
    bounds: tuple[Any, Any] | None = None
    public_values: tuple[Any, ...] | None = None
    max_length: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyDraft:
    name: str
    title: str
    owner: str
    tier: str
    privacy_unit: str
    one_row_per_unit: bool
    max_partitions: int
    max_rows_per_partition: int
    columns: tuple[ColumnDraft, ...]
    notes: tuple[str, ...] = field(default=())

    def toml(self) -> str:
        """The policy text, every suggestion followed by the figures behind it."""
        lines = [f"# {n}" for n in self.notes] + ["", "[dataset]", f"name = {_s(self.name)}",
                                                   f"title = {_s(self.title)}"]
        if re.search(r"[\u4e00-\u9fff]", self.title):
            lines.append(f"title_zh = {_s(self.title)}")
        lines += [f"owner = {_s(self.owner)}", f"tier = {_s(self.tier)}  # not_open | conditional | unconditional",
                  f"privacy_unit = {_s(self.privacy_unit)}", 'update_frequency = "irregular"',
                  f"one_row_per_unit = {'true' if self.one_row_per_unit else 'false'}",
                  f"max_partitions = {self.max_partitions}",
                  f"max_rows_per_partition = {self.max_rows_per_partition}",
                  "# legal_basis = \"\"  # the law, authorisation or consent reference for its personal "
                  "information (第二十条); required before it opens; fill in and uncomment"]
        for col in self.columns:
            lines += ["", f"[columns.{_key(col.name)}]"] + [f"# {n}" for n in col.notes]
            lines += [f"type = {_s(col.type)}", f"sensitivity = {_s(col.sensitivity)}"]
            if col.type in ("int", "float"):
                lines.append('# unit = ""  # the unit of its values, e.g. "元", "岁", "次"; fill in and uncomment')
            if col.bounds is not None:
                lines.append(f"bounds = [{_v(col.bounds[0])}, {_v(col.bounds[1])}]")
            if col.public_values is not None:
                lines.append("public_values = [" + ", ".join(_v(v) for v in col.public_values) + "]")
            if col.max_length is not None:
                lines.append(f"max_length = {col.max_length}")
        return "\n".join(lines) + "\n"


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _s(name)


def _v(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _s(str(value))


def policy_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_date(arrow_type) or pa.types.is_timestamp(arrow_type):
        return "date"
    return "text"


def dataset_name(stem: str) -> str:
    """A valid dataset name from a file name (``enterprise-registry`` → ``enterprise_registry``)."""
    name = re.sub(r"[^a-z0-9_]+", "_", stem.lower()).strip("_")
    name = name if name and name[0].isalpha() else "dataset_" + name
    return name[:63] if NAME_RE.match(name[:63]) else "dataset"


def guess_unit(table: pa.Table) -> str:
    names = table.column_names
    for hint in UNIT_HINTS:
        for name in names:
            if name == hint or (len(hint) > 3 and hint in name):
                return name
    for name in names:
        if name.endswith(("_id", "编号", "代码")) or name == "id":
            return name
    return names[0]


def nice_up(x: float) -> float:
    """Round up to two significant digits (``12_345`` → ``13_000``)."""
    if x <= 0:
        return -nice_down(-x) if x < 0 else 0.0
    step = 10 ** (math.floor(math.log10(x)) - 1)
    return math.ceil(x / step - 1e-9) * step


def nice_down(x: float) -> float:
    if x <= 0:
        return -nice_up(-x) if x < 0 else 0.0
    step = 10 ** (math.floor(math.log10(x)) - 1)
    return math.floor(x / step + 1e-9) * step


def _bounds(col: pa.ChunkedArray, ctype: str) -> tuple[tuple[Any, Any] | None, list[str]]:
    """Dates: the whole years the values span (numbers take the bounding report's clamp)."""
    values = col.drop_null()
    if len(values) == 0:
        return None, ["no values: declare bounds by hand"]
    days = values.cast(pa.date32()).cast(pa.int32()).to_numpy()
    lo = dt.date(1970, 1, 1) + dt.timedelta(days=int(days.min()))
    hi = dt.date(1970, 1, 1) + dt.timedelta(days=int(days.max()))
    return (dt.date(lo.year, 1, 1).isoformat(), dt.date(hi.year, 12, 31).isoformat()), [
        f"observed {lo} to {hi}; suggested: whole years around them"]


def _public_values(table: pa.Table, name: str, unit: str) -> tuple[tuple[Any, ...] | None, list[str]]:
    col = table.column(name)
    distinct = pc.count_distinct(col).as_py()
    if distinct > PUBLIC_MAX or distinct == 0:
        return None, []
    held = (table.select([name, unit]).drop_null().group_by([name, unit]).aggregate([])
            .group_by([name]).aggregate([([], "count_all")]))
    rare = sum(1 for n in held.column("count_all").to_pylist() if n < risk_scan.K_MIN)
    if rare:
        return None, [f"{distinct} values, {rare} of them held by fewer than {risk_scan.K_MIN} units: not "
                      "listed as public (listing would disclose them); groups are kept by DP selection"]
    values = sorted(held.column(name).to_pylist())
    return tuple(values), [f"{distinct} values, each held by at least {risk_scan.K_MIN} units: suggested as "
                           "public (every one is released, empty groups included)"]


def _p95(counts: pa.Array) -> int:
    return max(1, int(math.ceil(float(np.quantile(counts.to_numpy(), 0.95))))) if len(counts) else 1


def _contribution(table: pa.Table, unit: str, report: dict[str, Any]) -> tuple[bool, int, int, list[str]]:
    per_unit = table.group_by([unit]).aggregate([([], "count_all")]).column("count_all")
    if pc.max(per_unit).as_py() == 1:
        return True, 1, 1, ["one row per unit: no bounding pass is needed"]
    notes = [f"rows per unit: median {int(np.median(per_unit.to_numpy()))}, 95th percentile "
             f"{_p95(per_unit)}, most {pc.max(per_unit).as_py()}"]
    suggested = report["suggested"]
    for key in report["group_keys"]:
        if key["key"]:
            notes.append(f"grouping by {key['key']}: a unit has rows in at most {key['max_groups_per_person']} "
                         f"group(s) and at most {key['max_rows_per_group']} row(s) in one")
    notes.append(f"bounding report ({report['rule']}): L0 = {suggested['max_partitions']}, "
                 f"L∞ = {suggested['max_rows_per_partition']}"
                 + ("" if suggested["meets_target"] else "; no candidate keeps 99 % of the rows"))
    l0 = int(suggested["max_partitions"])
    spans = [k["max_groups_per_person"] for k in report["group_keys"] if k["key"]]
    if not suggested["meets_target"] and spans and max(spans) > l0:
        l0 = min(1000, max(spans))  # beyond the report's candidates: keep every unit's groups
        notes.append(f"L0 raised to {l0}, the most groups a unit has, so that no unit loses a group")
    return False, l0, int(suggested["max_rows_per_partition"]), notes


def _with_clamp(col: ColumnDraft, clamp: dict[str, Any]) -> ColumnDraft:
    sug = clamp["suggested"]
    lo, hi = sug["lower"], sug["upper"]
    if not lo < hi:
        hi = lo + 1
    pick = next(r for r in clamp["ranges"] if r["candidate"] == sug["from"])
    convert = int if col.type == "int" else float
    note = (f"observed {clamp['min']:g} to {clamp['max']:g}; the bounding report suggests the clamp of "
            f"{sug['from']}: it changes {pick['rows_clamped_share']:.2%} of the values and removes "
            f"{pick['mass_removed_share']:.2%} of the value mass (the interval covers the noise, not this)")
    return replace(col, bounds=(convert(lo), convert(hi)), notes=(*col.notes, note))


def _draft_column(table: pa.Table, col_name: str, unit: str, units: int) -> tuple[ColumnDraft, bool]:
    """One column's type, sensitivity, bounds and public values from the data, with the notes
    that say why; and whether it can be a grouping (it has public values)."""
    col = table.column(col_name)
    ctype = policy_type(col.type)
    notes: list[str] = []
    kinds = sorted({f.kind for f in risk_scan.scan_column(col_name, col, "sensitive")})
    distinct = pc.count_distinct(col).as_py()
    sensitivity = "sensitive"
    if col_name == unit:
        notes.append("the privacy unit: bounding is per unit; never queryable")
    elif kinds:
        sensitivity = "identifier"
        notes.append(f"the risk scan finds {', '.join(kinds)} values: identifier (never queryable)")
    elif ctype == "text" and units >= 20 and distinct >= NAMES_UNIT_SHARE * units:
        sensitivity = "identifier"
        notes.append(f"{distinct:,} distinct values for {units:,} units: it names or codes the unit")
    elif any(h in col_name.lower() for h in QI_HINTS):
        sensitivity = "quasi_identifier"
        notes.append("the name suggests a quasi-identifier (place, age, sex, birth, occupation…)")
    bounds = public = max_length = None
    if ctype == "date" and sensitivity != "identifier" and col_name != unit:
        bounds, more = _bounds(col, ctype)
        notes += more
    if ctype in ("text", "int", "bool") and sensitivity != "identifier" and col_name != unit:
        public, more = _public_values(table, col_name, unit)
        notes += more
    if ctype == "text" and len(col) and (pc.max(pc.utf8_length(col)).as_py() or 0) > DEFAULT_TEXT_MAX_LENGTH:
        max_length = int(pc.max(pc.utf8_length(col)).as_py())
        notes.append(f"longest value {max_length:,} characters (default limit {DEFAULT_TEXT_MAX_LENGTH:,})")
    if pa.types.is_timestamp(col.type):
        notes.append("holds times of day: the policy's date type keeps the day only")
    return ColumnDraft(col_name, ctype, sensitivity, bounds, public, max_length, tuple(notes)), public is not None


def draft_policy(table: pa.Table, *, name: str, owner: str = "CHANGE_ME", title: str = "",
                 tier: str = "conditional", privacy_unit: str | None = None,
                 source_notes: tuple[str, ...] = ()) -> PolicyDraft:
    """Draft a policy for ``table`` (read by :mod:`sandbox.governance.file_readers` without a policy)."""
    unit = privacy_unit or guess_unit(table)
    if unit not in table.column_names:
        raise ValueError(f"privacy unit {unit!r} is not a column (columns: {', '.join(table.column_names)})")
    units = pc.count_distinct(table.column(unit)).as_py()
    columns: list[ColumnDraft] = []
    groupings: list[str] = []
    for col_name in table.column_names:
        column, groupable = _draft_column(table, col_name, unit, units)
        columns.append(column)
        if groupable:
            groupings.append(col_name)
    numeric = [c.name for c in columns if c.type in ("int", "float") and c.sensitivity != "identifier"
               and c.name != unit]
    report = bounding_report.build_report(
        table, privacy_unit=unit, group_keys=groupings, numeric=dict.fromkeys(numeric),
        integer_columns=[c.name for c in columns if c.type == "int"])
    clamps = {c["column"]: c for c in report["columns"]}
    columns = [_with_clamp(c, clamps[c.name]) if c.name in clamps else c for c in columns]
    one_row, l0, linf, bound_notes = _contribution(table, unit, report)
    qis = [c.name for c in columns if c.sensitivity == "quasi_identifier"]
    unique = risk_scan.uniqueness(table, qis, unit)
    notes = [
        "DRAFT policy written by `sandbox datasets draft` from the data: review every line before",
        "registering it; the figures below come from the data and are for the owner's eyes only.",
        *source_notes,
        f"{table.num_rows:,} rows, {units:,} units ({unit}, guessed from the names; check it)"
        if privacy_unit is None else f"{table.num_rows:,} rows, {units:,} units ({unit})",
        *bound_notes,
    ]
    if qis:
        notes.append(f"k-anonymity on the guessed quasi-identifiers: k = {unique.get('k')}, "
                     f"{unique.get('unique_persons')} unit(s) unique")
    return PolicyDraft(name=name, title=title or name, owner=owner, tier=tier, privacy_unit=unit,
                       one_row_per_unit=one_row, max_partitions=l0, max_rows_per_partition=linf,
                       columns=tuple(columns), notes=tuple(notes))
