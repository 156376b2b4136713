"""The privacy-budget ledger: what each approval (and each dataset version) has spent.

Every row is one release's :class:`privacy.Charge` — ε and δ (basic composition) and,
when the release has a zCDP bound, ρ and δz — mirroring a ``query.released`` or
``query.failed`` audit entry committed in the same transaction, so a replay of the
audit log reproduces it. Each approval runs one privacy filter whose route (basic
composition, or zCDP converted by OpenDP) is fixed from the approval's own terms
(``privacy.accounting.choose_route``, decision 0007).

The schema is the migrations' (``sandbox.store.migrations``; every workspace is migrated when
it is opened): nothing here inspects it. The sums are ``sandbox.store.ledger_sums``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field

from privacy.accounting import TOLERANCE, Charge, Route, Spent, Totals, choose_route, fits, spent
from sandbox.clock import Clock, iso
from sandbox.errors import BudgetExceeded, NotFound
from sandbox.governance import dataset_caps, workflow
from sandbox.store.ledger_sums import ledger_sums

__all__ = ["TOLERANCE", "Budget", "budget", "charge", "check_global_cap", "ensure_affordable"]


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


def budget(conn: sqlite3.Connection, approval_id: int) -> Budget:
    """The approval's budget on its fixed route (``choose_route`` of its own terms)."""
    a = workflow.get_approval(conn, approval_id)
    if a is None:
        raise NotFound(f"no approval {approval_id}")
    t = ledger_sums(conn, approval_id=approval_id)[()]
    route = choose_route(a.epsilon_total, a.delta_total, a.epsilon_per_query, a.pure_dp)
    s = spent(t, a.delta_total, pure=a.pure_dp, route=route, epsilon_total=a.epsilon_total)
    return Budget(a.id, a.epsilon_total, a.delta_total, s.epsilon, t.delta, a.epsilon_per_query,
                  t.releases, a.pure_dp, t, s, route)


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

    Without ``rho`` (no zCDP bound) the release counts by basic composition on both routes;
    ``dataset_versions`` link the charge to the versions it read, for the collusion caps.
    """
    cur = conn.execute(
        "INSERT INTO ledger (approval_id, query_id, epsilon, delta, rho, rho_delta, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (approval_id, query_id, epsilon, delta, rho, rho_delta if rho is not None else 0.0, iso(now())),
    )
    versions = sorted(set(dataset_versions))
    if versions:
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
        row = conn.execute("SELECT d.id, d.name FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
                           "WHERE v.id = ?", (vid,)).fetchone()
        if row is None:
            continue
        st = dataset_caps.status(conn, row[1])
        if st.cap.source == "default":
            continue
        t = ledger_sums(conn, dataset_id=row[0])[()]
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
