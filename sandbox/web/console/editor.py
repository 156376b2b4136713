"""What the workbench's SQL editor knows: tables, columns and functions, and formatting.

The editor (CodeMirror 6, ``static/vendor/codemirror.min.js``, built by ``web-src/``)
fetches nothing: the page hands it the approval's tables and columns and the functions the
guard allows (``query_guard.allow_lists``), each with a one-line description in the UI
language, as data attributes. Aggregates outside the approval's ``aggregates`` are left out
of the completions (the guard would refuse them anyway, 第十五条 scope).

Formatting runs sqlglot on the server — the same parser as the guard, DuckDB dialect — so
what the researcher sees formatted is what the guard reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import sqlglot
from flask_babel import lazy_gettext as _l
from sqlglot.errors import ParseError, TokenError

from sandbox.web.console.charts import fmt

#: Longest text the format button accepts (the guard's own limit is larger; formatting a
#: megabyte of SQL on a page request is not useful).
FORMAT_MAX_CHARS: Final = 20_000


@dataclass(frozen=True)
class Function:
    name: str
    signature: str
    description: Any  # lazy_gettext: translated when rendered
    measure: str | None = None  # the approval's aggregate kind, None for scalar functions


FUNCTIONS: Final = (
    Function("COUNT", "COUNT(*) · COUNT(DISTINCT col)", _l("Number of rows, or of distinct people with DISTINCT"), "count"),
    Function("SUM", "SUM(col)", _l("Sum of a bounded numeric column"), "sum"),
    Function("AVG", "AVG(col)", _l("Mean of a bounded numeric column"), "mean"),
    Function("VARIANCE", "VARIANCE(col)", _l("Variance of a bounded numeric column"), "variance"),
    Function("VAR_POP", "VAR_POP(col)", _l("Population variance of a bounded numeric column"), "variance"),
    Function("STDDEV", "STDDEV(col)", _l("Standard deviation of a bounded numeric column"), "stddev"),
    Function("STDDEV_POP", "STDDEV_POP(col)", _l("Population standard deviation of a bounded column"), "stddev"),
    Function("MEDIAN", "MEDIAN(col)", _l("Median of a bounded numeric column"), "quantile"),
    Function("QUANTILE_CONT", "QUANTILE_CONT(col, p)", _l("The p-quantile (0 < p < 1) of a bounded column"),
             "quantile"),
    Function("ROUND", "ROUND(x, digits)", _l("Round to a number of decimal places")),
    Function("FLOOR", "FLOOR(x)", _l("Largest integer not above x")),
    Function("CEIL", "CEIL(x)", _l("Smallest integer not below x")),
    Function("ABS", "ABS(x)", _l("Absolute value")),
    Function("SQRT", "SQRT(x)", _l("Square root")),
    Function("LEAST", "LEAST(a, b, …)", _l("Smallest of the arguments")),
    Function("GREATEST", "GREATEST(a, b, …)", _l("Largest of the arguments")),
    Function("COALESCE", "COALESCE(a, b, …)", _l("First argument that is not NULL")),
    Function("NULLIF", "NULLIF(a, b)", _l("NULL when a equals b, else a")),
    Function("CAST", "CAST(x AS type)", _l("Convert to INTEGER, DOUBLE, DECIMAL, VARCHAR, DATE or BOOLEAN")),
    Function("YEAR", "YEAR(date)", _l("Year of a date")),
    Function("QUARTER", "QUARTER(date)", _l("Quarter (1–4) of a date")),
    Function("MONTH", "MONTH(date)", _l("Month (1–12) of a date")),
    Function("DAY", "DAY(date)", _l("Day of the month of a date")),
    Function("DAYOFWEEK", "DAYOFWEEK(date)", _l("Day of the week (0 = Sunday) of a date")),
    Function("EXTRACT", "EXTRACT(part FROM date)", _l("A part (YEAR, MONTH, …) of a date")),
    Function("DATE_TRUNC", "DATE_TRUNC('month', date)", _l("A date cut down to the start of its year, month, week…")),
    Function("UPPER", "UPPER(text)", _l("Text in upper case")),
    Function("LOWER", "LOWER(text)", _l("Text in lower case")),
    Function("LENGTH", "LENGTH(text)", _l("Number of characters")),
    Function("SUBSTRING", "SUBSTRING(text, start, length)", _l("Part of a text")),
    Function("TRIM", "TRIM(text)", _l("Text without leading and trailing spaces")),
    Function("CONCAT", "CONCAT(a, b, …)", _l("Texts joined together")),
)


def functions_for(approval: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The completions for functions: scalar ones always, aggregates the approval allows.

    An approval without an ``aggregates`` list allows every aggregate kind.
    """
    allowed = set((approval or {}).get("scope", {}).get("aggregates") or [])
    if "count_distinct" in allowed:
        allowed.add("count")
    return [{"name": f.name, "signature": f.signature, "description": str(f.description),
             "aggregate": f.measure is not None}
            for f in FUNCTIONS if f.measure is None or not allowed or f.measure in allowed]


def schema_json(schema: list[dict[str, Any]], *, zh: bool) -> str:
    """``{table: {title, columns: [{name, detail}]}}`` for the editor's completions: only
    the columns the approval lets the researcher write (allowed ones and the privacy unit,
    which only counts people); identifiers and columns outside the approval are left out."""
    out: dict[str, Any] = {}
    for ds in schema:
        cols = []
        for c in ds["columns"]:
            if c["status"] not in ("allowed", "unit"):
                continue
            detail = [c["type"]]
            if c.get("bounds"):
                lo, hi = (fmt(b) if isinstance(b, int | float) else str(b) for b in c["bounds"])
                detail.append(f"[{lo}, {hi}]")
            if c.get("public_values"):
                values = [str(v) for v in c["public_values"]]
                detail.append(", ".join(values[:6]) + (" …" if len(values) > 6 else ""))
            if c["status"] == "unit":
                detail.append(str(_l("privacy unit")))
            cols.append({"name": c["name"], "detail": " · ".join(detail)})
        title = ds.get("title_zh") if zh and ds.get("title_zh") else ds.get("title", "")
        out[ds["name"]] = {"title": title, "columns": cols}
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


@dataclass(frozen=True)
class Formatted:
    sql: str
    error: str | None = None


def format_sql(sql: str) -> Formatted:
    """The query pretty-printed by sqlglot (DuckDB dialect), comments kept.

    Text that does not parse is returned unchanged with the parser's message, so a typo
    never loses what was typed.

    >>> format_sql("select a,count(*) from t group by a").sql
    'SELECT\\n  a,\\n  COUNT(*)\\nFROM t\\nGROUP BY\\n  a'
    """
    if len(sql) > FORMAT_MAX_CHARS:
        return Formatted(sql, str(_l("The query is too long to format (at most %(n)s characters).",
                                     n=f"{FORMAT_MAX_CHARS:,}")))
    try:
        statements = sqlglot.parse(sql, read="duckdb")
        parts = [s.sql(dialect="duckdb", pretty=True) for s in statements if s is not None]
    except (ParseError, TokenError) as err:
        return Formatted(sql, str(_l("Could not format: the SQL does not parse (%(detail)s).",
                                     detail=str(err).splitlines()[0][:200])))
    except RecursionError:  # thousands of nested parentheses: the text stays as typed
        return Formatted(sql, str(_l("Could not format: the SQL does not parse (%(detail)s).",
                                     detail="nested too deeply")))
    return Formatted(";\n\n".join(parts) if parts else sql)
