"""The public transparency page (as OpenSAFELY publishes every job; 第十六、二十二条).

Per dataset in the public catalog: its collusion cap (the total budget of all researchers
together, :mod:`sandbox.governance.dataset_caps`) and what is spent of it, and every approved project
with its scenario title, the budget granted and spent, and how many releases and refusals
it has had — never a result, a query text or a researcher's name. Readable without login.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sandbox.clock import iso
from sandbox.governance import dataset_access, dataset_caps, ledger, workflow
from sandbox.store import authz
from sandbox.store.context import Context
from sandbox.store.ledger_sums import ledger_sums
from sandbox.store.users import User


def page(sb: Context, user: User | None) -> dict[str, Any]:
    authz.check_role("transparency.read", user)
    conn = sb.conn()
    counts: dict[int, dict[str, int]] = {}
    for r in conn.execute("SELECT approval_id, status, COUNT(*) AS n FROM queries "
                          "WHERE approval_id IS NOT NULL GROUP BY approval_id, status"):
        counts.setdefault(r["approval_id"], {})[r["status"]] = r["n"]
    approvals = workflow.all_approvals(conn)
    scenarios = {r["id"]: r["scenario"] for r in conn.execute("SELECT id, scenario FROM applications")}
    out = []
    for row in conn.execute("SELECT * FROM datasets ORDER BY name").fetchall():
        # The public view, whoever asks: the page is the same for everyone.
        if authz.decide("dataset.read", "anonymous", dataset_access.relations(conn, None, row)) != "allow":
            continue
        projects = []
        touched = _per_dataset(conn, row["id"])
        for a in approvals:
            if row["name"] not in a.datasets:
                continue
            b = ledger.budget(conn, a.id)
            c = counts.get(a.id, {})
            t = touched.get(a.id, {})
            projects.append({
                "approval_id": a.id, "scenario": scenarios.get(a.application_id, ""),
                "granted_at": a.created_at, "expires_at": a.expires_at,
                "status": workflow.approval_status(conn, a, now=sb.now),
                "datasets": a.datasets,
                # issue 14: what this dataset's queries spent and released (basic composition of
                # their charges), not the approval's totals over all its datasets
                "budget": {"epsilon_granted": b.epsilon_total, "epsilon_spent": t.get("epsilon", 0),
                           "delta_granted": b.delta_total, "delta_spent": t.get("delta", 0),
                           "approval_epsilon_spent": b.epsilon_spent, "approval_delta_spent": b.delta_spent},
                "releases": t.get("released", 0), "charged_failures": t.get("failed", 0),
                # a refusal reads no data, so it is not tied to a dataset: the approval's count
                "refusals": c.get("refused", 0),
            })
        cap = dataset_caps.status(conn, row["name"])
        budget_cap = {"epsilon_total": cap.cap.epsilon_total, "epsilon_spent": cap.epsilon_spent,
                      "delta_total": cap.cap.delta_total, "delta_spent": cap.delta_spent,
                      "releases": cap.releases, "source": cap.cap.source, "set_at": cap.cap.set_at}
        out.append({"dataset": row["name"], "title": row["title"], "tier": row["tier"], "budget_cap": budget_cap,
                    "projects": projects})
    return {"generated_at": iso(sb.now()), "datasets": out}


def _per_dataset(conn: sqlite3.Connection, dataset_id: int) -> dict[int, dict[str, Any]]:
    """Per approval: the charges, releases and charged failures of the queries that read a version
    of this dataset (``ledger_datasets`` records the versions each charge covered)."""
    out: dict[int, dict[str, Any]] = {}
    for (approval_id, status), t in ledger_sums(conn, dataset_id=dataset_id, by=("approval", "status")).items():
        d = out.setdefault(approval_id, {"epsilon": 0, "delta": 0})
        d[status] = t.releases
        d["epsilon"] += t.epsilon
        d["delta"] += t.delta
    return out
