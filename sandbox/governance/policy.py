"""Dataset policy files (TOML): parse, validate against the data, and explain mistakes.

A policy is the owner's declaration for one dataset (DESIGN.md "Contracts"): tier
(第八条), privacy unit, contribution bounds and one ``[columns.NAME]`` table per
information item (第十四条) with type, bounds, public values, sensitivity and an optional unit, and optionally the
dataset's collusion cap (``budget_cap``, see :mod:`sandbox.governance.dataset_caps`). Every refusal
names the field and the line of the file so the owner can fix it at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from query_guard import ColumnInfo, TableInfo
from query_guard.catalog import DEFAULT_TEXT_MAX_LENGTH
from sandbox.errors import PolicyError
from sandbox.governance.policy_locator import PolicyLocator

TIERS = ("not_open", "conditional", "unconditional")
COLUMN_TYPES = ("int", "float", "text", "date", "bool")
#: ``DEFAULT_TEXT_MAX_LENGTH`` (from the guard's catalog): the longest text value a column
#: may hold unless its policy declares ``max_length``. PRIVACY: with the guard's bounds on
#: the work per character it bounds how much one person's row can change a query's time.
TEXT_MAX_LENGTH_LIMIT = 1_000_000
SENSITIVITIES = ("identifier", "quasi_identifier", "sensitive", "public")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Han characters allowed in column names (CJK unified ideographs, extension A, compatibility):
#: government files head their columns in Chinese, and SQL reaches them as identifiers.
HAN_CHARACTERS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
#: Column names: as dataset names, or with Han characters (``区县``, ``统一社会信用代码``).
COLUMN_NAME_RE = re.compile(rf"^[a-z{HAN_CHARACTERS}][a-z0-9_{HAN_CHARACTERS}]{{0,62}}$")
EPOCH = dt.date(1970, 1, 1)
#: The longest ``unit`` a column may declare ("元", "岁", "次", "kg/m²").
UNIT_MAX_LENGTH = 20
#: The ranges of a collusion cap, as those of an approval's budget (docs/workflow.md).
CAP_EPSILON_MAX = 1000.0
CAP_DELTA_MAX = 0.01


@dataclass(frozen=True)
class ColumnPolicy:
    name: str
    type: str
    sensitivity: str
    bounds: tuple[Any, Any] | None = None
    public_values: tuple[Any, ...] | None = None
    description: str = ""
    max_length: int | None = None  # text only; None means DEFAULT_TEXT_MAX_LENGTH
    #: ``unit = "元"``: the column's unit in free text ("" when not declared); shown to readers.
    unit: str = ""

    @property
    def text_limit(self) -> int | None:
        """The longest value a text column may hold (None for other types)."""
        if self.type != "text":
            return None
        return self.max_length if self.max_length is not None else DEFAULT_TEXT_MAX_LENGTH

    def numeric_bounds(self) -> tuple[float, float] | None:
        """Bounds as numbers; dates become days since 1970-01-01 (what the guard uses)."""
        if self.bounds is None:
            return None
        lo, hi = self.bounds
        if self.type == "date":
            return float((lo - EPOCH).days), float((hi - EPOCH).days)
        return float(lo), float(hi)


@dataclass(frozen=True)
class DatasetPolicy:
    name: str
    title: str
    owner: str
    tier: str
    privacy_unit: str
    update_frequency: str
    one_row_per_unit: bool
    max_partitions: int
    max_rows_per_partition: int
    columns: dict[str, ColumnPolicy]
    title_zh: str = ""
    description: str = ""
    #: ``[dataset] budget_cap = {epsilon = E, delta = D}``: the total (ε, δ) all researchers
    #: together may spend on the dataset, over every version (None: not declared here).
    budget_cap: tuple[float, float] | None = None
    #: ``[dataset] legal_basis = "…"``: the law, authorisation or consent reference under which
    #: its personal information is opened (第二十条); the owner's record in the store wins.
    legal_basis: str = ""
    #: ``[dataset] classification = {category = "…", grade = "general"|"important"|"core"}`` (第六条)
    classification: dict[str, str] | None = None
    #: ``[dataset] engine``: "duckdb" or "spark"; "" = the workspace default (sandbox.engine.routing).
    engine: str = ""
    source_text: str = field(default="", repr=False, compare=False)

    def table_info(self, *, bounding_seed: str, version: str) -> TableInfo:
        columns = {}
        for col in self.columns.values():
            bounds = col.numeric_bounds()
            columns[col.name] = ColumnInfo(
                name=col.name,
                type=col.type,  # type: ignore[arg-type]
                sensitivity=col.sensitivity,  # type: ignore[arg-type]
                lower=bounds[0] if bounds else None,
                upper=bounds[1] if bounds else None,
                public_values=col.public_values,
                max_length=col.text_limit,
            )
        return TableInfo(
            name=self.name,
            privacy_unit=self.privacy_unit,
            columns=columns,
            max_partitions=1 if self.one_row_per_unit else self.max_partitions,
            max_rows_per_partition=1 if self.one_row_per_unit else self.max_rows_per_partition,
            one_row_per_unit=self.one_row_per_unit,
            bounding_seed=bounding_seed,
            version=version,
        )


def load_policy(path: str | Path) -> DatasetPolicy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from exc
    return parse_policy(text, str(path))


@functools.lru_cache(maxsize=512)
def parse_policy(text: str, path: str = "<policy>") -> DatasetPolicy:
    """Parse and check a policy on its own (the data is checked by :func:`check_against`).

    Cached: stored versions are re-read on every query and their policy text never changes.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from exc
    loc = PolicyLocator(text, path)
    ds = doc.get("dataset")
    if not isinstance(ds, dict):
        raise PolicyError(f"{path}: missing the [dataset] table (name, title, owner, tier, privacy_unit)")
    name, tier, one_row, engine, limits = _dataset_table(ds, loc)
    columns = _columns(doc.get("columns"), loc, path)
    unit = ds["privacy_unit"]
    if unit not in columns:
        raise loc.fail(
            f"privacy unit {unit!r} is not a declared column; add [columns.{unit}]",
            "dataset",
            "privacy_unit",
        )
    if columns[unit].sensitivity == "identifier":
        raise loc.fail(
            "the privacy unit must not be an identifier column (it is used for bounding)",
            f"columns.{unit}",
            "sensitivity",
        )
    return DatasetPolicy(
        name=name,
        title=ds["title"],
        title_zh=str(ds.get("title_zh", "")),
        description=str(ds.get("description", "")),
        owner=ds["owner"],
        tier=tier,
        privacy_unit=unit,
        update_frequency=str(ds.get("update_frequency", "irregular")),
        one_row_per_unit=one_row,
        max_partitions=limits["max_partitions"],
        max_rows_per_partition=limits["max_rows_per_partition"],
        columns=columns,
        budget_cap=_parse_budget_cap(ds.get("budget_cap"), loc),
        legal_basis=_parse_legal_basis(ds.get("legal_basis", ""), loc),
        classification=_parse_classification(ds.get("classification"), loc, tier),
        engine=engine,
        source_text=text,
    )


