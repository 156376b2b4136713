"""Rule: every column is in the scenario, and no identifier column is used anywhere.

Why: the approval lists the "information items" (第十四条) a researcher may use for the
approved purpose (第十五条); any other column is out of scope. Identifier columns (name,
ID number, phone) are refused wherever they appear — select list, WHERE, GROUP BY, join,
inside functions such as ``length(name)`` or ``name LIKE 'A%'`` — because even an
aggregate over them can single a person out.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.draft import Draft
from query_guard.errors import IdentifierColumnError, ScopeError
from query_guard.relation import base_column


def column_scope(draft: Draft) -> None:
    """Every column the engine query reads is in scope and no identifier.

    Each column was checked where it was written, as the resolver met it
    (:func:`query_guard.name_checks.check_column`, which points at the first out of
    scope); this re-checks the flattened filters, keys and aggregate arguments, so that a
    path around that check fails closed."""
    ctx, rel, shape = draft.ctx, draft.need("relation"), draft.need("shape")
    exprs = [*rel.filters, *(k.expr for k in shape.keys), *(a.arg for a in shape.aggs if a.arg is not None)]
    for expr in exprs:
        for col in expr.find_all(exp.Column):
            found = base_column(col, rel.bases)
            if found is None:
                continue
            base, info = found
            if info.is_identifier:
                ctx.refuse(IdentifierColumnError, f"identifier column {info.name}", col)
            if info.name.lower() != base.unit and not ctx.scenario.allows_column(base.info.name, info.name):
                ctx.refuse(ScopeError, f"column {base.info.name}.{info.name}: not approved", col)
