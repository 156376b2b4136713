"""Text → sqlglot statements, or a refusal with the position of the problem.

Researchers write PostgreSQL/DuckDB-style SQL, so the DuckDB dialect reads it. Limits on
the text and tokens run before the recursive-descent parser; a RecursionError from the
parser is turned into a ``too_complex`` refusal, never let out. The rules then start
from the statements (``rules/single_select.py`` first).
"""

from __future__ import annotations

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import TokenType

from query_guard.context import Context
from query_guard.draft import Draft
from query_guard.errors import LimitError, NotAllowedError, SqlSyntaxError
from query_guard.limits import limit_text, limit_tokens
from query_guard.positions import line_column

DIALECT = "duckdb"


def parse(ctx: Context) -> Draft:
    """The draft the rules start from: the statements of ``ctx.sql`` and their starts."""
    sql = ctx.sql
    limit_text(sql, ctx)
    dialect = Dialect.get_or_raise(DIALECT)
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as err:
        offset = _token_error_offset(err, sql)
        line, column = line_column(sql, offset)
        raise SqlSyntaxError(
            f"cannot read the text {sql[offset : offset + 20]!r}: unterminated string, quoted"
            f" name or comment? (line {line}, column {column})",
            line=line,
            column=column,
        ) from None
    limit_tokens(tokens, ctx)
    statement_keywords(tokens, ctx)
    try:
        statements = dialect.parser(error_level=ErrorLevel.RAISE).parse(tokens, sql)
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        line = first.get("line") or 1
        column = first.get("col") or 1
        highlight = first.get("highlight") or ""
        # sqlglot reports the column of the token's *last* character.
        column = max(1, column - len(highlight) + 1) if highlight else column
        description = str(first.get("description") or "invalid SQL").split(". Line")[0]
        if "<Token" in description:
            description = description.split(" but got <Token")[0]
        near = f" near {highlight!r}" if highlight else ""
        raise SqlSyntaxError(
            f"syntax error{near}: {description} (line {line}, column {column})",
            line=line,
            column=column,
            highlight=highlight or None,
        ) from None
    except RecursionError:
        raise LimitError(
            "query nested too deeply to read: past the nesting limit", line=1, column=1
        ) from None
    return Draft(ctx, statements, _statement_starts(tokens, len(statements)))


def statement_keywords(tokens: list, ctx: Context) -> None:
    """Before parsing: one statement, starting with SELECT or WITH (allow-list).

    Checking the first keyword on the tokens refuses DDL, PRAGMA, ATTACH, COPY, CALL…
    without handing them to the parser (which would log them as unsupported commands).
    """
    chunks: list[list] = [[]]
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            chunks.append([])
        else:
            chunks[-1].append(tok)
    present = [c for c in chunks if c]
    if len(present) > 1:
        first = present[1][0]
        ctx.refuse_at(
            NotAllowedError,
            f"{first.text.upper()} statement after the first statement: only one statement is"
            " allowed",
            first.start,
            code="multiple_statements",
        )
    if present:
        first = present[0][0]
        if first.token_type not in (TokenType.SELECT, TokenType.WITH, TokenType.L_PAREN):
            ctx.refuse_at(
                NotAllowedError,
                f"{first.text.upper()} statement: only SELECT statements are allowed",
                first.start,
                code="statement_not_allowed",
            )


def _statement_starts(tokens: list, count: int) -> list[int | None]:
    """Offset of each ``;``-separated chunk's first token (sqlglot does not locate
    statements), so a refused statement can be pointed at by its first keyword."""
    starts: list[int | None] = []
    current: int | None = None
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            starts.append(current)
            current = None
        elif current is None:
            current = tok.start
    if current is not None or len(starts) < count:
        starts.append(current)
    return starts


def _token_error_offset(err: TokenError, sql: str) -> int:
    start = err.start or 0
    if start > 0:
        return min(start + 50, max(len(sql) - 1, 0))
    end = err.end if err.end is not None else len(sql) - 1
    if end < len(sql) - 1:
        return max(end - 50, 0)
    # Unknown exactly: point at the last quote that opens an unterminated literal.
    for quote in ("'", '"', "/*"):
        if sql.count(quote) % 2 == 1 or (quote == "/*" and "/*" in sql and "*/" not in sql):
            return sql.rfind(quote)
    return 0
