"""Rule: the outer query outputs only aggregates and group keys; split it into parts.

Why: a released column must be a noisy aggregate or a group key (whose release is
governed by its public domain or by DP partition selection). Anything else — a bare
column without GROUP BY, a column outside an aggregate, a key not grouped — would be
row-level output. This rule also maps GROUP BY ordinals/aliases, turns each aggregate
into a measurement call, ratios such as ``SUM(x) / COUNT(*)`` into post-processing over
noisy parts, and HAVING / ORDER BY / LIMIT into post-processing over output columns.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.allow_lists import AGGREGATES
from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.errors import (
    NotAllowedError,
    ResultLimitError,
    RowLevelOutputError,
    ScopeError,
)
from query_guard.limits import MAX_RESULT_ROWS
from query_guard.measures import make_call
from query_guard.name_checks import refuse_unit_exposure
from query_guard.plan import OrderItem, OutputColumn
from query_guard.relation import Relation, base_column, is_unit
from query_guard.resolver import Resolver, has_aggregate, output_name
from query_guard.shape import AggCall, KeySpec, Shape, int_literal, unique_names
from query_guard.total_expressions import safe_post


def split_aggregates(draft: Draft) -> None:
    """``draft.shape``: the outer query's group keys, aggregate calls, outputs and
    post-processing (each aggregate checked as it is met: :func:`query_guard.measures.make_call`)."""
    rel: Relation = draft.need("relation")
    shape = Shape(relation=rel)
    splitter = _Splitter(draft.need("select"), draft.need("resolver"), draft.ctx, shape)
    splitter.group_keys()
    splitter.select_items()
    splitter.having()
    splitter.order_by()
    splitter.limit()
    draft.shape = shape


class _Splitter:
    def __init__(self, select: exp.Select, resolver: Resolver, ctx: Context, shape: Shape):
        self.select = select
        self.resolver = resolver
        self.ctx = ctx
        self.shape = shape
        self.rel = shape.relation
        self.items = list(select.expressions)
        self.names = unique_names([output_name_as_written(i) for i in self.items])
        self.item_outputs: list[int] = []  # select position → index in shape.outputs
        self._hidden = 0

    # -- GROUP BY ---------------------------------------------------------------
    def group_keys(self) -> None:
        group = self.select.args.get("group")
        exprs: list[exp.Expr] = list(group.expressions) if group else []
        if not exprs and self.select.args.get("distinct"):
            if any(has_aggregate(i) for i in self.items):
                self.ctx.refuse(
                    NotAllowedError,
                    "SELECT DISTINCT with aggregates: use GROUP BY",
                    self.select,
                    keyword="DISTINCT",
                )
            exprs = [i.this if isinstance(i, exp.Alias) else i for i in self.items]
        elif self.select.args.get("distinct"):
            self.ctx.refuse(
                NotAllowedError,
                "SELECT DISTINCT with GROUP BY: use one of them",
                self.select,
                keyword="DISTINCT",
            )
        for node in exprs:
            expr = self._group_target(node)
            agg = has_aggregate(expr)
            if agg is not None:
                self.ctx.refuse(
                    NotAllowedError,
                    f"aggregate {agg.sql('duckdb')[:40]} in GROUP"
                    " BY: group by row-level values only",
                    node,
                    code="nested_aggregate",
                )
            flat = self.resolver.flatten(expr, self.rel)
            refuse_unit_exposure(flat, self.rel.bases, self.ctx, "GROUP BY")
            for col in flat.find_all(exp.Column):
                found = base_column(col, self.rel.bases)
                if found and not self.ctx.scenario.allows_group_by(
                    found[0].info.name, found[1].name
                ):
                    self.ctx.refuse(
                        ScopeError,
                        f"GROUP BY {found[0].info.name}.{found[1].name}: not a grouping column"
                        " approved for this scenario (第十五条)",
                        col,
                    )
            canonical = flat.sql("duckdb")
            if any(k.canonical == canonical for k in self.shape.keys):
                continue
            name = node.name.lower() if isinstance(node, exp.Column) else node.sql("duckdb")
            self.shape.keys.append(
                KeySpec(f"__g{len(self.shape.keys)}", flat, node, name, canonical)
            )

    def _position(self, literal: exp.Literal, clause: str) -> int:
        """The select-list index a ``GROUP BY 2`` / ``ORDER BY 2`` names, or a refusal."""
        position = int_literal(literal)
        if position is None or not 1 <= position <= len(self.items):
            self.ctx.refuse(
                NotAllowedError,
                f"{clause} {literal.sql()}: not a position in the select list",
                literal,
            )
        return position - 1

    def _group_target(self, node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Literal) and not node.is_string:
            item = self.items[self._position(node, "GROUP BY")]
            return item.this if isinstance(item, exp.Alias) else item
        if isinstance(node, exp.Column) and not node.table and not self._is_source(node):
            for item, name in zip(self.items, self.names, strict=True):
                if isinstance(item, exp.Alias) and name == node.name.lower():
                    return item.this
        return node

    def _is_source(self, col: exp.Column) -> bool:
        return any(s.has_column(col.name.lower()) for s in self.rel.sources.values())

    # -- SELECT -----------------------------------------------------------------
    def select_items(self) -> None:
        has_keys = bool(self.shape.keys)
        any_agg = any(has_aggregate(i) for i in self.items)
        for item, name in zip(self.items, self.names, strict=True):
            expr = item.this if isinstance(item, exp.Alias) else item
            self.item_outputs.append(len(self.shape.outputs))
            if has_aggregate(expr):
                self._aggregate_output(expr, name)
                continue
            flat = self.resolver.flatten(expr, self.rel)
            if not any(True for _ in flat.find_all(exp.Column)) and (has_keys or any_agg):
                self.shape.outputs.append(
                    OutputColumn(
                        name=name, source="derived", expression=_plan_expr(_safe_post(flat))
                    )
                )
                continue
            key = self._match_key(flat)
            if key is None:
                col = next(flat.find_all(exp.Column), None)
                if col is not None and is_unit(col, self.rel.bases):
                    refuse_unit_exposure(flat, self.rel.bases, self.ctx, "the select list")
                what = "GROUP BY" if has_keys else "an aggregate or GROUP BY"
                self.ctx.refuse(
                    RowLevelOutputError,
                    f"output column {name} ({expr.sql('duckdb')[:60]}): neither an aggregate"
                    f" nor a group key; wrap it in {what}",
                    item,
                )
            key.name = name
            self.shape.outputs.append(OutputColumn(name=name, source="group", ref=key.column))

    def _aggregate_output(self, expr: exp.Expr, name: str) -> None:
        if isinstance(expr, tuple(AGGREGATES)):
            call = self._call(expr)
            if len(call.quantiles) > 1:
                for index, q in enumerate(call.quantiles):
                    self.shape.outputs.append(
                        OutputColumn(
                            name=f"{name}_{q:g}", source="measure", ref=call.id, index=index
                        )
                    )
                return
            self.shape.outputs.append(OutputColumn(name=name, source="measure", ref=call.id))
            return
        derived = self._post(expr, allow_keys=False)
        self.shape.outputs.append(
            OutputColumn(name=name, source="derived", expression=_plan_expr(derived))
        )

    def _call(self, node: exp.Expr) -> AggCall:
        call = make_call(node, self.resolver, self.rel, self.ctx, len(self.shape.aggs))
        for existing in self.shape.aggs:
            if existing.canonical == call.canonical:
                return existing
        self.shape.aggs.append(call)
        return call

    def _match_key(self, flat: exp.Expr) -> KeySpec | None:
        canonical = flat.sql("duckdb")
        for key in self.shape.keys:
            if key.canonical == canonical:
                return key
        return None

    # -- post-processing expressions --------------------------------------------
    def _post(self, expr: exp.Expr, *, allow_keys: bool) -> exp.Expr:
        """Aggregates → measurement ids; group keys → output names (if ``allow_keys``)."""
        if type(expr) in AGGREGATES:
            call = self._call(expr)
            if len(call.quantiles) > 1:
                self.ctx.refuse(
                    NotAllowedError,
                    f"quantile list {expr.sql('duckdb')[:50]} inside"
                    " an expression: use one fraction",
                    expr,
                )
            if allow_keys:
                return exp.column(self._measure_output(call), quoted=True)
            return exp.column(call.id)
        if allow_keys and not has_aggregate(expr) and any(True for _ in expr.find_all(exp.Column)):
            name = self._key_output(expr, required=isinstance(expr, exp.Column))
            if name is not None:
                return exp.column(name, quoted=True)
        if isinstance(expr, exp.Column):
            self.ctx.refuse(
                RowLevelOutputError,
                f"column {expr.sql('duckdb')} outside an aggregate: in an aggregate expression"
                " every column must be inside an aggregate",
                expr,
            )
        copy = expr.copy()
        for key in list(copy.args):
            original = expr.args.get(key)
            if isinstance(original, exp.Expr):
                copy.set(key, self._post(original, allow_keys=allow_keys))
            elif isinstance(original, list):
                copy.set(
                    key,
                    [
                        self._post(v, allow_keys=allow_keys) if isinstance(v, exp.Expr) else v
                        for v in original
                    ],
                )
        return _safe_post(copy)

    def _measure_output(self, call: AggCall) -> str:
        for out in self.shape.outputs:
            if out.source == "measure" and out.ref == call.id and not out.index:
                return out.name
        return self._add_hidden(OutputColumn(name="", source="measure", ref=call.id))

    def _key_output(self, expr: exp.Expr, *, required: bool) -> str | None:
        if isinstance(expr, exp.Column) and not expr.table and not self._is_source(expr):
            for out in self.shape.outputs:
                if out.name == expr.name.lower() and not out.hidden:
                    return out.name
        if not required and not all(
            self._is_source(c) or c.table for c in expr.find_all(exp.Column)
        ):
            return None  # mentions an output alias: resolve its parts one by one
        flat = self.resolver.flatten(expr, self.rel)
        key = self._match_key(flat)
        if key is None:
            if not required:
                return None
            self.ctx.refuse(
                RowLevelOutputError,
                f"{expr.sql('duckdb')[:60]}: neither an aggregate nor a group key",
                expr,
            )
        for out in self.shape.outputs:
            if out.source == "group" and out.ref == key.column:
                return out.name
        return self._add_hidden(OutputColumn(name="", source="group", ref=key.column))

    def _add_hidden(self, out: OutputColumn) -> str:
        name = f"__h{self._hidden}"
        self._hidden += 1
        self.shape.outputs.append(
            OutputColumn(name=name, source=out.source, ref=out.ref, hidden=True)
        )
        return name

    # -- HAVING / ORDER BY / LIMIT ----------------------------------------------
    def having(self) -> None:
        having = self.select.args.get("having")
        if having is not None:
            self.shape.having = self._post(having.this, allow_keys=True)

    def order_by(self) -> None:
        order = self.select.args.get("order")
        if order is None:
            return
        for ordered in order.expressions:
            desc = bool(ordered.args.get("desc"))
            target = ordered.this
            name = self._order_name(target)
            if name is not None:
                self.shape.order_by.append(OrderItem(column=name, descending=desc))
                continue
            expr = self._post(target, allow_keys=True)
            if isinstance(expr, exp.Column):
                self.shape.order_by.append(OrderItem(column=expr.name, descending=desc))
            else:
                self.shape.order_by.append(
                    OrderItem(
                        column=expr.sql("duckdb"), descending=desc, expression=_plan_expr(expr)
                    )
                )

    def _order_name(self, target: exp.Expr) -> str | None:
        if isinstance(target, exp.Literal) and not target.is_string:
            return self.shape.outputs[self.item_outputs[self._position(target, "ORDER BY")]].name
        if isinstance(target, exp.Column) and not target.table:
            for out in self.shape.outputs:
                if not out.hidden and out.name == target.name.lower():
                    return out.name
        return None

    def limit(self) -> None:
        limit = self.select.args.get("limit")
        if limit is None:
            return
        value = limit.expression
        number = (
            int_literal(value) if isinstance(value, exp.Literal) and not value.is_string else None
        )
        if number is None or number < 0:
            self.ctx.refuse(
                NotAllowedError,
                f"LIMIT {value.sql('duckdb')[:30]}: must be a non-negative integer literal",
                limit,
            )
        if number > MAX_RESULT_ROWS:
            self.ctx.refuse(
                ResultLimitError,
                f"LIMIT {value.sql('duckdb')[:30]}: more than the maximum of"
                f" {MAX_RESULT_ROWS} released rows",
                value,
            )
        self.shape.limit = number


def output_name_as_written(item: exp.Expr) -> str:
    if isinstance(item, (exp.Alias, exp.Column)):
        return output_name(item)
    return item.sql("duckdb")


def _safe_post(expr: exp.Expr) -> exp.Expr:
    """Post-processing runs on released values: casts never raise, PI() is a literal."""
    return safe_post(expr)


def _plan_expr(expr: exp.Expr) -> exp.Expression:
    """The plan contract types expressions as ``exp.Expression`` (every concrete sqlglot
    node class is one; sqlglot's own API is typed with its base ``Expr``)."""
    assert isinstance(expr, exp.Expression)
    return expr
