"""Query families one ``WHERE`` predicate apart, for the differencing alert (pure: no store).

Each released query is parsed with sqlglot; dropping each top-level conjunct of its ``WHERE``
in turn gives the families it belongs to (:func:`where_parts`, :func:`where_variants`). Every
two members of a family differ by at most one predicate, so differencing two such releases
isolates the rows that predicate singles out (``sandbox.governance.alerts`` counts them).
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from sqlglot import exp, parse_one
from sqlglot.errors import SqlglotError


def _short(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


#: Conjuncts beyond which a query joins no family but its own (bounds the work and the cache).
MAX_CONJUNCTS: Final = 64
PREDICATE_CHARS: Final = 300


@functools.lru_cache(maxsize=2048)  # shared_text re-reads each family's SQL on every pass
def where_parts(sql: str) -> tuple[str, tuple[str, ...]] | None:
    """The query without its ``WHERE`` and the ``WHERE``'s top-level conjuncts, as canonical
    SQL (DuckDB dialect, identifiers lower-cased, comments dropped), conjuncts sorted so
    their order does not matter; ``None`` when the SQL is not one SELECT.

    >>> where_parts("select count(*) from Residents where district = 'A' and age > 30 -- hi")
    ('SELECT COUNT(*) FROM residents', ('age > 30', "district = 'A'"))
    >>> where_parts("SELECT COUNT(*) FROM residents")
    ('SELECT COUNT(*) FROM residents', ())
    """
    try:
        tree = parse_one(sql, read="duckdb")
    except (SqlglotError, RecursionError, ValueError):
        return None
    if not isinstance(tree, exp.Select):
        return None
    where = tree.args.get("where")
    conjuncts: list[exp.Expr] = []
    if where is not None:
        cond = where.this
        conjuncts = list(cond.flatten()) if isinstance(cond, exp.And) else [cond]
        tree = tree.copy()
        tree.set("where", None)
    base = tree.sql(dialect="duckdb", normalize=True, comments=False)
    return base, tuple(sorted(c.sql(dialect="duckdb", normalize=True, comments=False) for c in conjuncts))


def family_text(base: str, kept: Iterable[str]) -> str:
    """The canonical query with the conjuncts ``kept``.

    >>> family_text("SELECT COUNT(*) FROM t", ["b > 1", "a = 1"])
    'SELECT COUNT(*) FROM t WHERE a = 1 AND b > 1'
    """
    conjuncts = sorted(kept)
    return f"{base} WHERE {' AND '.join(conjuncts)}" if conjuncts else base


@dataclass(frozen=True)
class Variants:
    """A query's family keys: its own canonical form and, per top-level conjunct, the form
    without it (each a hash, so the cache stays small), with the conjunct's SQL."""

    full: str
    drops: tuple[tuple[str, str], ...]  # (key without the conjunct, the conjunct's SQL)


@functools.lru_cache(maxsize=2048)
def where_variants(sql: str) -> Variants | None:
    """The families a released query belongs to (cached per SQL text in each process).

    >>> v = where_variants("SELECT COUNT(*) FROM residents WHERE district = 'A' AND age > 30")
    >>> [dropped for _key, dropped in v.drops]
    ['age > 30', "district = 'A'"]
    >>> v.drops[0][0] == where_variants("SELECT COUNT(*) FROM residents WHERE district = 'A'").full
    True
    """
    found = where_parts(sql)
    if found is None:
        return None
    base, parts = found
    drops = () if len(parts) > MAX_CONJUNCTS else tuple(
        (_short(family_text(base, parts[:i] + parts[i + 1:])), parts[i][:PREDICATE_CHARS])
        for i in range(len(parts)))
    return Variants(_short(family_text(base, parts)), drops)


def shared_text(sql: str, key: str) -> str:
    """The readable form of family ``key`` as found in one member's ``sql``."""
    found = where_parts(sql)
    if found is None:
        return ""
    base, parts = found
    for kept in [parts, *(parts[:i] + parts[i + 1:] for i in range(len(parts)))]:
        if _short(family_text(base, kept)) == key:
            return family_text(base, kept)
    return ""


def families(queries: Iterable[tuple[str, str, Variants]]) -> dict[str, dict[str, str]]:
    """Family key → {fingerprint: the predicate that sets it apart ("" for the shared query)}.

    Every two members of a family differ by at most one predicate: each is the family key
    itself or the key plus one conjunct.

    >>> qs = [(f"f{i}", f"q{i}", where_variants(f"SELECT COUNT(*) FROM t WHERE a = 1 AND b > {i}"))
    ...       for i in range(3)]
    >>> fam = families(qs)[where_variants("SELECT COUNT(*) FROM t WHERE a = 1").full]
    >>> sorted(fam.values())
    ['b > 0', 'b > 1', 'b > 2']
    """
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for fingerprint, _query_id, v in queries:
        out[v.full].setdefault(fingerprint, "")
        for family_key, predicate in v.drops:
            out[family_key].setdefault(fingerprint, predicate)
    return out
