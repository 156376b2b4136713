"""Types and bounds of flattened row-level expressions (:class:`Typer`).

Shared: ``rules/type_bounds.py`` types the filters and keys with it (and says why types
and bounds are required), ``rules/safe_arithmetic.py`` and ``rules/clamp_values.py``
read types and bounds from it, ``rules/public_domains.py`` the bounds of a key's column.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from query_guard import intervals as iv
from query_guard.allow_lists import DATE_PART_OF
from query_guard.catalog import DEFAULT_TEXT_MAX_LENGTH
from query_guard.context import Context
from query_guard.errors import ImplicitCastError, LimitError, TypeMismatchError
from query_guard.literals import is_number, is_string, parse_date
from query_guard.positions import show
from query_guard.relation import BaseTable, base_column

NUMERIC = frozenset({"int", "float"})
EPOCH = dt.date(1970, 1, 1)
INT_TYPES = frozenset({exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT})
FLOAT_TYPES = frozenset({exp.DType.FLOAT, exp.DType.DOUBLE, exp.DType.DECIMAL})
TEXT_TYPES = frozenset({exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.CHAR})
#: Longest LIKE pattern: bounds the per-row cost of matching (timing, issue 12).
MAX_PATTERN_CHARS = 100
#: The most characters one text expression may build for one row (concatenation), from its
#: columns' declared ``max_length`` and its literals: bounds one row's work (timing).
MAX_TEXT_CHARS = 10_000
#: LIKE's worst case is (text length) × (pattern length) steps per row (DuckDB matches
#: ``%…_…`` patterns by backtracking, ~0.3 ns a step): at most this many per row, ~15 µs
#: (bench/bench_timing.py measured 62 µs at 200,000; docs/privacy.md, "Timing").
MAX_LIKE_STEPS = 50_000
#: A number or date turned into text has at most this many characters.
NON_TEXT_CHARS = 40
#: DECIMAL(width, scale) as DuckDB accepts it (a wider one is a binder error).
MAX_DECIMAL_WIDTH = 38
DATE_PART_RANGE = {
    "QUARTER": (1, 4),
    "MONTH": (1, 12),
    "WEEK": (1, 53),
    "DAY": (1, 31),
    "DOW": (0, 6),
    "DAYOFWEEK": (0, 6),
    "DOY": (1, 366),
    "DAYOFYEAR": (1, 366),
}


@dataclass(frozen=True)
class Info:
    """Type and (if numeric or date) closed bounds of an expression's values."""

    type: str  # int | float | text | date | bool | null
    lo: float | None = None
    hi: float | None = None
    literal: bool = False

    @property
    def bounded(self) -> bool:
        return (
            self.lo is not None
            and self.hi is not None
            and math.isfinite(self.lo)
            and math.isfinite(self.hi)
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
        a = self._numeric(node.this, node)
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
        d = self._date(node.this, node)
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
    def _numeric(self, node: exp.Expr, parent: exp.Expr) -> Info:
        info = self.infer(node)
        if info.type == "null":
            return Info("int")
        if info.type not in NUMERIC:
            self.ctx.refuse(
                TypeMismatchError,
                f"{parent.key.upper()} of {info.type} value {show(node, 40)}: needs a number",
                node,
            )
        return info

    def _text(self, node: exp.Expr, parent: exp.Expr) -> Info:
        info = self.infer(node)
        if info.type not in ("text", "null"):
            self.ctx.refuse(
                TypeMismatchError,
                f"{parent.key.upper()} of {info.type} value"
                f" {show(node, 40)}: needs text (use TRY_CAST(… AS"
                " VARCHAR))",
                node,
            )
        return info

    def _date(self, node: exp.Expr, parent: exp.Expr) -> Info:
        info = self.infer(node)
        if info.type not in ("date", "null"):
            self.ctx.refuse(
                TypeMismatchError,
                f"{parent.key.upper()} of {info.type} value {show(node, 40)}: needs a date",
                node,
            )
        return info

    def predicate(self, node: exp.Expr, where: str) -> None:
        """Check that ``node`` is a true/false condition (WHERE, CASE WHEN, AND…)."""
        self._predicate(node, where)

    def _predicate(self, node: exp.Expr, where: str) -> None:
        info = self.infer(node)
        if info.type not in ("bool", "null"):
            self.ctx.refuse(
                TypeMismatchError,
                f"{where} on {info.type} value {show(node, 40)}: needs a true/false condition",
                node,
            )

    def _comparable(self, parent: exp.Expr, nodes: list[exp.Expr]) -> None:
        infos = [self.infer(n) for n in nodes]
        _family(infos, parent, self.ctx, nodes)

    def _combine(
        self, parent: exp.Expr, nodes: list[exp.Expr], *, union: bool, op: type | None = None
    ) -> Info:
        infos = [self.infer(n) for n in nodes]
        family = _family(infos, parent, self.ctx, nodes)
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

    def _cast(self, node: exp.Cast) -> Info:
        src = self.infer(node.this)
        self._type_params(node)
        to = node.to.this
        if to in INT_TYPES:
            if src.type in NUMERIC or src.type == "bool":
                lo = None if src.lo is None else float(round(src.lo))
                hi = None if src.hi is None else float(round(src.hi))
                return Info("int", lo, hi)
            return Info("int")
        if to in FLOAT_TYPES:
            if src.type in NUMERIC or src.type == "bool":
                return Info("float", src.lo, src.hi)
            return Info("float")
        if to in TEXT_TYPES:
            return Info("text")
        if to == exp.DType.DATE:
            if src.type == "date":
                return Info("date", src.lo, src.hi)
            literal = node.this
            if isinstance(literal, exp.Literal) and literal.is_string:
                try:
                    day = float((dt.date.fromisoformat(str(literal.this)) - EPOCH).days)
                except ValueError:
                    return Info("date", literal=True)
                return Info("date", day, day, literal=True)
            return Info("date")
        if to == exp.DType.BOOLEAN:
            return Info("bool", 0, 1)
        self.ctx.refuse(TypeMismatchError, f"CAST to {node.to.sql()}: not allowed", node)

    def _type_params(self, node: exp.Cast) -> None:
        """DECIMAL(w, s) with 1 ≤ w ≤ 38 and 0 ≤ s ≤ w; VARCHAR/CHAR(n); nothing else:
        an invalid parameter is a binder error in the engine (a 500, not a refusal)."""
        params = node.to.expressions or []
        if not params:
            return
        kind = node.to.this
        values = []
        for param in params:
            value = param.this if isinstance(param, exp.DataTypeParam) else param
            if not (is_number(value) and str(value.sql()).lstrip("-").isdigit()):
                values = []
                break
            values.append(int(value.sql()))
        ok = False
        if kind == exp.DType.DECIMAL and values and len(values) == len(params) <= 2:
            width = values[0]
            scale = values[1] if len(values) > 1 else 0
            ok = 1 <= width <= MAX_DECIMAL_WIDTH and 0 <= scale <= width
        elif kind in TEXT_TYPES and len(values) == len(params) == 1:
            ok = 1 <= values[0] <= 65535
        if not ok:
            self.ctx.refuse(
                TypeMismatchError,
                f"CAST to {node.to.sql('duckdb')}: type parameters allowed only as"
                f" DECIMAL(width 1..{MAX_DECIMAL_WIDTH}, scale 0..width) or VARCHAR(1..65535)",
                node,
            )

    def _arith(self, node: exp.Expr) -> Info:
        left, right = node.this, node.expression
        if isinstance(node, exp.Sub):
            a_info, b_info = self.infer(left), self.infer(right)
            if a_info.type == "date" and b_info.type == "date":
                return Info("int", iv.sub(a_info.lo, b_info.hi), iv.sub(a_info.hi, b_info.lo))
        a = self._numeric(left, node)
        b = self._numeric(right, node)
        kind = "int" if a.type == b.type == "int" else "float"
        if isinstance(node, exp.Add):
            return Info(kind, iv.add(a.lo, b.lo), iv.add(a.hi, b.hi))
        if isinstance(node, exp.Sub):
            return Info(kind, iv.sub(a.lo, b.hi), iv.sub(a.hi, b.lo))
        if isinstance(node, exp.Mul):
            return Info(kind, *iv.mul(a, b))
        if isinstance(node, (exp.Div, exp.IntDiv)):
            lo, hi = iv.div(a, b)
            if isinstance(node, exp.IntDiv):
                return Info("int", iv.trunc(lo), iv.trunc(hi))
            return Info("float", lo, hi)
        if isinstance(node, exp.Mod):
            if not b.bounded:
                return Info(kind)
            m = max(abs(b.lo), abs(b.hi))  # type: ignore[arg-type]
            lo = 0.0 if a.lo is not None and a.lo >= 0 else -m
            hi = 0.0 if a.hi is not None and a.hi <= 0 else m
            return Info(kind, lo, hi)
        # POWER: bounded for a constant non-negative integer exponent only.
        if b.literal and b.lo is not None and b.lo == int(b.lo) and 0 <= b.lo <= 8 and a.bounded:
            n = int(b.lo)
            values = [a.lo**n, a.hi**n]  # type: ignore[operator]
            if a.lo < 0 < a.hi:  # type: ignore[operator]
                values.append(0.0)
            return Info("float", min(values), max(values))
        return Info("float")

    def _unary_math(self, node: exp.Expr) -> Info:
        a = self._numeric(node.this, node)
        if isinstance(node, exp.Abs):
            if not a.bounded:
                return Info(a.type, 0, None)
            lo, hi = a.lo, a.hi
            low = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))  # type: ignore[operator,arg-type]
            return Info(a.type, low, max(abs(lo), abs(hi)))  # type: ignore[arg-type]
        if isinstance(node, exp.Floor):
            return Info("int", iv.floor(a.lo), iv.floor(a.hi))
        if isinstance(node, exp.Ceil):
            return Info("int", iv.ceil(a.lo), iv.ceil(a.hi))
        if isinstance(node, exp.Trunc):
            return Info("int", iv.trunc(a.lo), iv.trunc(a.hi))
        if isinstance(node, exp.Round):
            decimals = node.args.get("decimals")
            if decimals is not None and not iv.small_int_literal(decimals):
                self.ctx.refuse(
                    TypeMismatchError, "ROUND decimals: must be an integer literal", decimals
                )
            if decimals is None or int(str(decimals.this)) <= 0:
                return Info("int" if decimals is None else a.type, iv.floor(a.lo), iv.ceil(a.hi))
            return Info("float", a.lo, a.hi)
        # SQRT of a negative value is NaN in DuckDB (no error); clamp lower bound at 0.
        lo = None if a.lo is None else math.sqrt(max(a.lo, 0.0))
        hi = None if a.hi is None else math.sqrt(max(a.hi, 0.0))
        return Info("float", lo, hi)

    def _date_part(self, node: exp.Expr) -> Info:
        if isinstance(node, exp.Extract):
            part = node.this.name.upper()
            value = node.expression
        else:
            part = DATE_PART_OF[type(node)]
            value = node.this
        d = self._date(value, node)
        if part == "YEAR":
            lo = None if d.lo is None else float(to_date(d.lo).year)
            hi = None if d.hi is None else float(to_date(d.hi).year)
            return Info("int", lo, hi)
        low, high = DATE_PART_RANGE[part]
        return Info("int", float(low), float(high))


