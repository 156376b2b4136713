"""Rule: the text is exactly one SELECT statement.

Why: the engine must only ever run a read of aggregates. Everything else — DDL/DML,
PRAGMA, ATTACH, COPY, SET, INSTALL/LOAD, EXPORT, CALL, a second statement hidden after a
comment — is refused by *not being a SELECT*, an allow-list of one statement kind.
"""

from __future__ import annotations

from typing import NoReturn

from sqlglot import exp

from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.errors import NotAllowedError, SqlSyntaxError

SET_OPERATIONS = (exp.Union, exp.Intersect, exp.Except)


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
        ctx.refuse_at(
            NotAllowedError,
            f"{_describe(present[1][0])} after the first statement: only one statement is allowed",
            present[1][1] or 0,
            code="multiple_statements",
        )
    statement, offset = present[0]
    if isinstance(statement, SET_OPERATIONS):
        refuse_set_operation(statement, ctx)
    if not isinstance(statement, exp.Select):
        ctx.refuse_at(
            NotAllowedError,
            f"{_describe(statement)}: only SELECT statements are allowed",
            offset or 0,
            code="statement_not_allowed",
        )
    assert isinstance(statement, exp.Select)
    draft.select = statement


def refuse_set_operation(node: exp.Expr, ctx: Context) -> NoReturn:
    """The one refusal of UNION / INTERSECT / EXCEPT, at the top or nested (``allow_nodes``)."""
    ctx.refuse(
        NotAllowedError,
        f"set operation {node.key.upper()}: only a single SELECT is allowed",
        node,
        code="set_operation",
        keyword=node.key.upper(),
    )


def _describe(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Command):
        return f"{str(statement.this).upper()} statement"
    if isinstance(statement, exp.Select):
        return "SELECT statement"
    return f"{statement.key.upper()} statement"
