"""The row source of a query after CTEs and subqueries are inlined ("flattened").

Every expression the later rules see is written over *base columns* only:
``Column(name, table=<base alias>)`` where the base alias (``t0``, ``t1``) names one
dataset in :attr:`Relation.bases`. This is what makes the checks sound: scope, identifier
and privacy-unit rules are decided on the real dataset columns, however many CTE layers
renamed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from query_guard.catalog import ColumnInfo, TableInfo


@dataclass(frozen=True)
class BaseTable:
    """One dataset read by the query, under a guard-chosen alias."""

    alias: str
    info: TableInfo

    @property
    def unit(self) -> str:
        return self.info.privacy_unit.lower()


@dataclass(frozen=True)
class JoinSpec:
    """The one allowed join: ``left.unit = right.unit`` (inner or left outer)."""

    side: str  # "" (inner) or "LEFT"
    right_filters: tuple[exp.Expr, ...] = ()  # LEFT JOIN: filters of the right side


@dataclass
class Relation:
    """Flattened FROM + WHERE: datasets, the join between them, row filters."""

    bases: list[BaseTable]
    join: JoinSpec | None = None
    filters: list[exp.Expr] = field(default_factory=list)
    sources: dict[str, Source] = field(default_factory=dict)
    # derived-table output names given twice (referencing them is refused)
    ambiguous: dict[str, set[str]] = field(default_factory=dict)

    def base(self, alias: str) -> BaseTable | None:
        for base in self.bases:
            if base.alias == alias:
                return base
        return None


def column_info(base: BaseTable, name: str) -> ColumnInfo | None:
    """The policy of one dataset column; the unit is known even if not listed."""
    info = base.info.column(name)
    if info is None and name.lower() == base.unit:
        return ColumnInfo(name=base.unit, type="int", sensitivity="sensitive")
    return info


@dataclass
class Source:
    """A name visible in one FROM clause: a dataset, or a derived table (CTE/subquery)."""

    name: str
    base: BaseTable | None = None
    columns: dict[str, exp.Expr] | None = None

    def has_column(self, name: str) -> bool:
        if self.base is not None:
            return column_info(self.base, name) is not None
        return self.columns is not None and name in self.columns


def base_column(node: exp.Expr, bases: list[BaseTable]) -> tuple[BaseTable, ColumnInfo] | None:
    """The dataset column a flattened ``Column`` node stands for, or None."""
    if not isinstance(node, exp.Column):
        return None
    for base in bases:
        if base.alias == node.table:
            info = column_info(base, node.name)
            if info is not None:
                return base, info
    return None


def is_unit(node: exp.Expr, bases: list[BaseTable]) -> bool:
    found = base_column(node, bases)
    return found is not None and found[1].name.lower() == found[0].unit
