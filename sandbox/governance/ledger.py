"""The privacy-budget ledger: what each approval (and each dataset version) has spent.

Every row is one release's :class:`privacy.Charge` — ε and δ (basic composition) and,
when the store has the columns, ρ and δz (zCDP) — mirroring a ``query.released`` or
``query.failed`` audit entry committed in the same transaction, so a replay of the
audit log reproduces it. Each approval runs one privacy filter whose route (basic
composition, or zCDP converted by OpenDP) is fixed from the approval's own terms
(``privacy.accounting.choose_route``, decision 0007).

Tolerant of older stores: without the ``rho`` column every release counts by basic
composition in both routes (exactly the old behaviour); without the caps tables there
is no global cap. Migration 2 (``sandbox.store.migrations``) adds them.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from privacy.accounting import TOLERANCE, Charge, Route, Spent, Totals, choose_route, fits, spent
from sandbox.clock import Clock, iso
from sandbox.errors import BudgetExceeded, NotFound
from sandbox.governance import dataset_caps

__all__ = ["TOLERANCE", "Budget", "budget", "charge", "check_global_cap", "ensure_affordable"]

def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (table,)).fetchone() is not None


@dataclass(frozen=True)
class Budget:
    approval_id: int
    epsilon_total: float
    delta_total: float
    epsilon_spent: float  # the fixed route's figure at delta_total (privacy.accounting.spent)
    delta_spent: float  # Σδ (basic composition)
    epsilon_per_query: float
    releases: int
    pure_dp: bool = False
    totals: Totals = field(default_factory=Totals)
    accounting: Spent | None = None
    #: The approval's filter, fixed from its own terms (privacy.accounting.choose_route).
    route: Route = "basic"

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_total - self.epsilon_spent)

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.delta_total - self.delta_spent)

    @property
    def rho_spent(self) -> float:
        return self.totals.rho

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "approval_id": self.approval_id,
            "epsilon": {"total": self.epsilon_total, "spent": self.epsilon_spent,
                        "remaining": self.epsilon_remaining},
            "delta": {"total": self.delta_total, "spent": self.delta_spent,
                      "remaining": self.delta_remaining},
            "epsilon_per_query": self.epsilon_per_query,
            "releases": self.releases,
            "rho": {"spent": self.totals.rho},
            "pure_dp": self.pure_dp,
            "route": self.route,
        }
        if self.accounting is not None:
            out["accounting"] = self.accounting.as_dict()
        return out


def is_pure(row: sqlite3.Row | Any) -> bool:
    """Whether the owner requires pure ε-DP: ``approvals.pure_dp`` when the column exists,
    else ``"pure_dp": true`` in the approval's scope; δ_total = 0 implies it."""
    keys = row.keys() if isinstance(row, sqlite3.Row) else []
    if "pure_dp" in keys and row["pure_dp"]:
        return True
    scope = getattr(row, "scope", None)
    if scope is None and "scope_json" in keys:
        scope = json.loads(row["scope_json"] or "{}")
    if isinstance(scope, dict) and scope.get("pure_dp") is True:
        return True
    if getattr(row, "pure_dp", False) is True:
        return True
    delta_total = row["delta_total"] if "delta_total" in keys else getattr(row, "delta_total", None)
    return delta_total == 0


def _totals_where(conn: sqlite3.Connection, where: str, args: tuple[Any, ...],
                  join: str = "") -> Totals:
    cols = _columns(conn, "ledger")
    rho = "l.rho" if "rho" in cols else "NULL"
    rho_delta = "l.rho_delta" if "rho_delta" in cols else "0"
    row = conn.execute(
        f"SELECT COALESCE(SUM(l.epsilon), 0), COALESCE(SUM(l.delta), 0), "
        f"COALESCE(SUM({rho}), 0), "
        f"COALESCE(SUM(CASE WHEN {rho} IS NOT NULL THEN {rho_delta} END), 0), "
        f"COALESCE(SUM(CASE WHEN {rho} IS NULL THEN l.epsilon END), 0), "
        f"COALESCE(SUM(CASE WHEN {rho} IS NULL THEN l.delta END), 0), COUNT(l.id) "
        f"FROM ledger l {join} WHERE {where}",
        args,
    ).fetchone()
    e, d, r, rd, oe, od = (float(x) for x in row[:6])
    return Totals(e, d, r, rd, oe, od, releases=int(row[6]))


