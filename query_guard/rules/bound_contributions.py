"""Rule: each person's contribution is bounded before aggregation (L0 and L∞).

Why (DESIGN.md "Privacy model"; PipelineDP, Tumult): a dataset with several rows per
person lets one person move a count by their number of rows. The rewritten query keeps
at most ``max_rows_per_partition`` rows per (person, group) and at most
``max_partitions`` groups per person, chosen by a hash of the stable row index and the
dataset version's secret seed — random with respect to the data, unbiased, and stable so
that repeating a query cannot average the choice away. Ties on the hash are broken by
the row index / key values, so the choice is a deterministic function of the data.
Tables declared (and verified at registration) one-row-per-person skip the pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from query_guard.relation import BaseTable, Relation


@dataclass(frozen=True)
class Bounding:
    """How the engine query bounds contributions, and the resulting L0/L∞."""

    needed: bool
    unit: exp.Column
    rowid: exp.Column | None
    seed: str
    max_partitions: int  # L0
    max_rows_per_partition: int  # L∞
    dataset: str


def bound_contributions(rel: Relation, has_keys: bool) -> Bounding:
    many = [b for b in rel.bases if not b.info.one_row_per_unit]
    first = rel.bases[0]
    if not many:
        return Bounding(False, _unit(first), None, first.info.bounding_seed, 1, 1, first.info.name)
    bounded = many[0]
    # LEFT JOIN keeps left rows without a match: their right-side unit is NULL.
    unit_side = first if rel.join is not None and rel.join.side == "LEFT" else bounded
    l0 = max(1, int(bounded.info.max_partitions)) if has_keys else 1
    linf = max(1, int(bounded.info.max_rows_per_partition))
    return Bounding(
        True,
        _unit(unit_side),
        exp.column("__rowid", table=bounded.alias),
        bounded.info.bounding_seed,
        l0,
        linf,
        bounded.info.name,
    )


def _unit(base: BaseTable) -> exp.Column:
    return exp.column(base.unit, table=base.alias)
