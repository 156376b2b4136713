"""SQL text + approved scenario → a checked, rewritten query plan, or a precise refusal."""

from query_guard.catalog import Catalog, ColumnInfo, TableInfo
from query_guard.errors import GuardError
from query_guard.plan import GroupKey, Measurement, OrderItem, OutputColumn, QueryPlan
from query_guard.scenario import Scenario

__all__ = [
    "Catalog",
    "ColumnInfo",
    "GroupKey",
    "GuardError",
    "Measurement",
    "OrderItem",
    "OutputColumn",
    "QueryPlan",
    "Scenario",
    "TableInfo",
]
