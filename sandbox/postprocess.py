"""HAVING, ORDER BY and LIMIT applied to released (noisy) values only.

PRIVACY: this runs after noise; it sees nothing the researcher will not see, so it is
post-processing and costs no budget (DESIGN.md "Privacy model").
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from privacy import Release
from query_guard import QueryPlan
from sandbox.engine import Engine

ROW = "__row"


def apply(plan: QueryPlan, rel: Release, engine: Engine) -> tuple[list[str], list[list[object]], dict[str, list]]:
    """The visible columns, the kept rows in order, and their intervals."""
    visible = [c for c in rel.columns if c not in rel.hidden]
    order = list(range(len(rel.rows)))
    if plan.having is not None or plan.order_by or plan.limit is not None:
        data = {name: [row[i] for row in rel.rows] for i, name in enumerate(rel.columns)}
        data[ROW] = order
        table = pa.table({k: pa.array(v) for k, v in data.items()})
        query = exp.select(exp.column(ROW)).from_("released")
        if plan.having is not None:
            query = query.where(_quote(plan.having.copy()))
        for item in plan.order_by:
            key = (_quote(item.expression.copy()) if getattr(item, "expression", None) is not None
                   else exp.column(item.column, quoted=True))
            query = query.order_by(exp.Ordered(this=key, desc=item.descending))
        if plan.limit is not None:
            query = query.limit(plan.limit)
        result = engine.execute(query.sql(dialect="duckdb"), {"released": table})
        order = result.column(ROW).to_pylist()
    index = [rel.columns.index(c) for c in visible]
    rows = [[rel.rows[r][i] for i in index] for r in order]
    intervals = {c: [rel.intervals[c][r] for r in order] for c in visible}
    return visible, rows, intervals


def _quote(node: exp.Expression) -> exp.Expression:
    for col in node.find_all(exp.Column):
        col.set("this", exp.to_identifier(col.name, quoted=True))
        col.set("table", None)
    return node
