"""Rule: spellings of the same function are rewritten to one sqlglot node.

Why: later rules then recognise one form only. ``VAR(x)`` → VARIANCE,
``date_part('year', d)`` → EXTRACT(YEAR FROM d), ``quantile(x, q)`` and
``PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY x)`` → PERCENTILE_CONT(x, q).
Runs after the allow-list, so every input here is already allowed.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.allow_lists import DATE_PARTS
from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.errors import NotAllowedError


def canonical_functions(draft: Draft) -> None:
    tree: exp.Expr = draft.need("select")
    for node in list(tree.walk()):
        replacement = _canonical(node, draft.ctx)
        if replacement is not None and replacement is not node:
            _keep_meta(node, replacement)
            if node is tree:
                tree = replacement
            else:
                node.replace(replacement)
    assert isinstance(tree, exp.Select)
    draft.select = tree


def _canonical(node: exp.Expr, ctx: Context) -> exp.Expr | None:
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        args = list(node.expressions)
        if name == "var":
            if len(args) != 1:
                ctx.refuse(NotAllowedError, "VAR() takes one argument", node)
            return exp.Variance(this=args[0])
        if name in ("date_part", "datepart"):
            if len(args) != 2 or not (isinstance(args[0], exp.Literal) and args[0].is_string):
                ctx.refuse(NotAllowedError, f"{name}() takes a quoted date part and a date", node)
            part = str(args[0].this).upper()
            if part not in DATE_PARTS:
                ctx.refuse(
                    NotAllowedError,
                    f"date part {part!r}: only {', '.join(sorted(DATE_PARTS))} are allowed",
                    args[0],
                )
            return exp.Extract(this=exp.var(part), expression=args[1])
        if name == "quantile_cont":
            if len(args) != 2:
                ctx.refuse(NotAllowedError, "QUANTILE_CONT() takes a value and fractions", node)
            return exp.PercentileCont(this=args[0], expression=args[1])
    if isinstance(node, exp.Quantile):
        return exp.PercentileCont(this=node.this, expression=node.args.get("quantile"))
    if isinstance(node, exp.WithinGroup):
        inner = node.this
        order = node.expression
        items = order.expressions if isinstance(order, exp.Order) else []
        if len(items) != 1 or items[0].args.get("desc"):
            ctx.refuse(
                NotAllowedError,
                "PERCENTILE_CONT … WITHIN GROUP: needs exactly one ascending ORDER BY value",
                node,
            )
        return exp.PercentileCont(this=items[0].this, expression=inner.this)
    if isinstance(node, exp.TimestampTrunc) or isinstance(node, exp.DateTrunc):
        unit = node.args.get("unit")
        if isinstance(unit, exp.Literal) and unit.is_string:
            part = str(unit.this).upper()
            if part not in DATE_PARTS:
                ctx.refuse(NotAllowedError, f"date part {part!r} is not allowed", unit)
            node.set("unit", exp.var(part))
    return None


def _keep_meta(old: exp.Expr, new: exp.Expr) -> None:
    if old.meta:
        new.meta.update(old.meta)