def approval_totals(conn: sqlite3.Connection, approval_id: int) -> Totals:
    return _totals_where(conn, "l.approval_id = ?", (approval_id,))


def budget(conn: sqlite3.Connection, approval_id: int) -> Budget:
    """The approval's budget on its fixed route (``choose_route`` of its own terms)."""
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    pure = is_pure(row)
    t = approval_totals(conn, approval_id)
    # Σε²/2 over releases without a zCDP bound (BS16 Prop. 1.13), for the zcdp route.
    no_rho = "rho IS NULL" if "rho" in _columns(conn, "ledger") else "1"
    other = conn.execute(f"SELECT COALESCE(SUM(epsilon * epsilon), 0) FROM ledger "
                         f"WHERE approval_id = ? AND {no_rho}", (approval_id,)).fetchone()[0]
    t = replace(t, other_rho=float(other) / 2)
    route = choose_route(row["epsilon_total"], row["delta_total"], row["epsilon_per_query"], pure)
    s = spent(t, row["delta_total"], pure=pure, route=route, epsilon_total=row["epsilon_total"])
    return Budget(row["id"], row["epsilon_total"], row["delta_total"], s.epsilon, t.delta,
                  row["epsilon_per_query"], t.releases, pure, t, s, route)


def ensure_affordable(b: Budget, epsilon: float, delta: float = 0.0, *, rho: float | None = None,
                      rho_delta: float = 0.0) -> None:
    """Refuse unless the release (ε, δ[, ρ, δz]) fits the approval's filter (its fixed route)."""
    c = Charge(epsilon, delta, rho, rho_delta)
    if fits(b.totals, c, b.epsilon_total, b.delta_total, pure=b.pure_dp, route=b.route):
        return
    after = spent(b.totals.add(c), b.delta_total, pure=b.pure_dp, route=b.route,
                  epsilon_total=b.epsilon_total)
    if b.route == "zcdp":
        rho_t = after.rho_budget or 0.0
        shown = (f"ρ = {after.totals.zcdp_rho:g} of its zCDP budget ρ = {rho_t:g}"
                 if after.totals.zcdp_rho > rho_t else "beyond its δ")
    else:
        shown = "beyond its δ" if not math.isfinite(after.epsilon) else f"ε = {after.epsilon:g}"
    raise BudgetExceeded(
        f"this query needs ε = {epsilon:g}" + (f", δ = {delta:g}" if delta else "")
        + f" but approval {b.approval_id} has ε = {b.epsilon_remaining:g}"
        + (f", δ = {b.delta_remaining:g}" if delta else "")
        + f" left (with it the approval would be at {shown} of ε = {b.epsilon_total:g});"
        " ask the data owner for more budget or lower epsilon"
    )


def charge(conn: sqlite3.Connection, approval_id: int, query_id: str, epsilon: float, delta: float,
           *, now: Clock, rho: float | None = None, rho_delta: float = 0.0,
           dataset_versions: Iterable[int] = ()) -> Budget:
    """Record a charge; call inside the release transaction after :func:`ensure_affordable`.

    ``rho``/``rho_delta`` are stored when the ledger has the columns (else dropped, and
    the release counts by basic composition); ``dataset_versions`` link the charge to
    the versions it read, for the global caps, when ``ledger_datasets`` exists.
    """
    cols = _columns(conn, "ledger")
    names, values = ["approval_id", "query_id", "epsilon", "delta", "created_at"], [
        approval_id, query_id, epsilon, delta, iso(now())]
    if "rho" in cols:
        names.append("rho")
        values.append(rho)
    if "rho_delta" in cols and rho is not None:
        names.append("rho_delta")
        values.append(rho_delta)
    cur = conn.execute(
        f"INSERT INTO ledger ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", values
    )
    versions = sorted(set(dataset_versions))
    if versions and _has_table(conn, "ledger_datasets"):
        conn.executemany(
            "INSERT INTO ledger_datasets (ledger_id, dataset_version_id) VALUES (?, ?)",
            [(cur.lastrowid, v) for v in versions],
        )
    return budget(conn, approval_id)


