"""Rule: no identifier starts with ``__``.

Why: the engine registers each dataset with an extra ``__rowid`` column, and the
rewritten query names its own columns ``__unit``, ``__g0``, ``__m0_sum``…. A researcher
who could name them could read row order or bypass the bounding pass, so the whole
``__`` namespace is reserved for the guard.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.draft import Draft
from query_guard.errors import NotAllowedError

RESERVED_PREFIX = "__"


def reserved_names(draft: Draft) -> None:
    tree, ctx = draft.need("select"), draft.ctx
    for node in tree.find_all(exp.Identifier):
        name = str(node.this)
        if name.startswith(RESERVED_PREFIX):
            ctx.refuse(
                NotAllowedError,
                f"name {name!r}: names starting with '__' are reserved for the sandbox",
                node,
                code="reserved_name",
            )
