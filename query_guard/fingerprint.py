"""The plan's canonical fingerprint, the key of the release cache.

Two queries that differ only in formatting, keyword case, comments, table aliases or
output aliases rewrite to the same engine query and the same measurements, so they get
the same fingerprint: the cache returns the earlier release instead of spending budget
again (DESIGN.md "Accounting"). The bounding seed is replaced by a placeholder so the
fingerprint — which may be shown or logged — is no oracle for the secret seed; the
service keys the cache by dataset version as well.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlglot import exp

from query_guard.plan import GroupKey, Measurement, OrderItem, OutputColumn

FINGERPRINT_VERSION = "query_guard/2"  # 2: the histogram layout is part of a measurement


def fingerprint(
    engine_query: exp.Expr,
    seeds: Sequence[str],
    datasets: Sequence[str],
    group_keys: Sequence[GroupKey],
    measurements: Sequence[Measurement],
    outputs: Sequence[OutputColumn],
    having: exp.Expr | None,
    order_by: Sequence[OrderItem],
    limit: int | None,
) -> str:
    engine_sql = engine_query.sql(dialect="duckdb")
    for seed in seeds:
        if seed:
            engine_sql = engine_sql.replace(exp.Literal.string(seed).sql("duckdb"), "'<seed>'")
    positions = {out.name: f"#{i}" for i, out in enumerate(outputs)}
    canonical = {
        "v": FINGERPRINT_VERSION,
        "engine": engine_sql,
        "datasets": list(datasets),
        "keys": [[k.column, _domain(k.public_domain)] for k in group_keys],
        "measurements": [
            [
                m.id,
                m.kind,
                sorted(m.stats.items()),
                m.max_partitions,
                m.max_rows_per_partition,
                m.lower,
                m.upper,
                m.fixed_point,
                m.value_type,
                list(m.quantiles),
                m.bins,
                m.bin_layout,
                m.ddof,
            ]
            for m in measurements
        ],
        "outputs": [
            [o.source, o.ref, o.index, _expr(o.expression, positions), o.hidden] for o in outputs
        ],
        "having": _expr(having, positions),
        "order": [
            [
                positions.get(o.column, o.column)
                if o.expression is None
                else _expr(o.expression, positions),
                o.descending,
            ]
            for o in order_by
        ],
        "limit": limit,
    }
    text = json.dumps(canonical, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _domain(domain: tuple | None) -> list | None:
    return None if domain is None else [repr(v) for v in domain]


def _expr(expression: exp.Expr | None, positions: dict[str, str]) -> str | None:
    """SQL of a post-processing expression with output names replaced by positions."""
    if expression is None:
        return None
    copy = expression.copy()
    for col in list(copy.find_all(exp.Column)):
        if col.name in positions:
            col.replace(exp.column(positions[col.name], quoted=True))
    return copy.sql(dialect="duckdb")
