"""SQL text + approved scenario → a checked, rewritten query plan, or a precise refusal."""

from query_guard.catalog import Catalog, ColumnInfo, TableInfo
from query_guard.errors import (
    ERROR_CODES,
    BoundsError,
    GuardError,
    IdentifierColumnError,
    ImplicitCastError,
    LimitError,
    NotAllowedError,
    PrivacyUnitError,
    ResultLimitError,
    RowLevelOutputError,
    ScopeError,
    SqlSyntaxError,
    TypeMismatchError,
)
from query_guard.evaluate import evaluate
from query_guard.plan import (
    STATS_FOR_KIND,
    GroupKey,
    Measurement,
    OrderItem,
    OutputColumn,
    QueryPlan,
)
from query_guard.planner import plan
from query_guard.scenario import Scenario

__all__ = [
    "ERROR_CODES",
    "STATS_FOR_KIND",
    "BoundsError",
    "Catalog",
    "ColumnInfo",
    "GroupKey",
    "GuardError",
    "IdentifierColumnError",
    "ImplicitCastError",
    "LimitError",
    "Measurement",
    "NotAllowedError",
    "OrderItem",
    "OutputColumn",
    "PrivacyUnitError",
    "QueryPlan",
    "ResultLimitError",
    "RowLevelOutputError",
    "Scenario",
    "ScopeError",
    "SqlSyntaxError",
    "TableInfo",
    "TypeMismatchError",
    "evaluate",
    "plan",
]
