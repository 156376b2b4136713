"""The public transparency page (as OpenSAFELY publishes every job; 第十六、二十二条).

Per dataset in the public catalog: its collusion cap (the total budget of all researchers
together, :mod:`sandbox.dataset_caps`) and what is spent of it, and every approved project
with its scenario title, the budget granted and spent, and how many releases and refusals
it has had — never a result, a query text or a researcher's name. Readable without login.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox import authz, catalog, dataset_caps, ledger, workflow
from sandbox.clock import iso
from sandbox.users import User

if TYPE_CHECKING:
    from sandbox.service import Sandbox


def page(sb: Sandbox, user: User | None) -> dict[str, Any]:
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
        if authz.decide("dataset.read", "anonymous", catalog.relations(conn, None, row)) != "allow":
            continue
        projects = []
        for a in approvals:
            if row["name"] not in a.datasets:
                continue
            b = ledger.budget(conn, a.id)
            c = counts.get(a.id, {})
            projects.append({
                "approval_id": a.id, "scenario": scenarios.get(a.application_id, ""),
                "granted_at": a.created_at, "expires_at": a.expires_at,
                "status": workflow.approval_status(conn, a, now=sb.now),
                "datasets": a.datasets,
                "budget": {"epsilon_granted": b.epsilon_total, "epsilon_spent": b.epsilon_spent,
                           "delta_granted": b.delta_total, "delta_spent": b.delta_spent},
                "releases": c.get("released", 0), "charged_failures": c.get("failed", 0),
                "refusals": c.get("refused", 0),
            })
        cap = dataset_caps.status(conn, row["name"])
        budget_cap = {"epsilon_total": cap.cap.epsilon_total, "epsilon_spent": cap.epsilon_spent,
                      "delta_total": cap.cap.delta_total, "delta_spent": cap.delta_spent,
                      "releases": cap.releases, "source": cap.cap.source, "set_at": cap.cap.set_at}
        out.append({"dataset": row["name"], "title": row["title"], "tier": row["tier"], "budget_cap": budget_cap,
                    "projects": projects})
    return {"generated_at": iso(sb.now()), "datasets": out}
