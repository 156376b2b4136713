"""Where a construct sits in the submitted SQL, for refusal messages.

sqlglot records ``meta`` (``line``, ``col``, ``start``, ``end``) on identifiers, literals
and function names as it parses. A node without its own ``meta`` is located by its
earliest descendant that has one, else by its nearest located ancestor. Positions are
computed from the ``start`` character offset so that they are 1-based line/column of the
construct's *first* character (sqlglot's own ``col`` is the token's last character).
"""

from __future__ import annotations

import re

from sqlglot import exp


def start_offset(node: exp.Expr | None) -> int | None:
    """Character offset of the earliest located token in ``node`` (or an ancestor)."""
    if node is None:
        return None
    best: int | None = None
    for sub in node.walk():
        start = sub.meta.get("start") if sub.meta else None
        if isinstance(start, int) and (best is None or start < best):
            best = start
    if best is not None:
        return best
    parent = node.parent
    while parent is not None:
        start = parent.meta.get("start") if parent.meta else None
        if isinstance(start, int):
            return start
        parent = parent.parent
    return None


def line_column(sql: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset.

    >>> line_column("SELECT\\n  x", 9)
    (2, 3)
    """
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    return line, column


def keyword_offset(sql: str, keyword: str, start: int | None = None) -> int | None:
    """First occurrence of ``keyword`` (a whole word, any case) at/after ``start``.

    Searching from the enclosing node's own start keeps the match inside that node
    (the GROUP BY of a subquery, not the outer query's).
    """
    pattern = re.compile(rf"(?<![\w$]){re.escape(keyword)}(?![\w])", re.IGNORECASE)
    for begin in ([start] if start is not None else []) + [0]:
        match = pattern.search(sql, begin)
        if match:
            return match.start()
    return None


def locate(sql: str, node: exp.Expr | None) -> tuple[int | None, int | None]:
    offset = start_offset(node)
    if offset is None and node is not None:
        text = node.sql("duckdb") if not isinstance(node, exp.Func) else _func_text(node)
        offset = keyword_offset(sql, text) if text else None
    if offset is None:
        return None, None
    if isinstance(node, exp.Func) and not (node.meta and "start" in node.meta):
        offset = _function_name_start(sql, offset)
    return line_column(sql, offset)


def _function_name_start(sql: str, first_argument: int) -> int:
    """``name(`` before a function's first argument: sqlglot does not locate every
    function node, but its arguments are located, and the name precedes the ``(``."""
    paren = sql.rfind("(", 0, first_argument + 1)
    if paren < 0 or sql[paren + 1 : first_argument].strip(" \t\r\n*").upper() not in (
        "",
        "DISTINCT",
        "ALL",
    ):
        return first_argument
    end = paren
    while end > 0 and sql[end - 1].isspace():
        end -= 1
    start = end
    while start > 0 and (sql[start - 1].isalnum() or sql[start - 1] == "_"):
        start -= 1
    return start if start < end else first_argument


def highlight(sql: str, node: exp.Expr | None, limit: int = 60) -> str | None:
    """The submitted text of the construct (first ``limit`` characters)."""
    if node is None:
        return None
    starts: list[int] = []
    ends: list[int] = []
    for sub in node.walk():
        if sub.meta and isinstance(sub.meta.get("start"), int):
            starts.append(sub.meta["start"])
            ends.append(sub.meta.get("end", sub.meta["start"]))
    if not starts:
        return None
    text = sql[min(starts) : max(ends) + 1]
    return text[:limit]


def written_name(sql: str, node: exp.Expr) -> str | None:
    """The function name as the researcher wrote it (``string_agg``, not sqlglot's
    ``group_concat``), when it can be read at the node's position."""
    line, column = locate(sql, node)
    offset = start_offset(node)
    if offset is None or line is None:
        return None
    if isinstance(node, exp.Func) and not (node.meta and "start" in node.meta):
        offset = _function_name_start(sql, offset)
    end = offset
    while end < len(sql) and (sql[end].isalnum() or sql[end] == "_"):
        end += 1
    rest = sql[end:].lstrip()
    if end > offset and rest.startswith("("):
        return sql[offset:end].lower()
    return None


def _func_text(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this)
    sql = node.sql("duckdb")
    return sql.split("(", 1)[0].strip() if sql else ""


def show(node: exp.Expr, limit: int = 50) -> str:
    """A construct as a researcher would recognise it: SQL text without the guard's
    internal table aliases (``t0.age`` → ``age``), shortened to ``limit`` characters."""
    copy = node.copy()
    for col in copy.find_all(exp.Column):
        if col.table and col.table.startswith("t") and col.table[1:].isdigit():
            col.set("table", None)
    text = copy.sql("duckdb")
    return text if len(text) <= limit else text[: limit - 1] + "…"
