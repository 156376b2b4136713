"""HAVING, ORDER BY and LIMIT applied to released (noisy) values only.

PRIVACY: this runs after noise; it sees nothing the researcher will not see, so it is
post-processing and costs no budget (DESIGN.md "Privacy model"). It is also *total*: a
value that is not a finite number becomes NULL, and a HAVING or ORDER BY term that
cannot be evaluated on a row (a failing cast, say) is NULL on that row, each with a
note, so no outcome hinges on whether some noisy value made an expression raise.

The terms run on the guard's one evaluator (:mod:`query_guard.evaluate`, DuckDB's
semantics) row by row: a few dozen released rows do not need a database (issue 19).
"""

from __future__ import annotations

import math
from typing import Any

from sqlglot import exp

from privacy import Release
from query_guard import QueryPlan
from query_guard.evaluate import evaluate, order_key
from query_guard.sql_values import Unsupported

#: What a term raises where DuckDB's ``TRY`` gives NULL (a failing cast, an overflow).
_FAILED = (Unsupported, ArithmeticError, ValueError, TypeError)


def apply(plan: QueryPlan, rel: Release) -> tuple[list[str], list[list[object]], dict[str, list], list[str]]:
    """The visible columns, the kept rows in order, their intervals, and notes."""
    visible = [c for c in rel.columns if c not in rel.hidden]
    released, notes = _finite(rel.columns, rel.rows)
    envs = [dict(zip(rel.columns, row, strict=True)) for row in released]
    order = list(range(len(released)))
    if plan.having is not None:
        keep = [_try(plan.having, env) for env in envs]
        order = [r for r in order if keep[r] is True]
        undecided = sum(k is None for k in keep)
        if undecided:
            notes.append(f"HAVING was NULL or could not be evaluated on {undecided} row(s) of the "
                         "noisy result; those rows are left out")
    for item in reversed(plan.order_by):  # stable sorts, last key first: ties keep release order
        keys = {r: (_try(item.expression, envs[r]) if item.expression is not None
                    else envs[r][item.column]) for r in order}
        known = sorted((r for r in order if keys[r] is not None),
                       key=lambda r: order_key(keys[r]), reverse=item.descending)
        order = known + [r for r in order if keys[r] is None]  # NULLS LAST either way
    if plan.limit is not None:
        order = order[:plan.limit]
    index = [rel.columns.index(c) for c in visible]
    rows = [[released[r][i] for i in index] for r in order]
    intervals = {c: [rel.intervals[c][r] for r in order] for c in visible}
    return visible, rows, intervals, notes


def _try(term: exp.Expr, env: dict[str, Any]) -> Any:
    """``TRY(term)``: NULL on a row where ``term`` raises (a failing cast, say)."""
    try:
        return evaluate(term, env)
    except _FAILED:
        return None


def _finite(columns: list[str], rows: list[list[object]]) -> tuple[list[list[object]], list[str]]:
    """Rows with every non-finite number (an overflowed derived output, say) as NULL."""
    out, bad = [], dict.fromkeys(columns, 0)
    for row in rows:
        clean = []
        for name, v in zip(columns, row, strict=True):
            if isinstance(v, float) and not math.isfinite(v):
                bad[name] += 1
                v = None
            clean.append(v)
        out.append(clean)
    notes = [f"{name}: {n} value(s) were not finite numbers and are shown as NULL"
             for name, n in bad.items() if n]
    return out, notes
