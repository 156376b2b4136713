"""Where a construct sits in the submitted SQL, for refusal messages.

sqlglot records ``meta`` (``line``, ``col``, ``start``, ``end``) on identifiers, literals
and function names as it parses. A node without its own ``meta`` is located by its
earliest descendant that has one, else by its nearest located ancestor. Positions are
computed from the ``start`` character offset so that they are 1-based line/column of the
construct's *first* character (sqlglot's own ``col`` is the token's last character).
"""

from __future__ import annotations

from sqlglot import exp


def start_offset(node: exp.Expression | None) -> int | None:
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


def locate(sql: str, node: exp.Expression | None) -> tuple[int | None, int | None]:
    offset = start_offset(node)
    if offset is None:
        return None, None
    return line_column(sql, offset)


def highlight(sql: str, node: exp.Expression | None, limit: int = 60) -> str | None:
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
