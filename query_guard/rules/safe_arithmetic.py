"""Rule: no row-level expression can raise an error on any data.

Why: an error that happens only for some rows tells the researcher those rows exist
(``WHERE person_id = 42 AND 1 / (age - 37) > 0``). By construction here:

* ``CAST`` becomes ``TRY_CAST`` (NULL instead of a conversion error); a DECIMAL(w, s)
  cast becomes ``TRY_CAST(TRY_CAST(x AS DECIMAL(w, s)) AS DOUBLE)``, since mixed DECIMALs
  meet in a common DECIMAL type where a value that does not fit raises row by row;
* ``x / y``, ``x // y`` and ``x % y`` become ``CASE WHEN y = 0 THEN NULL ELSE … END``
  (DuckDB raises on integer and ``//`` division by zero); ``x // y`` becomes
  ``TRUNC(x / y)`` in DOUBLE, DuckDB's integer-division semantics;
* numeric operands of arithmetic are computed in DOUBLE (``TRY_CAST(x AS DOUBLE)``):
  DuckDB raises on INTEGER/BIGINT/DECIMAL overflow, DOUBLE saturates to ±inf;
* ``date - date`` (BIGINT days) is widened to DOUBLE too, so arithmetic on it cannot
  overflow; ``ROUND(x, n)`` rounds in DOUBLE (DuckDB raises on ``ROUND(BIGINT, -n)``
  overflow); ``-5`` stays an integer literal where DuckDB needs one (SUBSTRING, ROUND);
* a text literal next to a date becomes a typed DATE literal, read once here (it was
  validated by ``rules/type_bounds.py``; DuckDB would convert it row by row);
* ``DATE_TRUNC(part, d)`` is computed only for d in 0001-01-01..9999-12-31 (NULL
  outside: DuckDB's truncation goes through TIMESTAMP and raises past its range) and
  is a DATE, not a TIMESTAMP;
* other run-time type conversions are refused by ``rules/type_bounds.py``.

The construct-by-construct list is in docs/guard.md, "Total expressions".
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.draft import Draft
from query_guard.total_expressions import safe_arithmetic as safe


def safe_arithmetic(draft: Draft) -> None:
    """The engine's filters, the join's right-side filters and the group key expressions
    (``draft.filters``, ``draft.right_filters``, ``draft.key_exprs``). Aggregate arguments are rewritten where they are
    clamped (``rules/clamp_values.py``), post-processing where it is split off."""
    rel, shape, typer = draft.need("relation"), draft.need("shape"), draft.need("typer")
    draft.filters = [safe(condition, typer) for condition in rel.filters]
    if rel.join is not None:
        draft.right_filters = [safe(condition, typer) for condition in rel.join.right_filters]
    for key in shape.keys:
        kind = draft.key_types[key.column]
        expr = safe(key.expr, typer)
        if kind == "date":
            expr = exp.TimeToStr(this=expr, format=exp.Literal.string("%Y-%m-%d"))
        elif kind in ("int", "float") and not isinstance(key.expr, exp.Column):
            # Computed numeric keys come out of DOUBLE arithmetic; give them one type so
            # engine values and public-domain values compare equal.
            target = "BIGINT" if kind == "int" else "DOUBLE"
            expr = exp.TryCast(this=expr, to=exp.DataType.build(target))
        draft.key_exprs.append(expr)