def _dataset_table(ds: dict[str, Any], loc: PolicyLocator) -> tuple[str, str, bool, str, dict[str, int]]:
    """The ``[dataset]`` table's required fields, engine and bounding limits, each checked."""
    for key in ("name", "title", "owner", "tier", "privacy_unit"):
        if not isinstance(ds.get(key), str) or not ds[key].strip():
            raise loc.fail("is required and must be a non-empty string", "dataset", key)
    name = ds["name"]
    if not NAME_RE.match(name):
        raise loc.fail(
            f"{name!r} is not a valid dataset name (lower-case letters, digits and _, "
            "starting with a letter, at most 63 characters)",
            "dataset",
            "name",
        )
    tier = ds["tier"]
    if tier not in TIERS:
        raise loc.fail(f"unknown tier {tier!r}; use one of {', '.join(TIERS)}", "dataset", "tier")
    one_row = ds.get("one_row_per_unit", False)
    if not isinstance(one_row, bool):
        raise loc.fail("must be true or false", "dataset", "one_row_per_unit")
    engine = ds.get("engine", "")
    if engine not in ("", "duckdb", "spark"):
        raise loc.fail(f"unknown engine {engine!r}; use \"duckdb\" or \"spark\"", "dataset", "engine")
    limits = {}
    for key, default in (("max_partitions", 1), ("max_rows_per_partition", 1)):
        value = ds.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
            raise loc.fail("must be an integer between 1 and 1000", "dataset", key)
        limits[key] = value
    return name, tier, one_row, engine, limits


