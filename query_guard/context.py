"""What every rule needs: the submitted text (for positions) and the policy inputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from sqlglot import exp

from query_guard.catalog import Catalog
from query_guard.errors import GuardError
from query_guard.positions import highlight, keyword_offset, line_column, locate, start_offset
from query_guard.scenario import Scenario


@dataclass(frozen=True)
class Context:
    sql: str
    scenario: Scenario
    catalog: Catalog

    def refuse(
        self,
        error: type[GuardError],
        message: str,
        node: exp.Expr | None = None,
        *,
        code: str | None = None,
        keyword: str | None = None,
    ) -> NoReturn:
        """Raise ``error`` with the construct's line/column appended to the message.

        ``keyword`` locates clause-level constructs that sqlglot does not position
        (QUALIFY, OFFSET, DISTINCT…): its first occurrence at or after ``node``.
        """
        line, column = locate(self.sql, node)
        if keyword is not None:
            offset = keyword_offset(self.sql, keyword, start_offset(node) if node else None)
            if offset is not None:
                line, column = line_column(self.sql, offset)
        text = message if line is None else f"{message} (line {line}, column {column})"
        raise error(
            text,
            code=code,
            line=line,
            column=column,
            highlight=highlight(self.sql, node),
        )

    def refuse_at(
        self, error: type[GuardError], message: str, offset: int, *, code: str | None = None
    ) -> NoReturn:
        """Raise ``error`` at a character offset, for what sqlglot gives no node (tokens,
        statements): the line/column appended to the message, no highlight."""
        line, column = line_column(self.sql, offset)
        raise error(
            f"{message} (line {line}, column {column})", code=code, line=line, column=column
        )
