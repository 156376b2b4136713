"""Rule: each aggregate maps to one measurement kind the scenario allows.

Why: the privacy layer knows how to release exactly these kinds (``plan.STATS_FOR_KIND``)
with a known sensitivity. ``COUNT(DISTINCT …)`` is allowed only of the privacy unit
(each person adds at most one to each group); DISTINCT inside other aggregates, and
quantile fractions that are not constants in [0, 1], have no bounded sensitivity here.
"""

from __future__ import annotations

from query_guard.draft import Draft
from query_guard.errors import NotAllowedError, ScopeError
from query_guard.measures import KIND_OF
from query_guard.relation import is_unit


def measure_kinds(draft: Draft) -> None:
    """Every measurement is of a kind the release knows and the scenario allows.

    Each aggregate was checked where it was written, as the aggregate split met it
    (:func:`query_guard.measures.make_call`, which points at the first refused); this
    re-checks the finished calls, so that a path around that check fails closed."""
    ctx, rel = draft.ctx, draft.need("relation")
    kinds = {*KIND_OF.values(), "count_distinct"}
    for call in draft.need("shape").aggs:
        if call.kind not in kinds or not ctx.scenario.allows_aggregate(call.kind):
            ctx.refuse(ScopeError, f"aggregate {call.kind}: not approved", call.node)
        if call.kind == "count_distinct" and not (call.arg is not None and is_unit(call.arg, rel.bases)):
            ctx.refuse(NotAllowedError, "COUNT(DISTINCT …) is allowed only of the privacy unit", call.node)
