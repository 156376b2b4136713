"""The guard's checked plan as Spark SQL: sqlglot's Spark dialect plus four rewrites.

sqlglot transpiles most of the engine query as it is (``QUALIFY`` becomes a subquery,
``TRY_CAST`` a ``CAST``, which with ANSI mode off is NULL on failure). Four constructs
have no Spark twin and are rewritten on a copy of the tree, never on researcher text:

* ``TRY(expr)`` (``query_guard.engine_query.total``): Spark has no generic ``TRY``; the
  arithmetic inside becomes ``try_add``/``try_subtract``/``try_multiply``/``try_divide``,
  which are NULL on overflow and division by zero whatever the ANSI setting. PRIVACY:
  with ANSI off as well (``spark_engine.LOCKED_CONF``) no accepted expression raises on
  any value (tests/test_spark_totality.py), so an error cannot depend on one person's row.
* ``HASH(…)`` (the bounding pass's per-person pseudo-random order): DuckDB's hash is
  DuckDB's own, so Spark datasets rank by :func:`portable_hash`, an MD5 over a canonical
  text of the arguments that both engines compute the same way. The equivalence test runs
  DuckDB with the same ranking; on production DuckDB datasets the native hash stays.
* ``HISTOGRAM(bin)`` (quantiles): Spark has no exact histogram aggregate, so each one is
  computed in its own CTE (count per key and bin, then ``map_from_entries``) and joined to
  the other statistics on the group keys with ``<=>``.
* Functions are checked against :data:`SPARK_FUNCTIONS` (defence in depth: nothing the
  guard did not produce — no UDF, no file reader — can be named).

See docs/decisions/0015 for why the hash differs per engine.
"""

from __future__ import annotations

from sqlglot import exp

from sandbox.errors import SandboxError


class SparkUnsupported(SandboxError):
    """A plan construct without a tested Spark form: refused before any data is read."""

    def __init__(self, message: str):
        super().__init__(message, code="engine_unsupported", status=422)


#: Functions sqlglot does not know (``exp.Anonymous``) that the Spark form may name: the
#: rewrites' own. Known functions passed the guard's allow-list; anything else — a UDF, a
#: file reader — is refused before execution.
SPARK_ANONYMOUS = frozenset({"TRY_ADD", "TRY_SUBTRACT", "TRY_MULTIPLY", "TRY_DIVIDE", "MAP_FROM_ENTRIES",
                             "COLLECT_LIST", "STRUCT", "ASINH", "WEEKDAY"})

_SEP = "\x1f"  # unit separator between hashed fields; NULL is its own marker below


def portable_hash(args: list[exp.Expr], dialect: str) -> exp.Expr:
    """``MD5(concat_ws(US, COALESCE(CAST(a AS text), NUL), …))``: the same hex digest on
    DuckDB and Spark for integers, text, dates and booleans (doubles agree where both
    engines print them alike, as on ordinary values; a disagreement only changes which
    equally valid rows a person keeps, never how many)."""
    text = exp.DataType.build("VARCHAR" if dialect == "duckdb" else "STRING")
    parts: list[exp.Expr] = [exp.Literal.string(_SEP)]
    for arg in args:
        parts.append(exp.func("COALESCE", exp.Cast(this=arg.copy(), to=text.copy()), exp.Literal.string("\x00")))
    return exp.func("MD5", exp.func("CONCAT_WS", *parts))


def with_portable_hashes(tree: exp.Expr, dialect: str) -> exp.Expr:
    """A copy of ``tree`` with every ``HASH(…)`` replaced by :func:`portable_hash`."""
    tree = tree.copy()
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name.upper() == "HASH":
            node.replace(portable_hash(list(node.expressions), dialect))
    return tree


_TRY_OPS: dict[type, str] = {exp.Add: "TRY_ADD", exp.Sub: "TRY_SUBTRACT", exp.Mul: "TRY_MULTIPLY",
                             exp.Div: "TRY_DIVIDE"}


def _is_date(node: exp.Expr, date_columns: frozenset[str]) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Cast | exp.TryCast):
        return node.to.is_type(exp.DataType.Type.DATE)
    return isinstance(node, exp.Column) and node.name in date_columns


def _untry(tree: exp.Expr, date_columns: frozenset[str]) -> None:
    """``TRY(e)`` → ``e`` with its arithmetic made NULL-on-error (Spark's try_* functions);
    ``date - date`` is a number of days in DuckDB, an interval in Spark: ``DATEDIFF``."""
    for node in list(tree.find_all(exp.Try)):
        inner = node.this
        for op in list(inner.find_all(*_TRY_OPS)):
            if isinstance(op, exp.Sub) and _is_date(op.this, date_columns) and _is_date(op.expression, date_columns):
                op.replace(exp.DateDiff(this=op.this, expression=op.expression))
                continue
            op.replace(exp.Anonymous(this=_TRY_OPS[type(op)], expressions=[op.this, op.expression]))
        node.replace(inner)


