"""Checks applied to each name as it is resolved: datasets, columns, the privacy unit.

Shared helpers: :class:`query_guard.resolver.Resolver` applies them to every table,
column and expression it resolves, and the aggregate split to every key and aggregate
argument, so that a refusal points at the first offending name as written. The
reasons are the rules' (``rules/dataset_scope.py``, ``rules/column_scope.py``,
``rules/privacy_unit.py``), whose steps re-check the finished relation.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.catalog import ColumnInfo, TableInfo
from query_guard.context import Context
from query_guard.errors import IdentifierColumnError, PrivacyUnitError, ScopeError
from query_guard.relation import BaseTable, column_info, is_unit

SYSTEM_PREFIXES = ("duckdb_", "pg_", "sqlite_", "information_schema", "sys", "temp")
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "system", "temp", "main", "memory"})


def check_dataset(table: exp.Table, ctx: Context) -> TableInfo:
    """The policy of ``table``, or a refusal when it is not a dataset of the scenario."""
    parts = [str(p.name) for p in table.parts]
    full = ".".join(parts).lower()
    info = ctx.catalog.table(full)
    if info is None or not ctx.scenario.allows_dataset(full):
        schemas, name = parts[:-1], parts[-1].lower()
        system = any(p.lower() in SYSTEM_SCHEMAS for p in schemas) or name.startswith(
            SYSTEM_PREFIXES
        )
        reason = (
            "system catalogs are outside the approved scenario (第十五条)"
            if system
            else "not a dataset of the approved scenario (第十五条、第二十六条)"
        )
        ctx.refuse(ScopeError, f"table {full}: {reason}", table)
    return info


def check_column(base: BaseTable, name: str, node: exp.Expr, ctx: Context) -> ColumnInfo:
    """The policy of column ``name`` of ``base``, or a refusal when it is out of scope."""
    dataset = base.info.name.lower()
    info = column_info(base, name)
    if info is None:
        ctx.refuse(
            ScopeError,
            f"column {name}: not a column of dataset {dataset} in the approved scenario (第十五条)",
            node,
        )
    if info.is_identifier:
        ctx.refuse(
            IdentifierColumnError,
            f"identifier column {dataset}.{info.name}: identifier columns cannot be used"
            " anywhere in a query",
            node,
        )
    if name.lower() != base.unit and not ctx.scenario.allows_column(dataset, info.name):
        ctx.refuse(
            ScopeError,
            f"column {dataset}.{info.name}: not among the columns approved for this scenario"
            " (第十五条)",
            node,
        )
    return info


def refuse_unit_exposure(expr: exp.Expr, bases: list[BaseTable], ctx: Context, where: str) -> None:
    """Refuse ``expr`` if it exposes the privacy unit (``where`` names the clause)."""
    for node in expr.find_all(exp.Column):
        if is_unit(node, bases):
            ctx.refuse(
                PrivacyUnitError,
                f"privacy unit {node.name} in {where}: the unit may only be used as"
                " COUNT(DISTINCT unit) or as the join key",
                node,
            )
