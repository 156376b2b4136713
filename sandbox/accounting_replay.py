"""Recompute, from the audit log alone, the ε the accountant reported after each charge.

Why here and not in ``audit_log.replay``: the spent ε is the smaller of basic composition
and the zCDP route (decision 0003), and the zCDP route converts ρ to (ε, δ) with OpenDP's
map. ``audit_log`` stays free of OpenDP (its verifier must run anywhere), so the
log-only replay checks the sums (basic ε, ρ) and this module, used by ``sandbox audit
replay``, re-runs ``privacy.accounting`` on the logged charges in log order and flags any
reported ``epsilon_spent`` or ``route`` that the charges do not give.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from audit_log.replay import agree, as_number
from privacy.accounting import Charge, Totals, spent

CHARGED = ("query.released", "query.failed")
RELATIVE_TOLERANCE = 1e-9


def _is_pure(details: Mapping[str, Any]) -> bool:
    scope = details.get("scope")
    delta_total = as_number(details.get("delta_total")) or 0.0
    return delta_total <= 0 or details.get("pure_dp") is True or (
        isinstance(scope, Mapping) and scope.get("pure_dp") is True
    )


def check_reported_loss(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Problems as ``{"approval_id", "seq", "message"}``; empty when every report matches."""
    grants: dict[str, tuple[float, bool]] = {}
    totals: dict[str, Totals] = {}
    problems: list[dict[str, Any]] = []
    for entry in entries:
        action = entry.get("action")
        details = entry.get("details")
        if not isinstance(details, Mapping):
            continue
        aid = str(details.get("approval_id"))
        if action == "approval.granted":
            grants[aid] = (as_number(details.get("delta_total")) or 0.0, _is_pure(details))
            continue
        if action not in CHARGED or aid not in grants:
            continue
        rho = as_number(details.get("rho"))
        charge = Charge(as_number(details.get("epsilon")) or 0.0, as_number(details.get("delta")) or 0.0,
                        rho, as_number(details.get("rho_delta")) or 0.0)
        totals[aid] = totals.get(aid, Totals()).add(charge)
        reported = details.get("budget_after")
        if not isinstance(reported, Mapping) or "route" not in reported:
            continue  # an older entry without the accountant's figures
        delta_total, pure = grants[aid]
        expected = spent(totals[aid], delta_total, pure=pure)
        value = as_number(reported.get("epsilon_spent"))
        message = ""
        if value is None or not agree(value, expected.epsilon):
            message = (f"epsilon_spent reported {value!r}; the logged charges give {expected.epsilon:.12g} "
                       f"by the {expected.route} route (basic {expected.basic_epsilon:.12g}, "
                       f"zCDP {expected.zcdp_epsilon:.12g})")
        elif reported.get("route") != expected.route and not math.isclose(
            expected.basic_epsilon, expected.zcdp_epsilon, rel_tol=RELATIVE_TOLERANCE
        ):
            message = f"route reported {reported.get('route')!r}; the logged charges give {expected.route!r}"
        if message:
            problems.append({"approval_id": aid, "seq": entry.get("seq"), "message": message})
    return problems
