"""Types and bounds of flattened row-level expressions (:class:`Typer`).

The facts it infers (:class:`Info`, the type families and their mixing rules) are
:mod:`query_guard.type_info`; how bounds pass through casts, arithmetic and date parts is
:mod:`query_guard.numeric_bounds`. Shared: ``rules/type_bounds.py`` types the filters and keys with it (and says why types
and bounds are required), ``rules/safe_arithmetic.py`` and ``rules/clamp_values.py``
read types and bounds from it, ``rules/public_domains.py`` the bounds of a key's column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from sqlglot import exp

from query_guard import intervals as iv
from query_guard import numeric_bounds as nb
from query_guard.allow_lists import ARITHMETIC_OPERATORS, COMPARISONS, DATE_PART_OF
from query_guard.catalog import DEFAULT_TEXT_MAX_LENGTH
from query_guard.context import Context
from query_guard.errors import ImplicitCastError, LimitError, TypeMismatchError
from query_guard.positions import show
from query_guard.relation import BaseTable, base_column
from query_guard.type_info import (
    MAX_LIKE_STEPS,
    MAX_PATTERN_CHARS,
    MAX_TEXT_CHARS,
    NON_TEXT_CHARS,
    NUMERIC,
    Info,
    type_family,
)


class Typer:
    """Infers :class:`Info` for flattened expressions over one relation's base columns."""

    def __init__(self, bases: list[BaseTable], ctx: Context) -> None:
        self.bases = bases
        self.ctx = ctx

    def column_bounds(
        self, base: BaseTable, name: str, lo: float | None, hi: float | None
    ) -> tuple[float | None, float | None]:
        tighter = self.ctx.scenario.bounds.get((base.info.name.lower(), name.lower()))
        if tighter is not None:
            lo = tighter[0] if lo is None else max(lo, tighter[0])
            hi = tighter[1] if hi is None else min(hi, tighter[1])
        return lo, hi

    def infer(self, node: exp.Expr) -> Info:
        """The type and bounds of ``node``, or a refusal: the handler of its most specific
        class in :data:`_INFER` (as :mod:`query_guard.evaluate` dispatches)."""
        for cls in type(node).__mro__:
            handler = _INFER.get(cls)
            if handler is not None:
                return handler(self, node)
        self.ctx.refuse(TypeMismatchError, f"{node.key.upper()}: cannot type this expression", node)

    def _column(self, node: exp.Column) -> Info:
        found = base_column(node, self.bases)
        if found is None:
            self.ctx.refuse(TypeMismatchError, f"column {node.sql()}: unknown type", node)
        base, info = found
        if info.type in ("int", "float", "date"):
            lo, hi = self.column_bounds(base, info.name, info.lower, info.upper)
            return Info(info.type, lo, hi)
        if info.type == "bool":
            return Info("bool", 0, 1)
        return Info("text")

    def _literal(self, node: exp.Literal) -> Info:
        if node.is_string:
            return Info("text", literal=True)
        text = str(node.this)
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:
            self.ctx.refuse(TypeMismatchError, f"number {text}: not a valid number", node)
        kind = "int" if isinstance(value, int) else "float"
        return Info(kind, float(value), float(value), literal=True)

    def _neg(self, node: exp.Neg) -> Info:
        a = self.numeric(node.this, node)
        return Info(a.type, iv.neg(a.hi), iv.neg(a.lo))

    def _nullif(self, node: exp.Nullif) -> Info:
        self._combine(node, [node.this, node.expression], union=True)
        return self.infer(node.this)

    def _if(self, node: exp.If) -> Info:
        self._predicate(node.this, "IF condition")
        branches = [b for b in (node.args.get("true"), node.args.get("false")) if b]
        return self._combine(node, branches, union=True)

    def _comparison(self, node: exp.Expr) -> Info:
        self._comparable(node, [node.this, node.expression])
        return Info("bool", 0, 1)

    def _is(self, node: exp.Is) -> Info:
        info = self.infer(node.this)
        if isinstance(node.expression, exp.Boolean) and info.type not in ("bool", "null"):
            # SECURITY: ``x IS TRUE`` casts x to BOOLEAN per row ('x' raises).
            self.ctx.refuse(
                ImplicitCastError,
                f"{show(node, 40)}: IS TRUE/FALSE needs a true/false value, not {info.type}",
                node,
            )
        return Info("bool", 0, 1)

    def _in(self, node: exp.In) -> Info:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            self.ctx.refuse(TypeMismatchError, "IN: only a list of values is allowed", node)
        self._comparable(node, [node.this, *node.expressions])
        return Info("bool", 0, 1)

    def _between(self, node: exp.Between) -> Info:
        self._comparable(node, [node.this, node.args["low"], node.args["high"]])
        return Info("bool", 0, 1)

    def _like(self, node: exp.Expr) -> Info:
        ctx = self.ctx
        self._text(node.this, node)
        pattern = node.expression
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            ctx.refuse(
                TypeMismatchError,
                f"LIKE pattern {show(pattern, 40)}: must be a quoted string",
                pattern,
            )
        if len(str(pattern.this)) > MAX_PATTERN_CHARS:
            ctx.refuse(
                LimitError,
                f"LIKE pattern of {len(str(pattern.this))} characters: longer than the"
                f" limit of {MAX_PATTERN_CHARS}",
                pattern,
            )
        steps = self.text_chars(node.this) * max(1, len(str(pattern.this)))
        if steps > MAX_LIKE_STEPS:
            ctx.refuse(
                LimitError,
                f"LIKE over text of up to {self.text_chars(node.this):,} characters with a pattern of"
                f" {len(str(pattern.this))}: up to {steps:,} steps per row, past the limit of"
                f" {MAX_LIKE_STEPS:,} (one row's cost must stay small: its time could tell"
                " whether it matched); match shorter text or a shorter pattern",
                node,
            )
        return Info("bool", 0, 1)

    def _and_or(self, node: exp.Expr) -> Info:
        self._predicate(node.this, node.key.upper())
        self._predicate(node.expression, node.key.upper())
        return Info("bool", 0, 1)

    def _not(self, node: exp.Not) -> Info:
        self._predicate(node.this, "NOT")
        return Info("bool", 0, 1)

    def _date_trunc(self, node: exp.Expr) -> Info:
        d = self.date(node.this, node)
        return Info("date", d.lo, d.hi)

    def _text_function(self, node: exp.Expr) -> Info:
        self._text(node.this, node)
        return Info("int", 0, None) if isinstance(node, exp.Length) else Info("text")

    def _substring(self, node: exp.Substring) -> Info:
        self._text(node.this, node)
        for arg in (node.args.get("start"), node.args.get("length")):
            if arg is not None and not iv.small_int_literal(arg):
                self.ctx.refuse(
                    TypeMismatchError,
                    f"SUBSTRING start/length {arg.sql('duckdb')}:"
                    " must be integer literals between -1000000 and 1000000",
                    arg,
                )
        return Info("text")

    def _concat(self, node: exp.Expr) -> Info:
        for child in node.iter_expressions():
            self.infer(child)
        chars = self.text_chars(node)
        if chars > MAX_TEXT_CHARS:
            self.ctx.refuse(
                LimitError,
                f"{show(node, 40)}: builds text of up to {chars:,} characters per row, past"
                f" the limit of {MAX_TEXT_CHARS:,} (one row's cost must stay small: its time"
                " could tell whether it matched)",
                node,
            )
        return Info("text")

    def text_chars(self, node: exp.Expr) -> int:
        """An upper bound on the characters ``node`` yields for one row: a text column's
        declared ``max_length``, a literal's length, a concatenation's sum, a choice's
        largest branch, a number or date as text ``NON_TEXT_CHARS``."""
        if isinstance(node, exp.Paren):
            return self.text_chars(node.this)
        if isinstance(node, exp.Literal):
            return len(str(node.this)) if node.is_string else NON_TEXT_CHARS
        if isinstance(node, exp.Column):
            found = base_column(node, self.bases)
            if found is None or found[1].type != "text":
                return NON_TEXT_CHARS
            return found[1].max_length or DEFAULT_TEXT_MAX_LENGTH
        if isinstance(node, (exp.DPipe, exp.Concat)):
            return sum(self.text_chars(c) for c in node.iter_expressions())
        if isinstance(node, (exp.Case, exp.If, exp.Coalesce, exp.Nullif, exp.Least, exp.Greatest)):
            parts = [c for c in node.iter_expressions()
                     if not (isinstance(node, (exp.Case, exp.If)) and c is node.this)]
            return max([self.text_chars(c) for c in parts] or [0])
        children = list(node.iter_expressions())
        # UPPER/LOWER/TRIM/SUBSTRING/casts: no longer than their input; WHEN pairs, others: sum
        return sum(self.text_chars(c) for c in children) if children else NON_TEXT_CHARS

    # -- helpers ------------------------------------------------------------------
    def numeric(self, node: exp.Expr, parent: exp.Expr) -> Info:
        info = self._expect(node, NUMERIC, f"{parent.key.upper()} of", "needs a number")
        return Info("int") if info.type == "null" else info

    def _text(self, node: exp.Expr, parent: exp.Expr) -> Info:
        return self._expect(
            node,
            ("text",),
            f"{parent.key.upper()} of",
            "needs text (use TRY_CAST(… AS VARCHAR))",
        )

    def date(self, node: exp.Expr, parent: exp.Expr) -> Info:
        return self._expect(node, ("date",), f"{parent.key.upper()} of", "needs a date")

    def _expect(self, node: exp.Expr, types: Collection[str], subject: str, needs: str) -> Info:
        """``node``'s Info when its type is one of ``types`` (or NULL, which fits any), else
        the one shape of type refusal: "<subject> <type> value <node>: <needs>"."""
        info = self.infer(node)
        if info.type != "null" and info.type not in types:
            self.ctx.refuse(
                TypeMismatchError, f"{subject} {info.type} value {show(node, 40)}: {needs}", node
            )
        return info

    def predicate(self, node: exp.Expr, where: str) -> None:
        """Check that ``node`` is a true/false condition (WHERE, CASE WHEN, AND…)."""
        self._predicate(node, where)

    def _predicate(self, node: exp.Expr, where: str) -> None:
        self._expect(node, ("bool",), f"{where} on", "needs a true/false condition")

    def _comparable(self, parent: exp.Expr, nodes: list[exp.Expr]) -> None:
        infos = [self.infer(n) for n in nodes]
        type_family(infos, parent, self.ctx, nodes)

    def _combine(
        self, parent: exp.Expr, nodes: list[exp.Expr], *, union: bool, op: type | None = None
    ) -> Info:
        infos = [self.infer(n) for n in nodes]
        family = type_family(infos, parent, self.ctx, nodes)
        present = [i for i in infos if i.type != "null"]
        if not present:
            return Info("null")
        if family == "numeric":
            kind = "float" if any(i.type == "float" for i in present) else "int"
        else:
            kind = family
        if family not in ("numeric", "date"):
            return Info(kind)
        los = [i.lo for i in present]
        his = [i.hi for i in present]
        if op is exp.Least:
            lo = None if any(v is None for v in los) else min(los)  # type: ignore[type-var]
            hi = min((v for v in his if v is not None), default=None)
            return Info(kind, lo, hi)
        if op is exp.Greatest:
            lo = max((v for v in los if v is not None), default=None)
            hi = None if any(v is None for v in his) else max(his)  # type: ignore[type-var]
            return Info(kind, lo, hi)
        if any(i.lo is None or i.hi is None for i in present):
            return Info(kind)
        return Info(kind, min(los), max(his))  # type: ignore[type-var]

    def _case(self, node: exp.Case) -> Info:
        if node.this is not None:
            subject = node.this
            for branch in node.args.get("ifs") or []:
                self._comparable(branch, [subject, branch.this])
        else:
            for branch in node.args.get("ifs") or []:
                self._predicate(branch.this, "CASE WHEN")
        results = [b.args["true"] for b in node.args.get("ifs") or []]
        default = node.args.get("default")
        if default is not None:
            results.append(default)
        return self._combine(node, results, union=True)


