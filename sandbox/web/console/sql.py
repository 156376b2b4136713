"""SQL for display: a small tokenizer that highlights SQL and marks a refusal's position.

Pure functions. The browser's editor (``static/console.js``) uses the same token classes,
so a query looks the same in the editor, in the history and in a trace. Refusals carry a
1-based line and column (``query_guard.errors.GuardError.position``); the mark covers the
token that starts there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Final

from markupsafe import Markup, escape

KEYWORDS: Final = frozenset("""
select from where group by having order limit offset as and or not in is null like between case when then
else end join inner left right full outer on using distinct all union except intersect asc desc with
true false cast interval date exists over partition filter
""".split())

TOKEN_RE: Final = re.compile(
    r"""(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
      |(?P<string>'(?:[^']|'')*'?)
      |(?P<qident>"(?:[^"]|"")*"?)
      |(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      |(?P<word>[^\W\d][\w]*)
      |(?P<op><>|<=|>=|!=|\|\||[-+*/%=<>(),.;])
      |(?P<space>\s+)
      |(?P<other>.)""",
    re.S | re.X,
)


def tokens(sql: str) -> Iterator[tuple[str, int, int]]:
    """``(kind, start, end)`` for every token, covering the text without gaps."""
    for m in TOKEN_RE.finditer(sql):
        kind = m.lastgroup or "other"
        yield kind, m.start(), m.end()


def offset_of(sql: str, line: int, column: int) -> int:
    """Character offset of a 1-based (line, column).

    >>> offset_of("SELECT\\n  x", 2, 3)
    9
    """
    lines = sql.split("\n")
    line = max(1, min(line, len(lines)))
    return sum(len(text) + 1 for text in lines[: line - 1]) + max(0, min(column - 1, len(lines[line - 1])))


def error_span(sql: str, line: int | None, column: int | None) -> tuple[int, int] | None:
    """The token at a refusal's position: ``(start, end)`` offsets, or None.

    >>> sql = "SELECT name, COUNT(*) FROM residents GROUP BY name"
    >>> s, e = error_span(sql, 1, 8); sql[s:e]
    'name'
    """
    if line is None:
        return None
    at = offset_of(sql, line, column or 1)
    for kind, start, end in tokens(sql):
        if end <= at:
            continue
        if kind == "space":
            continue
        return start, end
    return (max(0, len(sql) - 1), len(sql)) if sql else None


def _class(kind: str, text: str, following: str, tables: set[str], columns: set[str]) -> str | None:
    if kind == "word":
        low = text.lower()
        if low in KEYWORDS:
            return "kw"
        if following.lstrip().startswith("("):
            return "fn"
        if low in tables:
            return "tbl"
        if low in columns:
            return "col"
        return "id"
    return {"comment": "cm", "string": "str", "qident": "id", "number": "num", "op": "op"}.get(kind)


def highlight(sql: str, *, tables: Iterable[str] = (), columns: Iterable[str] = (),
              error: tuple[int | None, int | None] | None = None) -> Markup:
    """HTML for ``<pre><code>``: tokens in ``<span class="sql-…">``, the refused one in ``<mark>``.

    >>> str(highlight("SELECT 1"))
    '<span class="sql-kw">SELECT</span> <span class="sql-num">1</span>'
    """
    tables_l = {t.lower() for t in tables}
    columns_l = {c.lower() for c in columns}
    span = error_span(sql, *error) if error else None
    out = []
    for kind, start, end in tokens(sql):
        text = sql[start:end]
        cls = _class(kind, text, sql[end:end + 40], tables_l, columns_l)
        html = f'<span class="sql-{cls}">{escape(text)}</span>' if cls else str(escape(text))
        if span and start == span[0]:
            html = f'<mark class="sql-error" id="sql-error-mark">{html}' + ("</mark>" if end >= span[1] else "")
        elif span and end == span[1] and start > span[0]:
            html = html + "</mark>"
        out.append(html)
    return Markup("".join(out))
