"""Name resolution: scope by scope, CTEs and subqueries inlined into base columns.

Shared by the rules that meet names: ``rules/flatten_subqueries.py`` builds the
relation with it (and says why derived tables may only filter and derive), the
aggregate split flattens keys and aggregate arguments with it. Each table, column, join
and derived column is checked as it is resolved (:mod:`query_guard.name_checks`,
:mod:`query_guard.joins`), so a refusal points at the first offending name as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from query_guard.allow_lists import AGGREGATES
from query_guard.context import Context
from query_guard.errors import LimitError, NotAllowedError, ScopeError
from query_guard.joins import check_join
from query_guard.limits import MAX_FLAT_NODES, limit_tree
from query_guard.name_checks import check_column, check_dataset, refuse_unit_exposure
from query_guard.relation import BaseTable, Relation, Source, is_unit

_ROW_LEVEL_ONLY = {
    "group": "GROUP BY",
    "having": "HAVING",
    "order": "ORDER BY",
    "limit": "LIMIT",
    "distinct": "DISTINCT",
}


def has_aggregate(expr: exp.Expr) -> exp.Expr | None:
    for node in expr.walk():
        if type(node) in AGGREGATES:
            return node
    return None


@dataclass
class Derived:
    """A CTE or subquery after inlining: its row source and its output columns."""

    relation: Relation
    columns: dict[str, exp.Expr]
    ambiguous: set[str] = field(default_factory=set)

    def as_relation(self, visible: str) -> Relation:
        return Relation(
            bases=list(self.relation.bases),
            join=self.relation.join,
            filters=list(self.relation.filters),
            sources={visible: Source(visible, columns=self.columns)},
            ambiguous={visible: self.ambiguous},
        )


class Resolver:
    """Resolves names scope by scope and inlines derived tables (one per query)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._next_alias = 0
        self._budget = MAX_FLAT_NODES

    # -- FROM / JOIN / WHERE ------------------------------------------------------
    def relation(self, select: exp.Select, ctes: dict[str, Derived]) -> Relation:
        ctx = self.ctx
        ctes = self._with(select, ctes)
        from_ = select.args.get("from_")
        if from_ is None:
            first = select.expressions[0].sql("duckdb")[:40] if select.expressions else ""
            ctx.refuse(
                NotAllowedError,
                f"SELECT {first} without FROM: a query must aggregate a dataset",
                select,
            )
        rel = self._item(from_.this, ctes)
        for join in select.args.get("joins") or []:
            right = self._item(join.this, ctes)
            for name in right.sources:
                if name in rel.sources:
                    ctx.refuse(
                        NotAllowedError,
                        f"table alias {name} used twice ({join.this.sql('duckdb')}): give each"
                        " table its own alias",
                        join,
                        code="join_not_allowed",
                    )
            spec = check_join(join, rel, right, self.resolve, ctx)
            filters = rel.filters + ([] if spec.side == "LEFT" else right.filters)
            rel = Relation(
                bases=rel.bases + right.bases,
                join=spec,
                filters=filters,
                sources={**rel.sources, **right.sources},
                ambiguous={**rel.ambiguous, **right.ambiguous},
            )
        where = select.args.get("where")
        if where is not None:
            agg = has_aggregate(where.this)
            if agg is not None:
                ctx.refuse(
                    NotAllowedError,
                    f"aggregate {agg.sql('duckdb')[:40]} in WHERE: filter groups with HAVING",
                    agg,
                    code="nested_aggregate",
                )
            flat = self.flatten(where.this, rel)
            refuse_unit_exposure(flat, rel.bases, ctx, "WHERE")
            rel.filters.append(flat)
        return rel

    def _with(self, select: exp.Select, ctes: dict[str, Derived]) -> dict[str, Derived]:
        with_ = select.args.get("with_")
        if with_ is None:
            return ctes
        scoped = dict(ctes)
        for cte in with_.expressions:
            scoped[cte.alias.lower()] = self.derived(cte.this, scoped)
        return scoped

    def _item(self, node: exp.Expr, ctes: dict[str, Derived]) -> Relation:
        ctx = self.ctx
        if isinstance(node, exp.Table):
            name = node.name.lower()
            visible = (node.alias or node.name).lower()
            if not node.args.get("db") and not node.args.get("catalog") and name in ctes:
                return ctes[name].as_relation(visible)
            info = check_dataset(node, ctx)
            base = BaseTable(alias=f"t{self._next_alias}", info=info)
            self._next_alias += 1
            return Relation(bases=[base], sources={visible: Source(visible, base=base)})
        if isinstance(node, exp.Subquery):
            derived = self.derived(node.this, ctes)
            return derived.as_relation((node.alias or "").lower())
        ctx.refuse(NotAllowedError, f"{node.key.upper()} in FROM: not allowed", node)

    # -- derived tables -----------------------------------------------------------
    def derived(self, select: exp.Expr, ctes: dict[str, Derived]) -> Derived:
        ctx = self.ctx
        if not isinstance(select, exp.Select):
            ctx.refuse(NotAllowedError, f"{select.key.upper()} as a derived table", select)
        for arg, clause in _ROW_LEVEL_ONLY.items():
            value = select.args.get(arg)
            if value:
                text = value.sql("duckdb")[:50] if arg != "distinct" else clause
                ctx.refuse(
                    NotAllowedError,
                    f"{text} in a CTE or subquery: derived tables may only filter rows and"
                    " derive columns",
                    value if arg != "distinct" else select,
                    code="nested_aggregate" if arg in ("group", "having") else None,
                    keyword=clause.split()[0],
                )
        for item in select.expressions:
            agg = has_aggregate(item)
            if agg is not None:
                ctx.refuse(
                    NotAllowedError,
                    f"aggregate {agg.sql('duckdb')[:40]} in a CTE or subquery: aggregate only"
                    " in the outer query",
                    agg,
                    code="nested_aggregate",
                )
        rel = self.relation(select, ctes)
        columns: dict[str, exp.Expr] = {}
        ambiguous: set[str] = set()
        for item in select.expressions:
            expr = item.this if isinstance(item, exp.Alias) else item
            name = output_name(item)
            flat = self.flatten(expr, rel)
            if not (isinstance(flat, exp.Column) and is_unit(flat, rel.bases)):
                refuse_unit_exposure(flat, rel.bases, ctx, "a derived column")
            if name in columns:
                ambiguous.add(name)
            columns[name] = flat
        inner = Relation(bases=rel.bases, join=rel.join, filters=rel.filters)
        return Derived(inner, columns, ambiguous)

    # -- columns ------------------------------------------------------------------
    def flatten(self, expr: exp.Expr, rel: Relation) -> exp.Expr:
        """A copy of ``expr`` with every column replaced by its base-column expression."""
        root = expr.copy()
        if isinstance(root, exp.Column):
            root = self.resolve(root, rel)
        else:
            for col in list(root.find_all(exp.Column)):
                col.replace(self.resolve(col, rel))
        limit_tree(root, self.ctx, flat=True)
        return root

    def resolve(self, col: exp.Column, rel: Relation) -> exp.Expr:
        ctx = self.ctx
        name = col.name.lower()
        if col.table:
            source = rel.sources.get(col.table.lower())
            if source is None:
                ctx.refuse(
                    ScopeError,
                    f"table or alias {col.table}: not in this query's FROM clause",
                    col,
                )
        else:
            matches = [s for s in rel.sources.values() if s.has_column(name)]
            if len(matches) > 1:
                ctx.refuse(
                    NotAllowedError,
                    f"column {name} is ambiguous: qualify it with its table alias",
                    col,
                )
            if not matches:
                only = list(rel.sources.values())
                if len(only) == 1 and only[0].base is not None:
                    check_column(only[0].base, name, col, ctx)
                ctx.refuse(
                    ScopeError,
                    f"column {name}: not a column of the tables in FROM (第十五条)",
                    col,
                )
            source = matches[0]
        if source.base is not None:
            info = check_column(source.base, name, col, ctx)
            node = exp.column(info.name.lower(), table=source.base.alias)
            node.this.meta.update(col.this.meta)
            return node
        assert source.columns is not None
        if name not in source.columns:
            ctx.refuse(
                ScopeError,
                f"column {name}: not a column of derived table {source.name or '(subquery)'}",
                col,
            )
        if name in rel.ambiguous.get(source.name, set()):
            ctx.refuse(NotAllowedError, f"column {name} is ambiguous in its derived table", col)
        copy = source.columns[name].copy()
        if isinstance(copy, exp.Column) and col.this.meta:
            copy.this.meta.clear()
            copy.this.meta.update(col.this.meta)
        self._spend(copy)
        return copy

    def _spend(self, expr: exp.Expr) -> None:
        self._budget -= sum(1 for _ in expr.walk())
        if self._budget < 0:
            self.ctx.refuse(
                LimitError,
                f"inlining CTEs and subqueries would exceed {MAX_FLAT_NODES} syntax nodes",
                expr,
            )


def output_name(item: exp.Expr) -> str:
    """The column name SQL gives a select item (alias, else column name, else text)."""
    if isinstance(item, exp.Alias):
        return item.alias.lower()
    if isinstance(item, exp.Column):
        return item.name.lower()
    return item.sql("duckdb").lower()
