"""Rule: every row-level expression is well typed, and numeric values have known bounds.

Why typing: DuckDB converts between types *at run time* in places (``text_col IN (1, 2)``,
``CASE WHEN text_col THEN …``, ``text_col = date_col``) and a conversion failure on one
row is an error whose occurrence depends on the data — a leak. Requiring compatible types
here makes those errors impossible by construction.

Why bounds: the sensitivity of a sum is the width of the summed value's range. Bounds of
derived expressions are computed by interval arithmetic from the owner's column bounds
(tightened by the scenario); where they cannot be (a division by a float that may be 0,
an unbounded column), the aggregate is refused as ``unbounded``.
"""

from __future__ import annotations

from query_guard.draft import Draft
from query_guard.post_types import check_post
from query_guard.typer import Typer


def type_bounds(draft: Draft) -> None:
    """Type the filters and group keys (``draft.typer``, ``draft.key_types``), then the
    post-processing over released values (:func:`query_guard.post_types.check_post`).
    Aggregate arguments are typed and bounded where they are clamped
    (``rules/clamp_values.py``)."""
    ctx, rel, shape = draft.ctx, draft.need("relation"), draft.need("shape")
    typer = draft.typer = Typer(rel.bases, ctx)
    for condition in rel.filters:
        typer.predicate(condition, "WHERE")
    for condition in rel.join.right_filters if rel.join is not None else ():
        typer.predicate(condition, "WHERE")
    for key in shape.keys:
        draft.key_types[key.column] = typer.infer(key.expr).type
    released = {
        out.name: _released_kind(draft.key_types[out.ref])
        for out in shape.outputs
        if out.source == "group" and out.ref in draft.key_types
    }
    for out in shape.outputs:
        if out.expression is not None:
            check_post(out.expression, released, ctx)
    for item in shape.order_by:
        if item.expression is not None:
            check_post(item.expression, released, ctx)
    if shape.having is not None:
        check_post(shape.having, released, ctx)


def _released_kind(kind: str) -> str:
    """A group key's values as post-processing sees them (dates are released as text)."""
    if kind in ("int", "float"):
        return "numeric"
    return "text" if kind in ("text", "date") else kind
