"""The privacy-budget ledger: what each approval has spent (basic composition).

The ledger is append-only (triggers) and every row mirrors a ``query.released`` or
``query.failed`` audit entry committed in the same transaction, so a replay of the audit
log reproduces it exactly.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sandbox.clock import Clock, iso
from sandbox.errors import BudgetExceeded

# Float sums can differ in the last bits; never let that refuse a query that fits.
TOLERANCE = 1e-12


@dataclass(frozen=True)
class Budget:
    approval_id: int
    epsilon_total: float
    delta_total: float
    epsilon_spent: float
    delta_spent: float
    epsilon_per_query: float
    releases: int

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_total - self.epsilon_spent)

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.delta_total - self.delta_spent)

    def as_dict(self) -> dict[str, object]:
        return {
            "approval_id": self.approval_id,
            "epsilon": {"total": self.epsilon_total, "spent": self.epsilon_spent,
                        "remaining": self.epsilon_remaining},
            "delta": {"total": self.delta_total, "spent": self.delta_spent,
                      "remaining": self.delta_remaining},
            "epsilon_per_query": self.epsilon_per_query,
            "releases": self.releases,
        }


def budget(conn: sqlite3.Connection, approval_id: int) -> Budget:
    row = conn.execute(
        "SELECT a.id, a.epsilon_total, a.delta_total, a.epsilon_per_query, "
        "COALESCE(SUM(l.epsilon), 0) AS eps, COALESCE(SUM(l.delta), 0) AS dlt, COUNT(l.id) AS n "
        "FROM approvals a LEFT JOIN ledger l ON l.approval_id = a.id WHERE a.id = ? GROUP BY a.id",
        (approval_id,),
    ).fetchone()
    return Budget(row["id"], row["epsilon_total"], row["delta_total"], row["eps"], row["dlt"],
                  row["epsilon_per_query"], row["n"])


def ensure_affordable(b: Budget, epsilon: float, delta: float) -> None:
    if epsilon > b.epsilon_remaining + TOLERANCE or delta > b.delta_remaining + TOLERANCE:
        raise BudgetExceeded(
            f"this query needs ε = {epsilon:g}" + (f", δ = {delta:g}" if delta else "")
            + f" but approval {b.approval_id} has ε = {b.epsilon_remaining:g}"
            + (f", δ = {b.delta_remaining:g}" if delta else "")
            + " left; ask the data owner for more budget or lower epsilon"
        )


def charge(conn: sqlite3.Connection, approval_id: int, query_id: str, epsilon: float, delta: float, *, now: Clock) -> Budget:
    """Record a charge; call inside the release transaction after :func:`ensure_affordable`."""
    conn.execute(
        "INSERT INTO ledger (approval_id, query_id, epsilon, delta, created_at) VALUES (?,?,?,?,?)",
        (approval_id, query_id, epsilon, delta, iso(now())),
    )
    return budget(conn, approval_id)
