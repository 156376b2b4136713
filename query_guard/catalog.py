"""What the guard knows about the datasets: names, columns, types, bounds, privacy unit.

The guard is pure: ``sandbox`` builds a :class:`Catalog` from its store and the dataset
policies and hands it in. Nothing here reads private data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["int", "float", "text", "date", "bool"]
Sensitivity = Literal["identifier", "quasi_identifier", "sensitive", "public"]


#: The longest text value a column holds unless its policy declares ``max_length``
#: (``sandbox.governance.policy`` enforces it at registration). The guard bounds the text a row
#: expression can build from it, and so one row's share of a query's time (issue 12).
DEFAULT_TEXT_MAX_LENGTH = 1000


@dataclass(frozen=True)
class ColumnInfo:
    """One column ("information item", 第十四条) and its owner-declared policy."""

    name: str
    type: ColumnType
    sensitivity: Sensitivity = "sensitive"
    lower: float | None = None
    upper: float | None = None
    # Owner-declared public domain: every key is released, empty groups included.
    public_values: tuple[str | int | float | bool, ...] | None = None
    nullable: bool = True
    max_length: int | None = None  # text: the longest value (None: DEFAULT_TEXT_MAX_LENGTH)

    @property
    def is_identifier(self) -> bool:
        return self.sensitivity == "identifier"


@dataclass(frozen=True)
class TableInfo:
    """A dataset version as the guard sees it. ``name`` is how SQL addresses it."""

    name: str
    privacy_unit: str
    columns: Mapping[str, ColumnInfo]
    # L0: groups one person may touch; L∞: rows one person may add to one group.
    max_partitions: int = 1
    max_rows_per_partition: int = 1
    # Declared and verified at registration: no bounding pass is needed.
    one_row_per_unit: bool = True
    # Secret per dataset version: makes the random choice of kept rows stable.
    bounding_seed: str = ""
    version: str = ""

    def column(self, name: str) -> ColumnInfo | None:
        return self.columns.get(name.lower())


@dataclass(frozen=True)
class Catalog:
    tables: Mapping[str, TableInfo] = field(default_factory=dict)

    def table(self, name: str) -> TableInfo | None:
        return self.tables.get(name.lower())


def table_from_policy(
    policy: Mapping[str, object], *, bounding_seed: str = "", version: str = ""
) -> TableInfo:
    """A :class:`TableInfo` from a parsed dataset policy (the TOML of DESIGN.md).

    Pure: the caller reads the file (``tomllib.load``). Date bounds given as ISO strings
    become days since 1970-01-01, the unit :class:`ColumnInfo` uses for dates.
    """
    dataset = policy.get("dataset", {})
    assert isinstance(dataset, Mapping)
    columns: dict[str, ColumnInfo] = {}
    raw_columns = policy.get("columns", {})
    assert isinstance(raw_columns, Mapping)
    for name, spec in raw_columns.items():
        assert isinstance(spec, Mapping)
        bounds = spec.get("bounds")
        lower = upper = None
        if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
            lower, upper = (_bound_value(b, dt) for b in bounds)
        public = spec.get("public_values")
        columns[str(name).lower()] = ColumnInfo(
            name=str(name).lower(),
            type=spec.get("type", "text"),  # type: ignore[arg-type]
            sensitivity=spec.get("sensitivity", "sensitive"),  # type: ignore[arg-type]
            lower=lower,
            upper=upper,
            public_values=tuple(public) if isinstance(public, (list, tuple)) else None,
            nullable=bool(spec.get("nullable", True)),
        )
    return TableInfo(
        name=str(dataset.get("name", "")).lower(),
        privacy_unit=str(dataset.get("privacy_unit", "")).lower(),
        columns=columns,
        max_partitions=int(dataset.get("max_partitions", 1)),  # type: ignore[call-overload]
        max_rows_per_partition=int(dataset.get("max_rows_per_partition", 1)),  # type: ignore[call-overload]
        one_row_per_unit=bool(dataset.get("one_row_per_unit", True)),
        bounding_seed=bounding_seed,
        version=version,
    )


def _bound_value(value: object, dt: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return float((value - dt.date(1970, 1, 1)).days)
    if isinstance(value, str):
        return float((dt.date.fromisoformat(value) - dt.date(1970, 1, 1)).days)
    return float(value)  # type: ignore[arg-type]
