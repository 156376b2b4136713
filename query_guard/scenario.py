"""The approved scenario (应用场景, 第十五条): what an approval lets a researcher do.

The approval holds it; the guard checks every query against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

AGGREGATE_KINDS = frozenset(
    {"count", "count_distinct", "sum", "mean", "variance", "stddev", "quantile"}
)


@dataclass(frozen=True)
class Scenario:
    """Scope of one approval.

    ``columns[dataset]`` lists the usable columns of each allowed dataset; a dataset
    missing from ``columns`` allows all its non-identifier columns. ``aggregates`` empty
    means every kind in :data:`AGGREGATE_KINDS`. ``group_by[dataset]`` missing means any
    allowed column may be a group key. ``bounds[(dataset, column)]`` tightens the
    policy's bounds.
    """

    datasets: frozenset[str]
    columns: Mapping[str, frozenset[str]] = field(default_factory=dict)
    aggregates: frozenset[str] = frozenset()
    group_by: Mapping[str, frozenset[str]] = field(default_factory=dict)
    bounds: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def allows_dataset(self, name: str) -> bool:
        return name.lower() in self.datasets

    def allows_column(self, dataset: str, column: str) -> bool:
        allowed = self.columns.get(dataset.lower())
        return allowed is None or column.lower() in allowed

    def allows_aggregate(self, kind: str) -> bool:
        return not self.aggregates or kind in self.aggregates

    def allows_group_by(self, dataset: str, column: str) -> bool:
        allowed = self.group_by.get(dataset.lower())
        return allowed is None or column.lower() in allowed
