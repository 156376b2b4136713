"""Rule: a group key whose values are knowable without the data gets a public domain.

Why (DESIGN.md "Group keys"): keys from an owner-declared public domain are all released,
empty groups included, so their presence reveals nothing; any other key exists only in
private data and must go through DP partition selection. A computed key has a public
domain when it is a function of one column with a finite public range:
``CASE … THEN 'a' … END`` (its literal results), ``FLOOR(age / 10) * 10`` over integer
bounds, ``year(visit_date)`` / ``date_trunc('month', visit_date)`` over date bounds. The
domain is computed by *evaluating the engine's own key expression* on every possible
input (``query_guard.evaluate``), so it matches what the engine produces.
"""

from __future__ import annotations

import datetime as dt
import math

from sqlglot import exp

from query_guard.draft import Draft
from query_guard.evaluate import Unsupported, evaluate
from query_guard.relation import BaseTable, base_column
from query_guard.type_info import to_date
from query_guard.typer import Typer

MAX_DOMAIN = 10_000
MAX_ENUMERATION = 5_000

Key = str | int | float | bool | None


def public_domains(draft: Draft) -> None:
    """``draft.domains``: each group key's public domain, or None (partition selection)."""
    rel, shape, typer = draft.need("relation"), draft.need("shape"), draft.need("typer")
    for key, expr in zip(shape.keys, draft.key_exprs, strict=True):
        kind = draft.key_types[key.column]
        domain = public_domain(key.expr, expr, typer, rel.bases)
        if domain is not None and len(domain) > MAX_DOMAIN:
            domain = None
        if domain is None and kind == "bool":
            domain = (False, True, None)  # a condition's values are public by its type
        if domain is not None and not isinstance(key.expr, exp.Column):
            domain = _typed_domain(domain, kind)
        draft.domains.append(domain)


def _typed_domain(domain: tuple, kind: str) -> tuple:
    """Domain values in the engine's result type (1 vs 1.0 must not differ)."""
    if kind not in ("int", "float"):
        return domain
    cast = int if kind == "int" else float
    out: dict[object, None] = {}
    for value in domain:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = cast(value)
        out.setdefault(value, None)
    return tuple(out)


def public_domain(
    flat: exp.Expr, engine_key: exp.Expr, typer: Typer, bases: list[BaseTable]
) -> tuple[Key, ...] | None:
    """The finite public domain of a key, or None when only the data could tell."""
    node = flat.unnest() if isinstance(flat, exp.Paren) else flat
    found = base_column(node, bases)
    if found is not None and isinstance(node, exp.Column):
        info = found[1]
        if info.public_values is not None:
            return tuple(info.public_values)
        if info.type == "bool":
            return (False, True)
    literals = _literal_results(node)
    if literals is not None:
        return literals
    columns = list(flat.find_all(exp.Column))
    names = {(c.table, c.name) for c in columns}
    if len(names) != 1:
        return None if names else _constant(engine_key)
    found = base_column(columns[0], bases)
    if found is None:
        return None
    base, info = found
    inputs = _inputs(base, info.name, typer)
    if inputs is None:
        return None
    if info.nullable:
        inputs = (*inputs, None)
    cache_key = (engine_key.sql("duckdb"), inputs)
    if cache_key not in _CACHE:
        if len(_CACHE) >= 512:
            _CACHE.clear()
        _CACHE[cache_key] = _enumerate(engine_key, inputs)
    return _CACHE[cache_key]


#: Planning is pure and policies rarely change: remember enumerations by key SQL.
_CACHE: dict[tuple[str, tuple], tuple[Key, ...] | None] = {}


def _inputs(base: BaseTable, name: str, typer: Typer) -> tuple[Key | dt.date, ...] | None:
    info = base.info.column(name)
    if info is None:
        return None
    if info.public_values is not None:
        return tuple(info.public_values)
    if info.type == "bool":
        return (False, True)
    lo, hi = typer.column_bounds(base, info.name, info.lower, info.upper)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    if info.type == "int":
        start, stop = math.ceil(lo), math.floor(hi)
        if stop - start + 1 > MAX_ENUMERATION:
            return None
        return tuple(range(start, stop + 1))
    if info.type == "date":
        first, last = to_date(lo), to_date(hi)
        days = (last - first).days + 1
        if days > MAX_ENUMERATION or days < 0:
            return None
        return tuple(first + dt.timedelta(days=i) for i in range(days))
    return None


def _enumerate(engine_key: exp.Expr, inputs: tuple) -> tuple[Key, ...] | None:
    """Evaluate the key on every input; None if any input cannot be evaluated."""
    rewritten = engine_key.copy()
    if isinstance(rewritten, exp.Column):
        rewritten = exp.column("__x")
    for col in list(rewritten.find_all(exp.Column)):
        col.replace(exp.column("__x"))
    seen: dict[Key, None] = {}
    try:
        for value in inputs:
            result = evaluate(rewritten, {"__x": value})
            if isinstance(result, dt.date):
                result = result.isoformat()
            if isinstance(result, float) and math.isnan(result):
                return None
            seen.setdefault(result, None)
            if len(seen) > MAX_DOMAIN:
                return None
    except (Unsupported, ValueError, TypeError, OverflowError, ArithmeticError):
        return None
    return tuple(seen)


def _literal_results(node: exp.Expr) -> tuple[Key, ...] | None:
    """``CASE … THEN <literal> … [ELSE <literal>] END`` → its literal results."""
    if isinstance(node, exp.Case):
        results = [b.args.get("true") for b in node.args.get("ifs") or []]
        default = node.args.get("default")
    elif isinstance(node, exp.If):
        results = [node.args.get("true")]
        default = node.args.get("false")
    else:
        return None
    values: dict[Key, None] = {}
    for result in results + ([default] if default is not None else []):
        value = _literal(result)
        if value is _NOT_LITERAL:
            return None
        values.setdefault(value, None)  # type: ignore[call-overload]
    if default is None:
        values.setdefault(None, None)
    return tuple(values)


_NOT_LITERAL = object()


def _literal(node: exp.Expr | None) -> object:
    if isinstance(node, exp.Paren):
        node = node.unnest()
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return str(node.this)
        text = str(node.this)
        try:
            return int(text)
        except ValueError:
            return float(text)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        value = _literal(node.this)
        return -value if isinstance(value, (int, float)) else _NOT_LITERAL
    return _NOT_LITERAL


def _constant(engine_key: exp.Expr) -> tuple[Key, ...] | None:
    try:
        value = evaluate(engine_key, {})
    except (Unsupported, ValueError, TypeError, ArithmeticError):
        return None
    return (value.isoformat() if isinstance(value, dt.date) else value,)
