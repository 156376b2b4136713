"""Rule: every row-level expression is well typed, and numeric values have known bounds.

Why typing: DuckDB converts between types *at run time* in places (``text_col IN (1, 2)``,
``CASE WHEN text_col THEN …``, ``text_col = date_col``) and a conversion failure on one
row is an error whose occurrence depends on the data — a leak. Requiring compatible types
here makes those errors impossible by construction.

Why bounds: the sensitivity of a sum is the width of the summed value's range. Bounds of
derived expressions are computed by interval arithmetic from the owner's column bounds
(tightened by the scenario); where they cannot be (a division by a float that may be 0,
an unbounded column), the aggregate is refused as ``unbounded``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import TypeMismatchError
from query_guard.positions import show
from query_guard.relation import BaseTable, base_column

NUMERIC = frozenset({"int", "float"})
EPOCH = dt.date(1970, 1, 1)
INT_TYPES = frozenset(
    {exp.DType.TINYINT, exp.DType.SMALLINT, exp.DType.INT, exp.DType.BIGINT}
)
FLOAT_TYPES = frozenset({exp.DType.FLOAT, exp.DType.DOUBLE, exp.DType.DECIMAL})
TEXT_TYPES = frozenset({exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.CHAR})
DATE_PART_RANGE = {
    "QUARTER": (1, 4), "MONTH": (1, 12), "WEEK": (1, 53), "DAY": (1, 31), "DOW": (0, 6),
    "DAYOFWEEK": (0, 6), "DOY": (1, 366), "DAYOFYEAR": (1, 366),
}
PART_OF: dict[type[exp.Expression], str] = {
    exp.Year: "YEAR", exp.Quarter: "QUARTER", exp.Month: "MONTH", exp.Day: "DAY",
    exp.DayOfWeek: "DOW", exp.DayOfYear: "DOY", exp.Week: "WEEK", exp.WeekOfYear: "WEEK",
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

    def column_bounds(self, base: BaseTable, name: str, lo: float | None, hi: float | None
                      ) -> tuple[float | None, float | None]:
        tighter = self.ctx.scenario.bounds.get((base.info.name.lower(), name.lower()))
        if tighter is not None:
            lo = tighter[0] if lo is None else max(lo, tighter[0])
            hi = tighter[1] if hi is None else min(hi, tighter[1])
        return lo, hi

    def infer(self, node: exp.Expression) -> Info:  # noqa: C901 - one dispatch table
        ctx = self.ctx
        if isinstance(node, exp.Paren):
            return self.infer(node.this)
        if isinstance(node, exp.Column):
            found = base_column(node, self.bases)
            if found is None:
                ctx.refuse(TypeMismatchError, f"column {node.sql()}: unknown type", node)
            base, info = found
            if info.type in ("int", "float", "date"):
                lo, hi = self.column_bounds(base, info.name, info.lower, info.upper)
                return Info(info.type, lo, hi)
            if info.type == "bool":
                return Info("bool", 0, 1)
            return Info("text")
        if isinstance(node, exp.Literal):
            if node.is_string:
                return Info("text", literal=True)
            text = str(node.this)
            try:
                value = int(text) if text.isdigit() else float(text)
            except ValueError:
                ctx.refuse(TypeMismatchError, f"number {text}: not a valid number", node)
            kind = "int" if isinstance(value, int) else "float"
            return Info(kind, float(value), float(value), literal=True)
        if isinstance(node, exp.Boolean):
            return Info("bool", 0, 1, literal=True)
        if isinstance(node, exp.Null):
            return Info("null", literal=True)
        if isinstance(node, exp.Pi):
            return Info("float", math.pi, math.pi, literal=True)
        if isinstance(node, exp.Neg):
            a = self._numeric(node.this, node)
            return Info(a.type, _neg(a.hi), _neg(a.lo))
        if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Pow)):
            return self._arith(node)
        if isinstance(node, (exp.Abs, exp.Floor, exp.Ceil, exp.Round, exp.Sqrt, exp.Trunc)):
            return self._unary_math(node)
        if isinstance(node, (exp.Least, exp.Greatest, exp.Coalesce)):
            return self._combine(node, [node.this, *node.expressions], union=True,
                                 op=type(node))
        if isinstance(node, exp.Nullif):
            self._combine(node, [node.this, node.expression], union=True)
            return self.infer(node.this)
        if isinstance(node, exp.Case):
            return self._case(node)
        if isinstance(node, exp.If):
            self._predicate(node.this, "IF condition")
            branches = [b for b in (node.args.get("true"), node.args.get("false")) if b]
            return self._combine(node, branches, union=True)
        if isinstance(node, (exp.Cast, exp.TryCast)):
            return self._cast(node)
        if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)):
            self._comparable(node, [node.this, node.expression])
            return Info("bool", 0, 1)
        if isinstance(node, exp.Is):
            self.infer(node.this)
            return Info("bool", 0, 1)
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                ctx.refuse(TypeMismatchError, "IN: only a list of values is allowed", node)
            self._comparable(node, [node.this, *node.expressions])
            return Info("bool", 0, 1)
        if isinstance(node, exp.Between):
            self._comparable(node, [node.this, node.args["low"], node.args["high"]])
            return Info("bool", 0, 1)
        if isinstance(node, (exp.Like, exp.ILike)):
            self._text(node.this, node)
            pattern = node.expression
            if not (isinstance(pattern, exp.Literal) and pattern.is_string):
                ctx.refuse(TypeMismatchError, f"LIKE pattern {show(pattern, 40)}: must"
                           " be a quoted string", pattern)
            return Info("bool", 0, 1)
        if isinstance(node, (exp.And, exp.Or)):
            self._predicate(node.this, node.key.upper())
            self._predicate(node.expression, node.key.upper())
            return Info("bool", 0, 1)
        if isinstance(node, exp.Not):
            self._predicate(node.this, "NOT")
            return Info("bool", 0, 1)
        if type(node) in PART_OF or isinstance(node, exp.Extract):
            return self._date_part(node)
        if isinstance(node, (exp.TimestampTrunc, exp.DateTrunc)):
            d = self._date(node.this, node)
            return Info("date", d.lo, d.hi)
        if isinstance(node, (exp.Upper, exp.Lower, exp.Trim)):
            self._text(node.this, node)
            return Info("text")
        if isinstance(node, exp.Length):
            self._text(node.this, node)
            return Info("int", 0, None)
        if isinstance(node, exp.Substring):
            self._text(node.this, node)
            for arg in (node.args.get("start"), node.args.get("length")):
                if arg is not None and not _small_int_literal(arg):
                    ctx.refuse(TypeMismatchError, f"SUBSTRING start/length {arg.sql('duckdb')}:"
                               " must be integer literals between -1000000 and 1000000", arg)
            return Info("text")
        if isinstance(node, (exp.DPipe, exp.Concat)):
            for child in node.iter_expressions():
                self.infer(child)
            return Info("text")
        ctx.refuse(TypeMismatchError, f"{node.key.upper()}: cannot type this expression", node)

    # -- helpers ------------------------------------------------------------------
    def _numeric(self, node: exp.Expression, parent: exp.Expression) -> Info:
        info = self.infer(node)
        if info.type == "null":
            return Info("int")
        if info.type not in NUMERIC:
            self.ctx.refuse(
                TypeMismatchError,
                f"{parent.key.upper()} of {info.type} value {show(node, 40)}: needs a"
                " number",
                node,
            )
        return info

    def _text(self, node: exp.Expression, parent: exp.Expression) -> Info:
        info = self.infer(node)
        if info.type not in ("text", "null"):
            self.ctx.refuse(TypeMismatchError, f"{parent.key.upper()} of {info.type} value"
                            f" {show(node, 40)}: needs text (use TRY_CAST(… AS"
                            " VARCHAR))", node)
        return info

    def _date(self, node: exp.Expression, parent: exp.Expression) -> Info:
        info = self.infer(node)
        if info.type not in ("date", "null"):
            self.ctx.refuse(TypeMismatchError, f"{parent.key.upper()} of {info.type} value"
                            f" {show(node, 40)}: needs a date", node)
        return info

    def predicate(self, node: exp.Expression, where: str) -> None:
        """Check that ``node`` is a true/false condition (WHERE, CASE WHEN, AND…)."""
        self._predicate(node, where)

    def _predicate(self, node: exp.Expression, where: str) -> None:
        info = self.infer(node)
        if info.type not in ("bool", "null"):
            self.ctx.refuse(TypeMismatchError, f"{where} on {info.type} value"
                            f" {show(node, 40)}: needs a true/false condition", node)

    def _comparable(self, parent: exp.Expression, nodes: list[exp.Expression]) -> None:
        infos = [self.infer(n) for n in nodes]
        _family(infos, parent, self.ctx, nodes)

    def _combine(self, parent: exp.Expression, nodes: list[exp.Expression], *, union: bool,
                 op: type | None = None) -> Info:
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

    def _arith(self, node: exp.Expression) -> Info:
        left, right = node.this, node.expression
        if isinstance(node, exp.Sub):
            a_info, b_info = self.infer(left), self.infer(right)
            if a_info.type == "date" and b_info.type == "date":
                return Info("int", _sub(a_info.lo, b_info.hi), _sub(a_info.hi, b_info.lo))
        a = self._numeric(left, node)
        b = self._numeric(right, node)
        kind = "int" if a.type == b.type == "int" else "float"
        if isinstance(node, exp.Add):
            return Info(kind, _add(a.lo, b.lo), _add(a.hi, b.hi))
        if isinstance(node, exp.Sub):
            return Info(kind, _sub(a.lo, b.hi), _sub(a.hi, b.lo))
        if isinstance(node, exp.Mul):
            return Info(kind, *_mul(a, b))
        if isinstance(node, (exp.Div, exp.IntDiv)):
            lo, hi = _div(a, b)
            if isinstance(node, exp.IntDiv):
                return Info("int", _trunc(lo), _trunc(hi))
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
            values = [a.lo ** n, a.hi ** n]  # type: ignore[operator]
            if a.lo < 0 < a.hi:  # type: ignore[operator]
                values.append(0.0)
            return Info("float", min(values), max(values))
        return Info("float")

    def _unary_math(self, node: exp.Expression) -> Info:
        a = self._numeric(node.this, node)
        if isinstance(node, exp.Abs):
            if not a.bounded:
                return Info(a.type, 0, None)
            lo, hi = a.lo, a.hi
            low = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))  # type: ignore[operator,arg-type]
            return Info(a.type, low, max(abs(lo), abs(hi)))  # type: ignore[arg-type]
        if isinstance(node, exp.Floor):
            return Info("int", _floor(a.lo), _floor(a.hi))
        if isinstance(node, exp.Ceil):
            return Info("int", _ceil(a.lo), _ceil(a.hi))
        if isinstance(node, exp.Trunc):
            return Info("int", _trunc(a.lo), _trunc(a.hi))
        if isinstance(node, exp.Round):
            decimals = node.args.get("decimals")
            if decimals is not None and not _small_int_literal(decimals):
                self.ctx.refuse(TypeMismatchError, "ROUND decimals: must be an integer"
                                " literal", decimals)
            if decimals is None or int(str(decimals.this)) <= 0:
                return Info("int" if decimals is None else a.type, _floor(a.lo), _ceil(a.hi))
            return Info("float", a.lo, a.hi)
        # SQRT of a negative value is NaN in DuckDB (no error); clamp lower bound at 0.
        lo = None if a.lo is None else math.sqrt(max(a.lo, 0.0))
        hi = None if a.hi is None else math.sqrt(max(a.hi, 0.0))
        return Info("float", lo, hi)

    def _date_part(self, node: exp.Expression) -> Info:
        if isinstance(node, exp.Extract):
            part = node.this.name.upper()
            value = node.expression
        else:
            part = PART_OF[type(node)]
            value = node.this
        d = self._date(value, node)
        if part == "YEAR":
            lo = None if d.lo is None else float(to_date(d.lo).year)
            hi = None if d.hi is None else float(to_date(d.hi).year)
            return Info("int", lo, hi)
        low, high = DATE_PART_RANGE[part]
        return Info("int", float(low), float(high))


def to_date(days: float) -> dt.date:
    """Days since 1970-01-01 (the catalog's date bounds) → a date, clipped to 1..9999."""
    days = max(min(days, 2_932_896.0), -719_162.0)
    return EPOCH + dt.timedelta(days=int(math.floor(days)))


def _family(infos: list[Info], parent: exp.Expression, ctx: Context,
            nodes: list[exp.Expression]) -> str:
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
        if families <= {"text"} or families == {"date"}:
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


def _small_int_literal(node: exp.Expression) -> bool:
    if isinstance(node, exp.Neg):
        node = node.this
    if not isinstance(node, exp.Literal) or node.is_string:
        return False
    try:
        return abs(int(str(node.this))) <= 1_000_000
    except ValueError:
        return False


def _neg(v: float | None) -> float | None:
    return None if v is None else -v


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _floor(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(math.floor(v))


def _trunc(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(math.trunc(v))


def _ceil(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(math.ceil(v))


def _mul(a: Info, b: Info) -> tuple[float | None, float | None]:
    if not (a.bounded and b.bounded):
        return None, None
    products = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]  # type: ignore[operator]
    return min(products), max(products)


def _div(a: Info, b: Info) -> tuple[float | None, float | None]:
    """Interval division; the guard's safe division makes x / 0 NULL, so 0 is excluded.

    For an integer divisor the interval minus 0 is [lo, -1] ∪ [1, hi]; a float divisor
    whose interval contains 0 can come arbitrarily close to it, so the result is
    unbounded.
    """
    if not (a.bounded and b.bounded):
        return None, None
    lo, hi = b.lo, b.hi
    assert lo is not None and hi is not None
    pieces: list[tuple[float, float]] = []
    if lo <= 0 <= hi:
        if b.type != "int":
            if lo == hi == 0:
                return 0.0, 0.0
            return None, None
        if lo <= -1:
            pieces.append((lo, -1.0))
        if hi >= 1:
            pieces.append((1.0, hi))
        if not pieces:
            return 0.0, 0.0  # always NULL; any bounds do
    else:
        pieces.append((lo, hi))
    quotients = []
    for d_lo, d_hi in pieces:
        for x in (a.lo, a.hi):
            for d in (d_lo, d_hi):
                quotients.append(x / d)  # type: ignore[operator]
    return min(quotients), max(quotients)
