"""The one sum of the budget ledger's rows (table ``ledger``; ρ and δz since migration 2).

Every figure that adds charges up reads this one query, so none can disagree with another:
an approval's budget (``sandbox.governance.ledger``), a dataset's collusion cap
(``sandbox.governance.dataset_caps``), the transparency page, and the replay of the audit log
against the ledger (console, CLI, backup). It sits in the store rather than beside the
accounting in ``sandbox.governance.ledger`` because the backup, a store module, compares the
ledger with the log too. NULL-safe: an empty selection sums to zero.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final, Literal

from privacy.accounting import Totals

Group = Literal["approval", "status"]
_GROUPS: Final[dict[str, str]] = {"approval": "l.approval_id", "status": "q.status"}
_SUMS: Final = (
    "COALESCE(SUM(l.epsilon), 0), COALESCE(SUM(l.delta), 0), COALESCE(SUM(l.rho), 0), "
    "COALESCE(SUM(CASE WHEN l.rho IS NOT NULL THEN l.rho_delta END), 0), "
    "COALESCE(SUM(CASE WHEN l.rho IS NULL THEN l.epsilon END), 0), "
    "COALESCE(SUM(CASE WHEN l.rho IS NULL THEN l.delta END), 0), COUNT(l.id), "
    "COALESCE(SUM(CASE WHEN l.rho IS NULL THEN l.epsilon * l.epsilon END), 0)"
)


def ledger_sums(conn: sqlite3.Connection, *, approval_id: int | None = None, dataset_id: int | None = None,
                by: tuple[Group, ...] = ()) -> dict[tuple[Any, ...], Totals]:
    """Σ of the charges selected — one approval's, those linked (``ledger_datasets``) to any
    version of one dataset, or all — per value of ``by`` (``()``: one total, under key ``()``,
    zero when nothing matches; ``"status"`` is the status of the charged query).

    Releases without a zCDP bound count by basic composition (``Totals.other_*``), with
    ``other_rho`` = Σε²/2 over them (Bun and Steinke 2016, Prop. 1.13).
    """
    keys = [_GROUPS[g] for g in by]
    where, args = ["1"], []
    if approval_id is not None:
        where.append("l.approval_id = ?")
        args.append(approval_id)
    if dataset_id is not None:
        where.append("l.id IN (SELECT d.ledger_id FROM ledger_datasets d JOIN dataset_versions v "
                     "ON v.id = d.dataset_version_id WHERE v.dataset_id = ?)")
        args.append(dataset_id)
    join = " JOIN queries q ON q.id = l.query_id" if "status" in by else ""
    group = f" GROUP BY {', '.join(keys)} ORDER BY {', '.join(keys)}" if keys else ""
    rows = conn.execute(f"SELECT {''.join(k + ', ' for k in keys)}{_SUMS} FROM ledger l{join} "
                        f"WHERE {' AND '.join(where)}{group}", args).fetchall()
    n = len(keys)
    out = {}
    for row in map(tuple, rows):
        e, d, r, rd, oe, od = (float(x) for x in row[n:n + 6])
        out[row[:n]] = Totals(e, d, r, rd, oe, od, releases=int(row[n + 6]), other_rho=float(row[n + 7]) / 2)
    return out


def approval_sums(conn: sqlite3.Connection) -> dict[str, tuple[float, float]]:
    """``{approval_id: (Σε, Σδ)}`` of the whole ledger: the shape
    ``audit_log.replay.compare_with_ledger`` takes."""
    return {str(key[0]): (t.epsilon, t.delta) for key, t in ledger_sums(conn, by=("approval",)).items()}
