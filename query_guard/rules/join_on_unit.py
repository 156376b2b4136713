"""Rule: at most one join, of two different datasets, ON their shared privacy unit.

Why: joining two datasets on the person (e.g. clinic visit costs by the resident's
district) is what researchers most need and what SmartNoise SQL cannot do. It stays
safe because the joined rows of one person are still one person's rows: the bounding
pass (``rules/bound_contributions.py``) limits them by the many-rows side's L0/L∞. Any
other join — cross, comma, on other columns, more than two datasets, a self-join, two
many-rows datasets whose rows would multiply — is refused.
"""

from __future__ import annotations

from query_guard.draft import Draft
from query_guard.errors import NotAllowedError


def join_on_unit(draft: Draft) -> None:
    """A join is of two different datasets, not both with several rows per person.

    The join was checked where it was written, as the resolver met it
    (:func:`query_guard.joins.check_join`, which also checks the ON condition); this
    re-checks the finished relation, so that a path around that check fails closed."""
    rel = draft.need("relation")
    if rel.join is None:
        return
    bases = rel.bases
    if (len(bases) != 2 or bases[0].info.name.lower() == bases[1].info.name.lower()
            or rel.join.side not in ("", "LEFT")
            or not (bases[0].info.one_row_per_unit or bases[1].info.one_row_per_unit)):
        draft.ctx.refuse(NotAllowedError, "join: only two datasets ON their privacy unit",
                         code="join_not_allowed")