def _columns(raw_columns: Any, loc: PolicyLocator, path: str) -> dict[str, ColumnPolicy]:
    """Every ``[columns.NAME]`` table, in the file's order."""
    if not isinstance(raw_columns, dict) or not raw_columns:
        raise PolicyError(f"{path}: no [columns.NAME] tables; declare every column of the data")
    columns: dict[str, ColumnPolicy] = {}
    for col_name, spec in raw_columns.items():
        section = f"columns.{col_name}"
        if not COLUMN_NAME_RE.match(col_name):
            raise loc.fail("column names must be lower-case letters, digits, _ and Han characters "
                           "(a non-ASCII name is quoted in TOML: [columns.\"区县\"])", section)
        if not isinstance(spec, dict):
            raise loc.fail("must be a table", section)
        columns[col_name] = _parse_column(col_name, spec, loc, section)
    return columns


GRADE_CEILINGS = {"general": "unconditional", "important": "conditional", "core": "not_open"}  # 第六条


def _parse_classification(raw: Any, loc: PolicyLocator, tier: str) -> dict[str, str] | None:
    """``classification = {category = "卫生健康", grade = "important"}``; the grade bounds the tier."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"category", "grade"} or not isinstance(raw.get("category"), str) \
            or not raw["category"].strip() or raw.get("grade") not in GRADE_CEILINGS:
        raise loc.fail("must be {category = \"…\", grade = \"general\" | \"important\" | \"core\"} (第六条 分类分级)",
                       "dataset", "classification")
    order = ("not_open", "conditional", "unconditional")
    if order.index(tier) > order.index(GRADE_CEILINGS[raw["grade"]]):
        raise loc.fail(f"a {raw['grade']} dataset opens at most as {GRADE_CEILINGS[raw['grade']]}, not {tier} "
                       "(第六条 分级)", "dataset", "classification")
    return {"category": raw["category"].strip(), "grade": raw["grade"]}


def _parse_legal_basis(raw: Any, loc: PolicyLocator) -> str:
    """``legal_basis = "…"`` (第二十条): a string of at most 1000 characters."""
    if not isinstance(raw, str) or len(raw) > 1000:
        raise loc.fail("must be a string of at most 1000 characters (the law, authorisation or consent "
                       "reference, 第二十条)", "dataset", "legal_basis")
    return raw.strip()


def _parse_budget_cap(raw: Any, loc: PolicyLocator) -> tuple[float, float] | None:
    """``budget_cap = {epsilon = 20, delta = 1e-5}`` (or the same as a ``[dataset.budget_cap]``
    table): the collusion cap, basic composition over every release on the dataset."""
    if raw is None:
        return None
    # the key's line: the inline form in [dataset], else the [dataset.budget_cap] header
    section, key = ("dataset", "budget_cap") if loc.line("dataset.budget_cap") is None else ("dataset.budget_cap", None)
    if not isinstance(raw, dict):
        raise loc.fail("must be a table {epsilon = ..., delta = ...}", section, key)
    unknown = sorted(set(raw) - {"epsilon", "delta"})
    if unknown:
        raise loc.fail(f"unknown key(s) {', '.join(unknown)}; use epsilon and delta", section, key)
    values = []
    for name, low, high in (("epsilon", 0.0, CAP_EPSILON_MAX), ("delta", 0.0, CAP_DELTA_MAX)):
        value = raw.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise loc.fail(f"{name} is required and must be a number", section, key)
        if (value <= low if name == "epsilon" else value < low) or value > high:
            where = "above 0" if name == "epsilon" else "at least 0"
            raise loc.fail(f"{name} must be {where} and at most {high:g}", section, key)
        values.append(float(value))
    return values[0], values[1]


def _parse_column(name: str, spec: dict[str, Any], loc: PolicyLocator, section: str) -> ColumnPolicy:
    ctype = spec.get("type")
    if ctype not in COLUMN_TYPES:
        raise loc.fail(f"unknown type {ctype!r}; use one of {', '.join(COLUMN_TYPES)}", section, "type")
    sensitivity = spec.get("sensitivity", "sensitive")
    if sensitivity not in SENSITIVITIES:
        raise loc.fail(
            f"unknown sensitivity {sensitivity!r}; use one of {', '.join(SENSITIVITIES)}",
            section,
            "sensitivity",
        )
    return ColumnPolicy(
        name=name,
        type=ctype,
        sensitivity=sensitivity,
        bounds=_parse_bounds(spec, ctype, loc, section) if "bounds" in spec else None,
        public_values=_parse_public_values(spec["public_values"], sensitivity, loc, section)
        if "public_values" in spec else None,
        description=str(spec.get("description", "")),
        max_length=_parse_max_length(spec["max_length"], ctype, loc, section) if "max_length" in spec else None,
        unit=_parse_unit(spec["unit"], loc, section) if "unit" in spec else "",
    )


def _parse_bounds(spec: dict[str, Any], ctype: str, loc: PolicyLocator, section: str) -> tuple[Any, Any]:
    raw = spec["bounds"]
    if ctype not in ("int", "float", "date"):
        raise loc.fail(f"bounds only apply to int, float and date columns, not {ctype}", section, "bounds")
    if not isinstance(raw, list) or len(raw) != 2:
        raise loc.fail("must be a list of two values [lower, upper]", section, "bounds")
    lo, hi = (_coerce_bound(v, ctype, loc, section) for v in raw)
    if not lo < hi:
        raise loc.fail(f"lower bound {raw[0]!r} must be below upper bound {raw[1]!r}", section, "bounds")
    return lo, hi


def _parse_public_values(raw: Any, sensitivity: str, loc: PolicyLocator, section: str) -> tuple[Any, ...]:
    if not isinstance(raw, list) or not raw:
        raise loc.fail("must be a non-empty list", section, "public_values")
    if len(raw) > 10_000:
        raise loc.fail("at most 10,000 public values", section, "public_values")
    if len(set(map(str, raw))) != len(raw):
        raise loc.fail("values must be distinct", section, "public_values")
    if sensitivity == "identifier":
        raise loc.fail("an identifier column cannot have public values", section, "public_values")
    return tuple(raw)


def _parse_max_length(raw: Any, ctype: str, loc: PolicyLocator, section: str) -> int:
    if ctype != "text":
        raise loc.fail(f"max_length only applies to text columns, not {ctype}", section, "max_length")
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= TEXT_MAX_LENGTH_LIMIT:
        raise loc.fail(f"must be a whole number of characters from 1 to {TEXT_MAX_LENGTH_LIMIT:,}",
                       section, "max_length")
    return raw


def _parse_unit(raw: Any, loc: PolicyLocator, section: str) -> str:
    if not isinstance(raw, str):
        raise loc.fail('must be a quoted text such as "元" or "岁"', section, "unit")
    unit = raw.strip()
    if len(unit) > UNIT_MAX_LENGTH:
        raise loc.fail(f"at most {UNIT_MAX_LENGTH} characters, got {len(unit)}", section, "unit")
    if not unit.isprintable():
        raise loc.fail("must be printable text on one line (no tabs, line breaks or control characters)",
                       section, "unit")
    return unit


def _coerce_bound(value: Any, ctype: str, loc: PolicyLocator, section: str) -> Any:
    if ctype == "date":
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise loc.fail(f"{value!r} is not a date (YYYY-MM-DD)", section, "bounds") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise loc.fail(f"{value!r} is not a number", section, "bounds")
    if ctype == "int" and not float(value).is_integer():
        raise loc.fail(f"{value!r} is not an integer", section, "bounds")
    return value


_ARROW_KINDS = {
    "int": pa.types.is_integer,
    "float": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t),
    "text": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t),
    "date": lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t),
    "bool": pa.types.is_boolean,
}


def check_against(policy: DatasetPolicy, schema: pa.Schema) -> None:
    """The policy must describe the data exactly: every column, with a compatible type."""
    loc = PolicyLocator(policy.source_text, policy.name)
    file_columns = {f.name: f.type for f in schema}
    for col in policy.columns.values():
        if col.name not in file_columns:
            raise loc.fail(
                f"column {col.name!r} is not in the data file (it has: {', '.join(file_columns)})",
                f"columns.{col.name}",
            )
        arrow_type = file_columns[col.name]
        if not _ARROW_KINDS[col.type](arrow_type):
            raise loc.fail(
                f"declared {col.type} but the data holds {arrow_type}",
                f"columns.{col.name}",
                "type",
            )
    undeclared = [c for c in file_columns if c not in policy.columns]
    if undeclared:
        raise PolicyError(
            f"{policy.name}: the data has columns the policy does not declare: "
            f"{', '.join(undeclared)}; add a [columns.NAME] table for each"
        )
