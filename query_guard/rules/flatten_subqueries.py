"""Rule: CTEs and subqueries only filter rows and derive row-level columns; inline them.

Why: a derived table that aggregates, groups, sorts, limits or de-duplicates would
change how many rows one person contributes before the bounding pass sees them (a
``LIMIT`` in a subquery, for example, turns "remove a person" into "replace a
person"), so only filtering and row-level derivation are allowed. Inlining them into
expressions over base columns lets every later rule reason about real dataset columns.
Inlining can blow up (a CTE chain that uses each column twice doubles at each level),
so a node budget refuses such shapes as ``too_complex``.
"""

from __future__ import annotations

from query_guard.draft import Draft
from query_guard.resolver import Resolver


def flatten_subqueries(draft: Draft) -> None:
    """``draft.relation``: FROM + WHERE over base columns, every name checked as it is
    resolved (datasets, columns, the join, the privacy unit: :mod:`query_guard.name_checks`)."""
    draft.resolver = Resolver(draft.ctx)
    draft.relation = draft.resolver.relation(draft.need("select"), {})
