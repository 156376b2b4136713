"""The query on its way through the rules (:data:`query_guard.planner.RULES`).

sqlglot's optimizer hands one expression from rule to rule; the guard hands a
:class:`Draft`: the parsed statements, then the SELECT, the flattened relation, its
split into keys and aggregates, and the rewritten parts the engine query is assembled
from. Each rule reads what earlier rules left here and adds its own part; a part still
missing when a rule needs it is a bug, refused as such (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from query_guard.context import Context
from query_guard.errors import GuardError

if TYPE_CHECKING:  # the parts' types only; the modules import this one
    from query_guard.relation import Relation
    from query_guard.resolver import Resolver
    from query_guard.rules.bound_contributions import Bounding
    from query_guard.rules.clamp_values import ValueSpec
    from query_guard.shape import Shape
    from query_guard.typer import Typer


@dataclass
class Draft:
    """One query's parts, filled in by the rules in order (each field says by which)."""

    ctx: Context
    #: from the parser: the statements and where each starts in the text
    statements: list[exp.Expr | None] = field(default_factory=list)
    starts: list[int | None] = field(default_factory=list)
    #: ``single_select`` on: the one SELECT (``canonical_functions`` rewrites it)
    select: exp.Select | None = None
    #: ``flatten_subqueries`` on: name resolution and the flattened FROM + WHERE
    resolver: Resolver | None = None
    relation: Relation | None = None
    #: ``split_aggregates`` on: group keys, aggregate calls and post-processing
    shape: Shape | None = None
    #: ``type_bounds`` on: types and bounds; the type of each group key (by column)
    typer: Typer | None = None
    key_types: dict[str, str] = field(default_factory=dict)
    #: ``safe_arithmetic`` on: the engine's filters, join and key expressions
    filters: list[exp.Expr] = field(default_factory=list)
    right_filters: list[exp.Expr] = field(default_factory=list)
    key_exprs: list[exp.Expr] = field(default_factory=list)
    #: ``public_domains`` on: each group key's public domain (None: partition selection)
    domains: list[tuple | None] = field(default_factory=list)
    #: ``clamp_values`` on: each measurement's clamped engine value
    values: dict[str, ValueSpec] = field(default_factory=dict)
    #: ``bound_contributions`` on: the bounding pass
    bounding: Bounding | None = None

    def need(self, part: str) -> Any:
        """``part``, which an earlier rule must have set."""
        value = getattr(self, part)
        if value is None:
            raise GuardError(
                f"internal error while checking the query (no {part} yet); it was refused",
                code="internal_error",
            )
        return value
