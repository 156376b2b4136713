"""HAVING, ORDER BY and LIMIT applied to released (noisy) values only.

PRIVACY: this runs after noise; it sees nothing the researcher will not see, so it is
post-processing and costs no budget (DESIGN.md "Privacy model"). It is also *total*: a
value that is not a finite number becomes NULL, and a HAVING or ORDER BY term that
cannot be evaluated on a row (a failing cast, say) is NULL on that row, each with a
note, so no outcome hinges on whether some noisy value made an expression raise.
"""

from __future__ import annotations

import math

import pyarrow as pa
from sqlglot import exp

from privacy import Release
from query_guard import QueryPlan
from sandbox.engine.embedded import Engine

ROW = "__row"
KEEP = "__keep"


def apply(plan: QueryPlan, rel: Release, engine: Engine
          ) -> tuple[list[str], list[list[object]], dict[str, list], list[str]]:
    """The visible columns, the kept rows in order, their intervals, and notes."""
    visible = [c for c in rel.columns if c not in rel.hidden]
    released, notes = _finite(rel.columns, rel.rows)
    order = list(range(len(released)))
    if plan.having is not None or plan.order_by or plan.limit is not None:
        data = {name: [row[i] for row in released] for i, name in enumerate(rel.columns)}
        data[ROW] = order
        table = pa.table({k: pa.array(v) for k, v in data.items()})
        keep = _try(plan.having) if plan.having is not None else exp.true()
        query = exp.select(exp.column(ROW), exp.alias_(keep, KEEP)).from_("released")
        for item in plan.order_by:
            key = (_try(item.expression) if getattr(item, "expression", None) is not None
                   else exp.column(item.column, quoted=True))
            query = query.order_by(exp.Ordered(this=key, desc=item.descending, nulls_first=False))
        query = query.order_by(exp.column(ROW), append=True)  # ties keep the release's order
        result = engine.execute(query.sql(dialect="duckdb"), {"released": table}).to_pydict()
        undecided = sum(k is None for k in result[KEEP])
        order = [r for r, k in zip(result[ROW], result[KEEP], strict=True) if k is True]
        if plan.limit is not None:
            order = order[:plan.limit]
        if undecided:
            notes.append(f"HAVING was NULL or could not be evaluated on {undecided} row(s) of the "
                         "noisy result; those rows are left out")
    index = [rel.columns.index(c) for c in visible]
    rows = [[released[r][i] for i in index] for r in order]
    intervals = {c: [rel.intervals[c][r] for r in order] for c in visible}
    return visible, rows, intervals, notes


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


def _try(node: exp.Expression) -> exp.Expression:
    """``TRY(expr)``: NULL on a row where ``expr`` raises (a failing cast, say)."""
    return exp.func("TRY", _quote(node.copy()))


def _quote(node: exp.Expression) -> exp.Expression:
    for col in node.find_all(exp.Column):
        col.set("this", exp.to_identifier(col.name, quoted=True))
        col.set("table", None)
    return node
