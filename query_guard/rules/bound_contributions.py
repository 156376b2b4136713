"""Rule: each person's contribution is bounded before aggregation (L0 and L∞).

Why (DESIGN.md "Privacy model"; PipelineDP, Tumult): a dataset with several rows per
person lets one person move a count by their number of rows. The rewritten query keeps
at most ``max_rows_per_partition`` rows per (person, group) and at most
``max_partitions`` groups per person, chosen by a hash of the stable row index and the
dataset version's secret seed — random with respect to the data, unbiased, and stable so
that repeating a query cannot average the choice away. Rows are ranked by a seeded hash
of their content (ties, i.e. identical rows, by the row index), so the choice is a
function of the person's own rows only. The bounding is done once per dataset version
and grouping, before the researcher's filters (docs/decisions/0004).
Tables declared (and verified at registration) one-row-per-person skip the pass; when
every group key comes from such a table (visits grouped by the resident's district),
each person touches one group, so L0 = 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from query_guard.draft import Draft
from query_guard.relation import BaseTable, Relation
from query_guard.scenario import Scenario


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
    # The bounded dataset's columns: kept rows are ranked by a seeded hash of their
    # content, so the choice depends only on the person's own rows (PRIVACY: not on the
    # row's position in the file, which other people's rows can shift).
    content: tuple[exp.Column, ...] = ()


def bound_contributions(draft: Draft) -> None:
    """``draft.bounding``: how the engine query bounds each person's rows."""
    keys = [k.expr for k in draft.need("shape").keys]
    draft.bounding = bounding(draft.need("relation"), keys, draft.ctx.scenario)


def bounding(
    rel: Relation, keys: Sequence[exp.Expr], scenario: Scenario | None = None
) -> Bounding:
    """The bounding pass for ``rel`` grouped by ``keys`` (none needed: every dataset has
    one row per person)."""
    many = [b for b in rel.bases if not b.info.one_row_per_unit]
    first = rel.bases[0]
    if not many:
        return Bounding(False, _unit(first), None, first.info.bounding_seed, 1, 1, first.info.name)
    bounded = many[0]
    # LEFT JOIN keeps left rows without a match: their right-side unit is NULL.
    unit_side = first if rel.join is not None and rel.join.side == "LEFT" else bounded
    l0 = max(1, int(bounded.info.max_partitions)) if keys else 1
    if keys and _one_value_per_person(keys, rel):
        l0 = 1  # e.g. visits by the resident's district: each person is in one group
    linf = max(1, int(bounded.info.max_rows_per_partition))
    return Bounding(
        True,
        _unit(unit_side),
        exp.column("__rowid", table=bounded.alias),
        bounded.info.bounding_seed,
        l0,
        linf,
        bounded.info.name,
        _content(bounded, scenario),
    )


def _one_value_per_person(keys: Sequence[exp.Expr], rel: Relation) -> bool:
    """True when every key reads only datasets with one (verified) row per person: then
    all of a person's joined rows share one key tuple, so they touch a single group."""
    for key in keys:
        for column in key.find_all(exp.Column):
            base = rel.base(column.table)
            if base is None or not base.info.one_row_per_unit:
                return False
    return True


def _content(base: BaseTable, scenario: Scenario | None) -> tuple[exp.Column, ...]:
    """The unit and the columns the researcher may read: rows equal on all of them are
    interchangeable for any query in the scenario, and no other column enters the engine
    query (SECURITY: identifiers and out-of-scope columns stay out even of hashes)."""
    names = [base.unit] + [
        name
        for name, info in base.info.columns.items()
        if name != base.unit
        and not info.is_identifier
        and (scenario is None or scenario.allows_column(base.info.name, name))
    ]
    return tuple(exp.column(c, table=base.alias) for c in names)


def _unit(base: BaseTable) -> exp.Column:
    return exp.column(base.unit, table=base.alias)