#: :meth:`Typer.infer`'s handler per node type (the most specific class of a node wins).
_INFER: dict[type, Callable[[Typer, Any], Info]] = {
    exp.Paren: lambda t, node: t.infer(node.this),
    exp.Column: Typer._column,
    exp.Literal: Typer._literal,
    exp.Boolean: lambda t, node: Info("bool", 0, 1, literal=True),
    exp.Null: lambda t, node: Info("null", literal=True),
    exp.Pi: lambda t, node: Info("float", math.pi, math.pi, literal=True),
    exp.Neg: Typer._neg,
    **dict.fromkeys(
        (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Pow), Typer._arith
    ),
    **dict.fromkeys(
        (exp.Abs, exp.Floor, exp.Ceil, exp.Round, exp.Sqrt, exp.Trunc), Typer._unary_math
    ),
    **dict.fromkeys(
        (exp.Least, exp.Greatest, exp.Coalesce),
        lambda t, node: t._combine(node, [node.this, *node.expressions], union=True, op=type(node)),
    ),
    exp.Nullif: Typer._nullif,
    exp.Case: Typer._case,
    exp.If: Typer._if,
    exp.Cast: Typer._cast,
    **dict.fromkeys((exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE), Typer._comparison),
    exp.Is: Typer._is,
    exp.In: Typer._in,
    exp.Between: Typer._between,
    exp.Like: Typer._like,
    exp.ILike: Typer._like,
    exp.And: Typer._and_or,
    exp.Or: Typer._and_or,
    exp.Not: Typer._not,
    exp.Extract: Typer._date_part,
    **dict.fromkeys(DATE_PART_OF, Typer._date_part),
    exp.TimestampTrunc: Typer._date_trunc,
    exp.DateTrunc: Typer._date_trunc,
    **dict.fromkeys((exp.Upper, exp.Lower, exp.Trim, exp.Length), Typer._text_function),
    exp.Substring: Typer._substring,
    exp.DPipe: Typer._concat,
    exp.Concat: Typer._concat,
}


