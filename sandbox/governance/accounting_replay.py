"""Recompute, from the audit log alone, the ε the accountant reported after each charge.

Why here and not in ``audit_log.replay``: each approval runs one privacy filter whose
route is fixed from the approval's terms (decision 0007), and the zcdp route converts ρ
to (ε, δ) with OpenDP's map. ``audit_log`` stays free of OpenDP (its verifier must run
anywhere), so the log-only replay checks the sums (basic ε, ρ) and this module, used by
``sandbox audit replay``, re-derives each approval's route from its ``approval.granted``
entry (ε_total, δ_total, epsilon_per_query, pure flag: the same
``privacy.accounting.choose_route``), re-runs ``privacy.accounting`` on the logged
charges in log order, and flags any reported ``epsilon_spent`` or ``route`` that the
charges do not give.

Which entries are charges: ``query.started`` (the charge is recorded before the engine
runs; the outcome entry that follows references it by ``start_seq``), and, in older logs
written before the charge moved there, ``query.released`` / ``query.failed`` entries
without a ``start_seq``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from audit_log.actions import Action
from audit_log.replay import agree, as_number
from privacy.accounting import Charge, Route, Totals, choose_route, spent

#: Entries that always carry a charge.
STARTED = Action.QUERY_STARTED
#: Outcome entries: a charge only in older logs (no ``start_seq`` to a started entry).
OUTCOMES = (Action.QUERY_RELEASED, Action.QUERY_FAILED)
CHARGED = (STARTED, *OUTCOMES)


@dataclass(frozen=True)
class Grant:
    """An approval's terms as logged when it was granted, and the route they fix."""

    epsilon_total: float
    delta_total: float
    epsilon_per_query: float | None
    pure: bool

    @property
    def route(self) -> Route:
        return choose_route(self.epsilon_total, self.delta_total, self.epsilon_per_query, self.pure)


def _is_pure(details: Mapping[str, Any]) -> bool:
    scope = details.get("scope")
    delta_total = as_number(details.get("delta_total")) or 0.0
    return delta_total <= 0 or details.get("pure_dp") is True or (
        isinstance(scope, Mapping) and scope.get("pure_dp") is True
    )


def grant_of(details: Mapping[str, Any]) -> Grant:
    """The terms of an ``approval.granted`` entry. Without ``epsilon_per_query`` (not
    logged) the route is chosen as for an approval with no per-query cap (basic)."""
    return Grant(as_number(details.get("epsilon_total")) or 0.0,
                 as_number(details.get("delta_total")) or 0.0,
                 as_number(details.get("epsilon_per_query")), _is_pure(details))


def is_charge(action: Any, details: Mapping[str, Any]) -> bool:
    """Whether this entry records a charge (see the module docstring)."""
    if action == STARTED:
        return True
    return action in OUTCOMES and "start_seq" not in details


def check_reported_loss(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Problems as ``{"approval_id", "seq", "message"}``; empty when every report matches."""
    grants: dict[str, Grant] = {}
    totals: dict[str, Totals] = {}
    problems: list[dict[str, Any]] = []
    for entry in entries:
        action = entry.get("action")
        details = entry.get("details")
        if not isinstance(details, Mapping):
            continue
        aid = str(details.get("approval_id"))
        if action == Action.APPROVAL_GRANTED:
            grants[aid] = grant_of(details)
            continue
        if not is_charge(action, details) or aid not in grants:
            continue
        rho = as_number(details.get("rho"))
        charge = Charge(as_number(details.get("epsilon")) or 0.0, as_number(details.get("delta")) or 0.0,
                        rho, as_number(details.get("rho_delta")) or 0.0)
        totals[aid] = totals.get(aid, Totals()).add(charge)
        reported = details.get("budget_after")
        if not isinstance(reported, Mapping) or "route" not in reported:
            continue  # an older entry without the accountant's figures
        g = grants[aid]
        expected = spent(totals[aid], g.delta_total, pure=g.pure, route=g.route,
                         epsilon_total=g.epsilon_total)
        value = as_number(reported.get("epsilon_spent"))
        message = ""
        if reported.get("route") != expected.route:
            message = (f"route reported {reported.get('route')!r}; the approval's terms fix "
                       f"{expected.route!r}")
        elif value is None or not agree(value, expected.epsilon):
            message = (f"epsilon_spent reported {value!r}; the logged charges give {expected.epsilon:.12g} "
                       f"on the approval's {expected.route} route (basic {expected.basic_epsilon:.12g}, "
                       f"zCDP {expected.zcdp_epsilon:.12g})")
        if message:
            problems.append({"approval_id": aid, "seq": entry.get("seq"), "message": message})
    return problems
