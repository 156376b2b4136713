"""Rule: the text is exactly one SELECT statement.

Why: the engine must only ever run a read of aggregates. Everything else — DDL/DML,
PRAGMA, ATTACH, COPY, SET, INSTALL/LOAD, EXPORT, CALL, a second statement hidden after a
comment — is refused by *not being a SELECT*, an allow-list of one statement kind.
"""

from __future__ import annotations

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import NotAllowedError, SqlSyntaxError

_SET_OPERATIONS = (exp.Union, exp.Intersect, exp.Except)


def single_select(statements: list[exp.Expression | None], ctx: Context) -> exp.Select:
    present = [s for s in statements if s is not None]
    if not present:
        raise SqlSyntaxError("the query is empty: expected one SELECT statement", line=1, column=1)
    if len(present) > 1:
        ctx.refuse(
            NotAllowedError,
            f"{_describe(present[1])} after the first statement: only one statement is allowed",
            present[1],
            code="multiple_statements",
        )
    statement = present[0]
    if isinstance(statement, _SET_OPERATIONS):
        ctx.refuse(
            NotAllowedError,
            f"set operation {statement.key.upper()}: only a single SELECT is allowed",
            statement,
            code="set_operation",
        )
    if not isinstance(statement, exp.Select):
        ctx.refuse(
            NotAllowedError,
            f"{_describe(statement)}: only SELECT statements are allowed",
            statement,
            code="statement_not_allowed",
        )
    return statement


def _describe(statement: exp.Expression) -> str:
    if isinstance(statement, exp.Command):
        return f"{str(statement.this).upper()} statement"
    if isinstance(statement, exp.Select):
        return "SELECT statement"
    return f"{statement.key.upper()} statement"
