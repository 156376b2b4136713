"""Rule: the privacy unit appears only in COUNT(DISTINCT unit) and the join condition.

Why: the unit (e.g. ``person_id``) identifies a person. Filtering on it
(``WHERE person_id = 42``), grouping by it, or computing on it would let a query
isolate one person's rows; the bounding pass, not the researcher, decides how units
are used. Passing it through a CTE unchanged is allowed so that the outer query can
count distinct persons or join.
"""

from __future__ import annotations

from query_guard.draft import Draft
from query_guard.name_checks import refuse_unit_exposure


def privacy_unit(draft: Draft) -> None:
    """No filter, group key or aggregate argument (but COUNT(DISTINCT unit)'s) holds the unit.

    Each was checked where it was written, as it was resolved
    (:func:`query_guard.name_checks.refuse_unit_exposure`, which points at the first);
    this re-checks the finished relation and split, so that a path around those checks
    fails closed."""
    ctx, rel, shape = draft.ctx, draft.need("relation"), draft.need("shape")
    for condition in rel.filters:
        refuse_unit_exposure(condition, rel.bases, ctx, "WHERE")
    for key in shape.keys:
        refuse_unit_exposure(key.expr, rel.bases, ctx, "GROUP BY")
    for call in shape.aggs:
        if call.arg is not None and call.kind != "count_distinct":
            refuse_unit_exposure(call.arg, rel.bases, ctx, f"{call.node.key.upper()}(…)")
