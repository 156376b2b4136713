"""The guard's one root exception and its structured subclasses.

Every refusal carries a stable ``code`` (clients and fixtures match on it), a one-line
``message`` naming the construct and the rule it broke, and the ``line``/``column``
(1-based) of the offending construct in the submitted SQL, as sqlglot's own errors do.
"""

from __future__ import annotations


class GuardError(Exception):
    """The SQL was refused. ``code`` is stable; ``message`` is for people."""

    code = "guard_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        line: int | None = None,
        column: int | None = None,
        highlight: str | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.line = line
        self.column = column
        self.highlight = highlight

    @property
    def position(self) -> dict[str, int] | None:
        """``{"line", "column"}`` for the API's error shape, or None when unknown."""
        if self.line is None:
            return None
        return {"line": self.line, "column": self.column or 1}


class SqlSyntaxError(GuardError):
    code = "sql_syntax"


class NotAllowedError(GuardError):
    """A construct outside the allow-list (statement kind, function, node type)."""

    code = "not_allowed"


class ScopeError(GuardError):
    """A table or column outside the approved scenario (第十五、二十六条)."""

    code = "out_of_scope"


class IdentifierColumnError(GuardError):
    """An identifier column used anywhere in the query."""

    code = "identifier_column"


class RowLevelOutputError(GuardError):
    """An output column that is neither an aggregate nor a group key."""

    code = "row_level_output"


class BoundsError(GuardError):
    """A value whose bounds cannot be derived, so its sensitivity is unknown."""

    code = "unbounded"


class LimitError(GuardError):
    """The query is past a size or depth limit."""

    code = "too_complex"


class PrivacyUnitError(GuardError):
    """The privacy unit used other than in COUNT(DISTINCT unit) or the join condition.

    Grouping, filtering or computing on the unit would single people out.
    """

    code = "privacy_unit"


class TypeMismatchError(GuardError):
    """A value of the wrong type for its place (e.g. SUM over text).

    Caught here rather than by the engine so that no query reaches execution only to
    fail; binder errors depend on the schema only, but refusing early is clearer.
    """

    code = "type_error"


class ImplicitCastError(TypeMismatchError):
    """A value the engine would convert to another type family *at run time*.

    SECURITY: DuckDB casts such a value per row, only when a row reaches it, so a
    conversion failure is an error that depends on the data (issue 12, finding 1). A
    text literal next to a date is converted at plan time when it is a valid
    ``YYYY-MM-DD`` date; anything else is refused here, before any data is read.
    """

    code = "implicit_cast"


class ResultLimitError(NotAllowedError):
    """LIMIT past the documented maximum (``rules/limit_size.MAX_RESULT_ROWS``)."""

    code = "limit_out_of_range"


#: Every code the guard can raise, for the docs table and the fixture checker.
ERROR_CODES: dict[str, str] = {
    "sql_syntax": "The text is not one parseable SQL statement.",
    "too_complex": "Past a size or depth limit (text length, tokens, nesting, nodes).",
    "multiple_statements": "More than one statement in the submitted text.",
    "statement_not_allowed": "A statement other than SELECT (DDL, DML, PRAGMA, ATTACH, COPY, SET…).",
    "set_operation": "UNION / INTERSECT / EXCEPT.",
    "window_function": "A window function (OVER …) in researcher SQL.",
    "recursive_cte": "WITH RECURSIVE.",
    "function_not_allowed": "A function that is not on the allow-list.",
    "not_allowed": "A construct (node type) that is not on the allow-list.",
    "table_function": "A table function (read_csv, range, …) used as a table.",
    "file_access": "A quoted string or quoted identifier used as a table (a file path to DuckDB).",
    "cross_join": "A cross join or comma join.",
    "join_not_allowed": "A join other than one equi-join of two datasets on their privacy unit.",
    "reserved_name": "An identifier starting with `__` (reserved for the rewritten query).",
    "out_of_scope": "A dataset, column, grouping or aggregate outside the approved scenario.",
    "identifier_column": "An identifier column (name, ID number, phone…) used anywhere.",
    "privacy_unit": "The privacy unit used other than COUNT(DISTINCT unit) or the join key.",
    "row_level_output": "An output column that is neither an aggregate nor a group key.",
    "nested_aggregate": "An aggregate inside another aggregate, WHERE, GROUP BY or a subquery.",
    "unbounded": "An aggregated value whose bounds cannot be derived.",
    "type_error": "A value of the wrong type for its place.",
    "implicit_cast": "A value the engine would convert between type families at run time"
    " (a text literal that is not a valid YYYY-MM-DD date next to a date, IS TRUE on a"
    " non-boolean, text compared with a number in HAVING).",
    "limit_out_of_range": "LIMIT above the maximum number of released rows (10000).",
}
