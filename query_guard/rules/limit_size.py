"""Rule: the query stays inside size and depth limits.

Why: the parser, the rewriter and the engine all recurse over the query; a query built
to be huge or deep (``((((…))))``, ``NOT NOT NOT …``, a 10k-term sum, CTE chains that
double in size when inlined) could exhaust the stack or memory of the service. Limits are
checked on the tokens *before* parsing, and on the tree without recursion, so that no
RecursionError can ever escape the guard.
"""

from __future__ import annotations

from query_guard.draft import Draft
from query_guard.limits import MAX_RESULT_ROWS, limit_tree

__all__ = ["MAX_RESULT_ROWS", "limit_size"]


def limit_size(draft: Draft) -> None:
    """The parsed tree's size and depth (the text and tokens were checked before parsing,
    by :mod:`query_guard.parse`; inlined expressions are checked as they are inlined)."""
    limit_tree(draft.need("select"), draft.ctx)
