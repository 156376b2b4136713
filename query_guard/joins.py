"""The check of a join as it is resolved: ``left.unit = right.unit``, two datasets.

Applied by :class:`query_guard.resolver.Resolver` to each JOIN it meets; the reasons are
``rules/join_on_unit.py``'s, whose step re-checks the finished relation.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import NotAllowedError
from query_guard.relation import JoinSpec, Relation, is_unit

Resolve = Callable[[exp.Column, Relation], exp.Expr]


def check_join(
    join: exp.Join, left: Relation, right: Relation, resolve: Resolve, ctx: Context
) -> JoinSpec:
    """The join's spec, or a refusal; over 60 lines as one list of join shapes, each refused
    in turn with its own message."""
    kind = str(join.args.get("kind") or "").upper()
    side = str(join.args.get("side") or "").upper()
    on = join.args.get("on")
    using = join.args.get("using")
    table = join.this.sql("duckdb")[:60]
    if kind == "CROSS" or (on is None and not using):
        ctx.refuse(
            NotAllowedError,
            f"cross join with {table}: join two datasets only ON their privacy unit",
            join,
            code="cross_join",
        )
    if kind not in ("", "INNER", "OUTER") or side not in ("", "LEFT"):
        ctx.refuse(
            NotAllowedError,
            f"{(side + ' ' + kind).strip()} JOIN of {table}: only [INNER] JOIN and LEFT JOIN are"
            " allowed",
            join,
            code="join_not_allowed",
        )
    if left.join is not None or right.join is not None:
        ctx.refuse(
            NotAllowedError,
            f"join of a third dataset {table}: at most two datasets may be joined",
            join,
            code="join_not_allowed",
        )
    names = {b.info.name.lower() for b in left.bases}
    for base in right.bases:
        if base.info.name.lower() in names:
            ctx.refuse(
                NotAllowedError,
                f"self-join of {base.info.name}: a dataset may appear only once",
                join,
                code="join_not_allowed",
            )
    if (
        left.bases[0].info.one_row_per_unit is False
        and right.bases[0].info.one_row_per_unit is False
    ):
        ctx.refuse(
            NotAllowedError,
            f"join of {left.bases[0].info.name} and {right.bases[0].info.name}: both have"
            " several rows per person, so joined rows per person would multiply",
            join,
            code="join_not_allowed",
        )
    if using:
        if len(using) != 1:
            ctx.refuse(
                NotAllowedError,
                "USING with several columns: join only on the privacy unit",
                join,
                code="join_not_allowed",
            )
        name = using[0].name
        sides = [
            resolve(exp.Column(this=using[0].copy()), left),
            resolve(exp.Column(this=using[0].copy()), right),
        ]
        pair = (sides[0], sides[1])
        condition: exp.Expr = using[0]
        _ = name
    else:
        assert isinstance(on, exp.Expr)
        condition = on.unnest() if isinstance(on, exp.Paren) else on
        if not (
            isinstance(condition, exp.EQ)
            and isinstance(condition.this, exp.Column)
            and isinstance(condition.expression, exp.Column)
        ):
            ctx.refuse(
                NotAllowedError,
                f"join condition {condition.sql('duckdb')[:60]}: a join must be ON"
                " left.unit = right.unit only",
                condition,
                code="join_not_allowed",
            )
        a, b = condition.this, condition.expression
        pair = _pair(a, b, left, right, resolve)
    units = [is_unit(pair[0], left.bases), is_unit(pair[1], right.bases)]
    if not all(units):
        ctx.refuse(
            NotAllowedError,
            f"join condition {condition.sql('duckdb')[:60]}: datasets may be joined only on"
            " their shared privacy unit",
            condition,
            code="join_not_allowed",
        )
    right_filters: tuple[exp.Expr, ...] = ()
    if side == "LEFT":
        right_filters = tuple(right.filters)
    return JoinSpec(side=side, right_filters=right_filters)


def _pair(
    a: exp.Column, b: exp.Column, left: Relation, right: Relation, resolve: Resolve
) -> tuple[exp.Expr, exp.Expr]:
    """Resolve each side of ``a = b`` in the relation it names (either order)."""

    def owner(col: exp.Column) -> str:
        if col.table:
            if col.table.lower() in left.sources:
                return "left"
            if col.table.lower() in right.sources:
                return "right"
        in_left = any(s.has_column(col.name.lower()) for s in left.sources.values())
        return "left" if in_left else "right"

    if owner(a) == "right" and owner(b) == "left":
        a, b = b, a
    return resolve(a, left), resolve(b, right)
