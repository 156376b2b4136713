"""Rule: every table is a dataset of the approved scenario.

Why: 第十五条 and 第二十六条 limit use of conditionally open data to the approved
scenario; a table outside it — another dataset, a system catalog (information_schema,
duckdb_*, pg_catalog, sqlite_master), a schema-qualified name — is out of scope. The
message is the same whether or not such a dataset exists, so refusals do not reveal
the catalog. Out-of-scope refusals are counted per researcher by the service.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.catalog import TableInfo
from query_guard.context import Context
from query_guard.errors import ScopeError

SYSTEM_PREFIXES = ("duckdb_", "pg_", "sqlite_", "information_schema", "sys", "temp")
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "system", "temp", "main", "memory"})


def dataset_scope(table: exp.Table, ctx: Context) -> TableInfo:
    parts = [str(p.name) for p in table.parts]
    full = ".".join(parts).lower()
    if any(p.lower() in SYSTEM_SCHEMAS for p in parts[:-1]) or parts[-1].lower().startswith(
        SYSTEM_PREFIXES
    ):
        info = ctx.catalog.table(full)
        if info is None or not ctx.scenario.allows_dataset(full):
            ctx.refuse(
                ScopeError,
                f"table {full}: system catalogs are outside the approved scenario (第十五条)",
                table,
            )
    info = ctx.catalog.table(full)
    if info is None or not ctx.scenario.allows_dataset(full):
        ctx.refuse(
            ScopeError,
            f"table {full}: not a dataset of the approved scenario (第十五条、第二十六条)",
            table,
        )
    return info
