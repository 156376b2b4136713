"""Rule: the text is exactly one SELECT statement.

Why: the engine must only ever run a read of aggregates. Everything else — DDL/DML,
PRAGMA, ATTACH, COPY, SET, INSTALL/LOAD, EXPORT, CALL, a second statement hidden after a
comment — is refused by *not being a SELECT*, an allow-list of one statement kind.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.errors import NotAllowedError, SqlSyntaxError
from query_guard.positions import line_column

_SET_OPERATIONS = (exp.Union, exp.Intersect, exp.Except)


def single_select(draft: Draft) -> None:
    """``draft.select``: the one statement, when it is a SELECT."""
    ctx, statements = draft.ctx, draft.statements
    offsets = draft.starts + [None] * (len(statements) - len(draft.starts))
    present = [(s, o) for s, o in zip(statements, offsets, strict=False) if s is not None]
    if not present:
        raise SqlSyntaxError(
            "the query is empty: expected one SELECT statement (line 1, column 1)",
            line=1,
            column=1,
        )
    if len(present) > 1:
        _refuse_at(
            ctx,
            f"{_describe(present[1][0])} after the first statement: only one statement is allowed",
            present[1][1],
            "multiple_statements",
        )
    statement, offset = present[0]
    if isinstance(statement, _SET_OPERATIONS):
        ctx.refuse(
            NotAllowedError,
            f"set operation {statement.key.upper()}: only a single SELECT is allowed",
            statement,
            code="set_operation",
            keyword=statement.key.upper(),
        )
    if not isinstance(statement, exp.Select):
        _refuse_at(
            ctx,
            f"{_describe(statement)}: only SELECT statements are allowed",
            offset,
            "statement_not_allowed",
        )
    assert isinstance(statement, exp.Select)
    draft.select = statement


def _refuse_at(ctx: Context, message: str, offset: int | None, code: str) -> None:
    line, column = line_column(ctx.sql, offset or 0)
    raise NotAllowedError(
        f"{message} (line {line}, column {column})", code=code, line=line, column=column
    )


def _describe(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Command):
        return f"{str(statement.this).upper()} statement"
    if isinstance(statement, exp.Select):
        return "SELECT statement"
    return f"{statement.key.upper()} statement"