def to_date(days: float) -> dt.date:
    """Days since 1970-01-01 (the catalog's date bounds) → a date, clipped to 1..9999."""
    days = max(min(days, 2_932_896.0), -719_162.0)
    return EPOCH + dt.timedelta(days=int(math.floor(days)))


def _family(infos: list[Info], parent: exp.Expr, ctx: Context, nodes: list[exp.Expr]) -> str:
    families = set()
    for info in infos:
        if info.type == "null":
            continue
        if info.type in NUMERIC:
            families.add("numeric")
        elif info.type == "text" and info.literal:
            families.add("text_literal")
        else:
            families.add(info.type)
    if "text_literal" in families:
        families.discard("text_literal")
        if not families:
            return "text"
        if families == {"date"}:
            _date_literals(infos, nodes, ctx)
            return "date"
        if families <= {"text"}:
            return families.pop()
        families.add("text")
    if len(families) > 1:
        ctx.refuse(
            TypeMismatchError,
            f"{parent.key.upper()} mixes {' and '.join(sorted(families))} values"
            f" ({show(parent, 50)}): cast explicitly with TRY_CAST",
            parent,
        )
    return families.pop() if families else "null"


def _date_literals(infos: list[Info], nodes: list[exp.Expr], ctx: Context) -> None:
    """Text literals that meet a date must name a valid date (``rules/safe_arithmetic``
    then writes them as typed DATE literals); decided here, never at run time."""
    for info, node in zip(infos, nodes, strict=True):
        while isinstance(node, exp.Paren):
            node = node.this
        if info.type == "text" and info.literal and is_string(node):
            if parse_date(str(node.this)) is None:
                ctx.refuse(
                    ImplicitCastError,
                    f"text '{str(node.this)[:30]}' used as a date: not a valid YYYY-MM-DD"
                    " date (the engine would convert it row by row)",
                    node,
                )