def _weekdays(tree: exp.Expr) -> None:
    """DuckDB's ``dayofweek`` is 0 (Sunday) … 6 and ``isodow`` 1 (Monday) … 7; Spark's
    ``DAYOFWEEK`` is 1 (Sunday) … 7 and ``WEEKDAY`` 0 (Monday) … 6."""
    for node in list(tree.find_all(exp.DayOfWeekIso)):
        node.replace(exp.paren(exp.Add(this=exp.Anonymous(this="WEEKDAY", expressions=[node.this]),
                                       expression=exp.Literal.number(1))))
    for node in list(tree.find_all(exp.DayOfWeek)):
        node.replace(exp.paren(exp.Sub(this=exp.DayOfWeek(this=node.this), expression=exp.Literal.number(1))))


def _round_scales(tree: exp.Expr) -> None:
    """``ROUND(x, 1000000)`` makes Spark build a BigDecimal of that scale (about 20 s per
    query on a few rows, a time channel and a denial of service). Past ±400 digits the
    result is the same for any DOUBLE or BIGINT (|x| < 1.8e308, no digit below 1e-400
    survives), so the scale is clamped to ±400."""
    for node in tree.find_all(exp.Round):
        scale = node.args.get("decimals")
        if isinstance(scale, exp.Neg) and isinstance(scale.this, exp.Literal):
            value = -int(scale.this.this) if scale.this.is_int else None
        elif isinstance(scale, exp.Literal) and scale.is_int:
            value = int(scale.this)
        else:
            value = None
        if value is not None and abs(value) > 400:
            node.set("decimals", exp.Literal.number(400 if value > 0 else -400))


def _wide_integers(tree: exp.Expr) -> None:
    """An integer literal past BIGINT is a DOUBLE in DuckDB and a DECIMAL (failing past 38
    digits) in Spark: make it the DOUBLE DuckDB compares with."""
    for lit in list(tree.find_all(exp.Literal)):
        if lit.is_int and not -(2**63) <= int(lit.this) < 2**63:
            lit.replace(exp.Cast(this=exp.Literal.string(lit.this), to=exp.DataType.build("DOUBLE")))


def _split_histograms(query: exp.Select) -> exp.Select:
    """Move each ``HISTOGRAM(bin) AS h`` of the outer SELECT into its own CTE."""
    hists = [(a.alias, a.this.expressions[0]) for a in query.expressions
             if isinstance(a, exp.Alias) and isinstance(a.this, exp.Anonymous) and a.this.name.upper() == "HISTOGRAM"]
    if not hists:
        return query
    keys = [e.copy() for e in (query.args.get("group") or exp.Group()).expressions]
    key_names = [k.name for k in keys]
    main = query.copy()
    main.set("expressions", [e for e in main.expressions if e.alias not in {h for h, _ in hists}])
    ctes = list((main.args.get("with") or exp.With()).expressions)
    main.set("with", None)
    final = exp.select(*[exp.column(c, table="__m") for c in [e.alias_or_name for e in main.expressions]])
    final = final.from_(main.subquery("__m", copy=False), copy=False)
    for i, (alias, bin_expr) in enumerate(hists):
        name = f"__h{i}"
        inner = exp.select(*[exp.column(k) for k in key_names], exp.alias_(bin_expr.copy(), "__b"),
                           exp.alias_(exp.Count(this=exp.Star()), "__c"))
        inner = inner.from_("__src").where(exp.Not(this=exp.Is(this=bin_expr.copy(), expression=exp.Null())))
        inner = inner.group_by(*[exp.column(k) for k in key_names], exp.column("__b"))
        entries = exp.func("MAP_FROM_ENTRIES", exp.func("COLLECT_LIST", exp.func("STRUCT", exp.column("__b"), exp.column("__c"))))
        hist = exp.select(*[exp.column(k) for k in key_names], exp.alias_(entries, alias))
        hist = hist.from_(inner.subquery("__hb", copy=False))
        if key_names:
            hist = hist.group_by(*[exp.column(k) for k in key_names])
        final = final.select(exp.column(alias, table=name), copy=False)
        on = exp.and_(*[exp.NullSafeEQ(this=exp.column(k, table="__m"), expression=exp.column(k, table=name))
                        for k in key_names]) if key_names else None
        final = final.join(exp.alias_(hist.subquery(copy=False), name, table=True),
                           on=on, join_type="left" if on is not None else "cross", copy=False)
    for cte in ctes:
        final = final.with_(cte.alias, as_=cte.this, copy=False)
    return final


def spark_sql(tree: exp.Expr, date_columns: frozenset[str] = frozenset()) -> str:
    """The Spark SQL text of an engine (or keep, or materialised) query tree.

    ``date_columns``: names of the datasets' DATE columns (for ``date - date``).
    Raises :class:`SparkUnsupported` for a construct without a Spark form.
    """
    tree = with_portable_hashes(tree, "spark")
    _untry(tree, date_columns)
    _round_scales(tree)
    _wide_integers(tree)
    _weekdays(tree)
    if isinstance(tree, exp.Select):
        tree = _split_histograms(tree)
    for node in tree.find_all(exp.Anonymous):
        if node.name.upper() not in SPARK_ANONYMOUS:
            raise SparkUnsupported(f"the function {node.name} has no tested Spark form")
    return tree.sql(dialect="spark")
