"""Size and depth limits, and the checks of them (``rules/limit_size.py`` says why).

Shared: the parser checks the text and tokens before parsing, ``rules/limit_size.py``
the tree, the resolver each inlined expression, the aggregate split a LIMIT.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from query_guard.context import Context
from query_guard.errors import LimitError

MAX_SQL_CHARS = 20_000
MAX_TOKENS = 2_000
MAX_PAREN_DEPTH = 40
MAX_NODES = 800
MAX_DEPTH = 64
#: after CTEs and subqueries are inlined (their expressions are substituted)
MAX_FLAT_NODES = 4_000
MAX_FLAT_DEPTH = 120
#: characters of string literals after inlining: a CTE's literal is copied into every
#: reference, so 20,000 characters of SQL could become tens of megabytes for the engine
MAX_FLAT_LITERAL_CHARS = 100_000
#: LIMIT n: at most this many released rows (``rules/split_aggregates.py``). A bigger
#: number would only reach the engine's post-processing, which raises on integers past
#: BIGINT (issue 12, finding 5); no released table is near this size.
MAX_RESULT_ROWS = 10_000


def limit_text(sql: str, ctx: Context) -> None:
    if len(sql) > MAX_SQL_CHARS:
        raise LimitError(
            f"query text of {len(sql)} characters is longer than the limit of {MAX_SQL_CHARS}"
            " (line 1, column 1)",
            line=1,
            column=1,
        )


def limit_tokens(tokens: list[Token], ctx: Context) -> None:
    """Token count and parenthesis depth, before the (recursive) parser sees them."""
    if len(tokens) > MAX_TOKENS:
        tok = tokens[MAX_TOKENS]
        ctx.refuse_at(
            LimitError, f"query of {len(tokens)} tokens is past the limit of {MAX_TOKENS}", tok.start
        )
    depth = 0
    unary_run = 0
    for tok in tokens:
        if tok.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE):
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                ctx.refuse_at(
                    LimitError,
                    f"parentheses nested deeper than the limit of {MAX_PAREN_DEPTH}",
                    tok.start,
                )
        elif tok.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE):
            depth = max(0, depth - 1)
        if tok.token_type in (TokenType.NOT, TokenType.DASH, TokenType.PLUS, TokenType.TILDE):
            unary_run += 1
            if unary_run > MAX_PAREN_DEPTH:
                ctx.refuse_at(
                    LimitError,
                    f"operators chained deeper than the limit of {MAX_PAREN_DEPTH}",
                    tok.start,
                )
        else:
            unary_run = 0


def limit_tree(tree: exp.Expr, ctx: Context, *, flat: bool = False) -> None:
    """Node count and depth, computed with an explicit stack (no recursion)."""
    max_nodes = MAX_FLAT_NODES if flat else MAX_NODES
    max_depth = MAX_FLAT_DEPTH if flat else MAX_DEPTH
    count = literal_chars = 0
    stack: list[tuple[exp.Expr, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if flat and isinstance(node, exp.Literal) and node.is_string:
            literal_chars += len(str(node.this))
            if literal_chars > MAX_FLAT_LITERAL_CHARS:
                ctx.refuse(
                    LimitError,
                    f"text literals of more than {MAX_FLAT_LITERAL_CHARS:,} characters once CTEs and"
                    " subqueries are inlined (each reference copies the literal)",
                    node,
                )
        if count > max_nodes:
            ctx.refuse(
                LimitError,
                f"query of more than {max_nodes} syntax nodes is past the limit",
                node,
            )
        if depth > max_depth:
            ctx.refuse(LimitError, f"expression nested deeper than the limit of {max_depth}", node)
        for child in node.iter_expressions():
            stack.append((child, depth + 1))
