"""What the guard knows about the datasets: names, columns, types, bounds, privacy unit.

The guard is pure: ``sandbox`` builds a :class:`Catalog` from its store and the dataset
policies and hands it in. Nothing here reads private data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ColumnType = Literal["int", "float", "text", "date", "bool"]
Sensitivity = Literal["identifier", "quasi_identifier", "sensitive", "public"]


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