#: :meth:`Typer.infer`'s handler per node type (the most specific class of a node wins).
_INFER: dict[type, Callable[[Typer, Any], Info]] = {
    exp.Paren: lambda t, node: t.infer(node.this),
    exp.Column: Typer._column,
    exp.Literal: Typer._literal,
    exp.Boolean: lambda t, node: Info("bool", 0, 1, literal=True),
    exp.Null: lambda t, node: Info("null", literal=True),
    exp.Pi: lambda t, node: Info("float", math.pi, math.pi, literal=True),
    exp.Neg: Typer._neg,
    **dict.fromkeys(ARITHMETIC_OPERATORS, nb.arith),
    **dict.fromkeys(
        (exp.Abs, exp.Floor, exp.Ceil, exp.Round, exp.Sqrt, exp.Trunc), nb.unary_math
    ),
    **dict.fromkeys(
        (exp.Least, exp.Greatest, exp.Coalesce),
        lambda t, node: t._combine(node, [node.this, *node.expressions], union=True, op=type(node)),
    ),
    exp.Nullif: Typer._nullif,
    exp.Case: Typer._case,
    exp.If: Typer._if,
    exp.Cast: nb.cast,
    **dict.fromkeys(COMPARISONS, Typer._comparison),
    exp.Is: Typer._is,
    exp.In: Typer._in,
    exp.Between: Typer._between,
    exp.Like: Typer._like,
    exp.ILike: Typer._like,
    exp.And: Typer._and_or,
    exp.Or: Typer._and_or,
    exp.Not: Typer._not,
    exp.Extract: nb.date_part,
    **dict.fromkeys(DATE_PART_OF, nb.date_part),
    exp.TimestampTrunc: Typer._date_trunc,
    exp.DateTrunc: Typer._date_trunc,
    **dict.fromkeys((exp.Upper, exp.Lower, exp.Trim, exp.Length), Typer._text_function),
    exp.Substring: Typer._substring,
    exp.DPipe: Typer._concat,
    exp.Concat: Typer._concat,
}