# -- the collusion cap per dataset (sandbox.governance.dataset_caps) ----------------------------------
# The caps once set per dataset *version* (table ``dataset_budget_caps``) moved to one cap
# per dataset across all its versions (schema 4); these names stay for existing callers.
@dataclass(frozen=True)
class VersionCap:
    """The cap in force on the dataset of one version, with every release on any version."""

    dataset_version_id: int
    epsilon_total: float
    delta_total: float
    totals: Totals

    def spent(self) -> Spent:
        return spent(self.totals, self.delta_total)


def check_global_cap(spent_on_version: Totals, new: Charge, cap_epsilon: float, cap_delta: float,
                     *, label: str = "this dataset version", route: Route | None = None) -> None:
    """Refuse ``new`` if all approvals' releases on one dataset version would, with it,
    exceed the owner's global cap (ε, δ) — what colluding researchers could learn
    together. One filter with a route fixed from the cap's terms: ``route``, or
    ``choose_route(cap_epsilon, cap_delta)`` (no per-query cap: basic composition)."""
    r = route or choose_route(cap_epsilon, cap_delta)
    if fits(spent_on_version, new, cap_epsilon, cap_delta, route=r):
        return
    now = spent(spent_on_version, cap_delta, route=r)
    raise BudgetExceeded(
        f"{label} has a global privacy cap of ε = {cap_epsilon:g} across all approvals; "
        f"ε = {now.epsilon:g} is spent and this query would exceed it",
        code="global_budget_exceeded",
    )


def version_caps(conn: sqlite3.Connection, version_ids: Iterable[int]) -> list[VersionCap]:
    """The caps an owner or a policy *set* on the datasets of these versions (the default cap
    is not listed), each with what every approval has spent on any version of the dataset."""

    out = []
    for vid in sorted(set(version_ids)):
        row = conn.execute("SELECT d.name FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
                           "WHERE v.id = ?", (vid,)).fetchone()
        if row is None:
            continue
        st = dataset_caps.status(conn, row[0])
        if st.cap.source == "default":
            continue
        t = _totals_where(conn, "l.id IN (SELECT d.ledger_id FROM ledger_datasets d JOIN dataset_versions v "
                          "ON v.id = d.dataset_version_id JOIN datasets s ON s.id = v.dataset_id "
                          "WHERE s.name = ?)", (row[0],))
        out.append(VersionCap(vid, st.cap.epsilon_total, st.cap.delta_total, t))
    return out


def ensure_within_global_caps(conn: sqlite3.Connection, version_ids: Iterable[int],
                              c: Charge) -> None:
    """The collusion cap of every dataset the query reads: :func:`sandbox.governance.dataset_caps.ensure_within`."""

    dataset_caps.ensure_within(conn, version_ids, c)


def set_global_cap(conn: sqlite3.Connection, dataset_version_id: int, epsilon_total: float,
                   delta_total: float, *, now: Clock, set_by: int | None = None) -> None:
    """Set the collusion cap of the dataset of one version, in the caller's transaction,
    without an audit entry (owners use :func:`sandbox.governance.dataset_caps.set_cap`, which logs)."""

    row = conn.execute("SELECT dataset_id FROM dataset_versions WHERE id = ?", (dataset_version_id,)).fetchone()
    if row is None:
        raise NotFound(f"no dataset version {dataset_version_id}")
    newest = conn.execute("SELECT MAX(id) FROM dataset_versions WHERE dataset_id = ?", (row[0],)).fetchone()[0]
    conn.execute(
        "INSERT INTO dataset_budget_cap_changes (dataset_id, epsilon_total, delta_total, source, "
        "after_version_id, reason, set_by, created_at) VALUES (?,?,?, 'owner', ?, 'set_global_cap', ?, ?)",
        (row[0], epsilon_total, delta_total, newest, set_by, iso(now())),
    )
