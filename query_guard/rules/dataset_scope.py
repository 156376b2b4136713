"""Rule: every table is a dataset of the approved scenario.

Why: 第十五条 and 第二十六条 limit use of conditionally open data to the approved
scenario; a table outside it — another dataset, a system catalog (information_schema,
duckdb_*, pg_catalog, sqlite_master), a schema-qualified name — is out of scope. The
message is the same whether or not such a dataset exists, so refusals do not reveal
the catalog. Out-of-scope refusals are counted per researcher by the service.
"""

from __future__ import annotations

from query_guard.draft import Draft
from query_guard.errors import ScopeError


def dataset_scope(draft: Draft) -> None:
    """Every dataset of the relation is a catalog dataset the scenario allows.

    Each table was checked where it was written, as the resolver met it
    (:func:`query_guard.name_checks.check_dataset`, which points at the first out of
    scope); this re-checks the finished relation, so that a path around that check fails
    closed."""
    ctx = draft.ctx
    for base in draft.need("relation").bases:
        if not any(info is base.info and ctx.scenario.allows_dataset(name)
                   for name, info in ctx.catalog.tables.items()):
            ctx.refuse(ScopeError, f"table {base.info.name}: not a dataset of the approved scenario")
