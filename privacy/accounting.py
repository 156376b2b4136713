"""Budget arithmetic: what one release costs and what an approval's releases have spent.

Each release is described by a :class:`Charge` holding two valid views of it:

* **(ε, δ)**: the release is (ε, δ)-DP (OpenDP's map, or basic composition of its parts).
* **zCDP**: the release is δz-approximately ρ-zCDP (Bun, Steinke 2016, Def. 8.1) when
  ``rho`` is set (a pure ε release has ρ = ε²/2, BS16 Prop. 1.4, OpenDP's
  ``make_pureDP_to_zCDP``). A release with no zCDP bound (``rho is None``, e.g. Laplace
  partition selection, which OpenDP analyses only in (ε, δ)) is (ε, δ)-DP, hence
  δ-approximately (ε²/2)-zCDP (BS16 Prop. 1.13).

One approval runs **one** privacy filter, whose kind (its *route*) is fixed when the
approval is granted, by :func:`choose_route`, from the approval's own parameters
(ε_T, δ_T, per-query cap, pure flag) — never from the data or from the queries asked
(decision 0007; the old min-of-routes accountant of decision 0003 re-chose the route at
every step, which no filter theorem covers):

* ``basic`` — continue while Σε ≤ ε_T and Σδ ≤ δ_T. Valid for adaptively chosen (ε_i, δ_i)
  and an adaptive stopping rule: the basic-composition privacy filter (Rogers, Roth,
  Ullman, Vadhan 2016, "Privacy odometers and filters: pay-as-you-go composition",
  Thm 3.6; Whitehouse, Ramdas, Rogers, Wu 2023, "Fully-adaptive composition in
  differential privacy").
* ``zcdp`` — the δ is split once, in advance: δ_conv = δ_T / 2 converts zCDP to (ε, δ),
  the rest pays the releases' δz. ρ_T is the largest ρ whose conversion at δ_conv is
  ≤ ε_T (OpenDP's ``make_zCDP_to_approxDP`` map, Canonne, Kamath, Steinke 2020).
  Continue while Σρ ≤ ρ_T and Σδz ≤ δ_T − δ_conv. A Rényi filter at every order α at once
  (Feldman, Zrnic 2021, "Individual privacy accounting via a Rényi filter", Thm 3.1)
  makes the whole interaction ρ_T-zCDP whatever the adaptivity; with the δz of
  approximate zCDP, the approximate-zCDP filter of Whitehouse et al. 2023 makes it
  (δ_T − δ_conv)-approximately ρ_T-zCDP; any valid zCDP → (ε, δ) conversion of the
  *fixed* budget ρ_T then gives (ε_T, δ_T)-DP.

The reported spent ε is a running figure on the fixed route: Σε (basic), or the conversion
of the realised Σρ at the fixed δ_conv (zcdp) — monotone, ≤ ε_T while the filter holds.
The guarantee itself is the filter's: (ε_T, δ_T) for the whole approval.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Literal

from privacy.errors import PrivacyError
from privacy.zcdp import epsilon_from_rho, rho_for_epsilon

#: Float sums can differ in the last bits; never let that refuse a release that fits.
TOLERANCE = 1e-12

#: The share of an approval's δ that converts its zCDP budget to (ε, δ) on the zcdp route;
#: the rest pays the releases' own δ (partition selection).
CONVERSION_SHARE = 0.5

Route = Literal["basic", "zcdp"]
ROUTES: tuple[Route, ...] = ("basic", "zcdp")


@dataclass(frozen=True)
class Charge:
    """What one release costs, from OpenDP's maps of the measurements it applied."""

    epsilon: float
    delta: float = 0.0
    rho: float | None = None
    rho_delta: float = 0.0

    def as_dict(self) -> dict[str, float | None]:
        return {"epsilon": self.epsilon, "delta": self.delta, "rho": self.rho,
                "rho_delta": self.rho_delta}

    @property
    def zcdp(self) -> tuple[float, float]:
        """(ρ, δz) of this release: its own zCDP bound, else (ε²/2, δ) by BS16 Prop. 1.13."""
        if self.rho is not None:
            return self.rho, self.rho_delta
        return self.epsilon * self.epsilon / 2, self.delta


FREE = Charge(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Totals:
    """Sufficient statistics of a sequence of charges (what the ledger sums).

    ``other_rho`` is Σε²/2 over the releases without a zCDP bound; ``None`` when whoever
    summed did not compute it, and then bounded by (Σε_other)²/2 ≥ Σε²_other/2.
    """

    epsilon: float = 0.0
    delta: float = 0.0
    rho: float = 0.0
    rho_delta: float = 0.0
    other_epsilon: float = 0.0
    other_delta: float = 0.0
    releases: int = 0
    other_rho: float | None = None

    @property
    def other_rho_bound(self) -> float:
        if self.other_rho is not None:
            return self.other_rho
        return self.other_epsilon * self.other_epsilon / 2

    @property
    def zcdp_rho(self) -> float:
        """Σρ the zCDP filter counts (releases without ρ at ε²/2, BS16 Prop. 1.13)."""
        return self.rho + self.other_rho_bound

    @property
    def zcdp_delta(self) -> float:
        """Σδz the zCDP filter counts (releases without ρ at their δ)."""
        return self.rho_delta + self.other_delta

    def add(self, c: Charge) -> Totals:
        with_rho = c.rho is not None
        return Totals(
            epsilon=self.epsilon + c.epsilon,
            delta=self.delta + c.delta,
            rho=self.rho + (c.rho or 0.0),
            rho_delta=self.rho_delta + (c.rho_delta if with_rho else 0.0),
            other_epsilon=self.other_epsilon + (0.0 if with_rho else c.epsilon),
            other_delta=self.other_delta + (0.0 if with_rho else c.delta),
            releases=self.releases + 1,
            other_rho=self.other_rho_bound + (0.0 if with_rho else c.epsilon * c.epsilon / 2),
        )

    @classmethod
    def of(cls, charges: list[Charge] | tuple[Charge, ...]) -> Totals:
        out = cls()
        for c in charges:
            out = out.add(c)
        return out


@dataclass(frozen=True)
class Spent:
    """An approval's spent budget on its fixed route: ``epsilon`` is that route's figure.

    ``basic_epsilon`` (always) and ``zcdp_epsilon`` (on the zcdp route; NaN, shown as null,
    on the basic route) are for information; ``route`` is the approval's fixed route and
    alone decides ``epsilon`` and what fits.
    """

    epsilon: float
    route: Route
    basic_epsilon: float
    zcdp_epsilon: float
    delta_total: float
    totals: Totals = field(default_factory=Totals)
    conversion_delta: float = 0.0
    rho_budget: float | None = None

    def as_dict(self) -> dict[str, object]:
        def num(x: float | None) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        return {
            "route": self.route,
            "basic": {"epsilon": num(self.basic_epsilon), "delta": self.totals.delta},
            "zcdp": {"rho": self.totals.zcdp_rho, "rho_budget": num(self.rho_budget),
                     "delta": self.totals.zcdp_delta, "epsilon": num(self.zcdp_epsilon),
                     "at_delta": self.conversion_delta},
        }


# -- the route, fixed per approval ---------------------------------------------------------
def conversion_delta(delta_total: float) -> float:
    """δ_conv: the fixed part of δ_T that converts the zcdp route's ρ_T to (ε, δ)."""
    return delta_total * CONVERSION_SHARE if delta_total > 0 else 0.0


@functools.lru_cache(maxsize=4096)
def zcdp_budget(epsilon_total: float, delta_total: float) -> float:
    """ρ_T: the largest ρ whose OpenDP conversion at δ_conv is ≤ ε_T (0 without δ)."""
    d = conversion_delta(delta_total)
    if not (epsilon_total > 0 and 0 < d < 1):
        return 0.0
    try:
        return rho_for_epsilon(epsilon_total, d)
    except PrivacyError:  # pragma: no cover - ε_T, δ_conv out of the calibrator's range
        return 0.0


@functools.lru_cache(maxsize=4096)
def choose_route(epsilon_total: float, delta_total: float, epsilon_per_query: float | None = None,
                 pure: bool = False) -> Route:
    """The approval's filter, from its own parameters only (data- and history-independent).

    ``basic`` when the owner requires pure ε-DP or δ_T = 0, or when the zCDP filter would
    afford fewer releases of a per-query-cap-sized pure release (ρ = ε_q²/2) than basic
    composition would: ⌊ρ_T / (ε_q²/2)⌋ < ⌊ε_T / ε_q⌋. Else ``zcdp``. Equivalently, zcdp
    when ε_q ≲ 2ρ_T / ε_T (≈ 0.30 for ε_T = 10, δ_T = 1e-6). When the zcdp route is chosen
    it affords at least as many releases as basic at every size up to the cap.
    Without a per-query cap, the largest release is ε_T itself, which gives ``basic``.
    """
    if pure or not delta_total > 0 or not epsilon_total > 0:
        return "basic"
    q = epsilon_total if epsilon_per_query is None else min(epsilon_per_query, epsilon_total)
    if not q > 0:
        return "basic"
    rho_t = zcdp_budget(epsilon_total, delta_total)
    n_basic = math.floor(epsilon_total / q * (1 + 1e-9))
    n_zcdp = math.floor(rho_t / (q * q / 2) * (1 + 1e-9))
    return "zcdp" if n_zcdp >= max(n_basic, 1) else "basic"


def _route(route: Route | None, delta_total: float, pure: bool) -> Route:
    if route is not None and route not in ROUTES:
        raise ValueError(f"unknown accounting route {route!r}")
    if pure or not delta_total > 0 or route is None:
        return "basic"
    return route


# -- the two filters -------------------------------------------------------------------------
def basic_epsilon(t: Totals, delta_total: float) -> float:
    """Σε when Σδ ≤ δ_T, else ∞."""
    return t.epsilon if t.delta <= delta_total + TOLERANCE else math.inf


def zcdp_epsilon(t: Totals, delta_total: float) -> float:
    """ε(Σρ, δ_conv) when Σδz ≤ δ_T − δ_conv, else ∞ (the zcdp route's running figure)."""
    d = conversion_delta(delta_total)
    if d <= 0 or t.zcdp_delta > delta_total - d + TOLERANCE:
        return math.inf
    rho = t.zcdp_rho
    return epsilon_from_rho(rho, d) if rho > 0 else 0.0


def spent(t: Totals, delta_total: float, *, pure: bool = False, route: Route | None = None,
          epsilon_total: float | None = None) -> Spent:
    """The figures of the releases summarised by ``t`` on ``route`` (the approval's fixed
    route, :func:`choose_route`; ``None`` means basic), at ``delta_total``.

    ``pure``: the owner requires pure ε-DP; only the basic route applies (and δ must be 0).
    ``epsilon_total``, when given, fills in the zcdp filter's ρ_T for the report.
    """
    r = _route(route, delta_total, pure)
    basic = basic_epsilon(t, 0.0 if pure else delta_total)
    # The zCDP figure is computed on that route only: OpenDP's conversion costs ~3 ms, and
    # on the basic route it would be information nobody decides anything by (NaN: not shown).
    zcdp = math.inf if pure or not delta_total > 0 else (
        zcdp_epsilon(t, delta_total) if r == "zcdp" else math.nan)
    rho_budget = None
    if r == "zcdp" and epsilon_total is not None:
        rho_budget = zcdp_budget(epsilon_total, delta_total)
    d_conv = conversion_delta(delta_total) if r == "zcdp" else 0.0
    if t.releases == 0:
        return Spent(0.0, r, 0.0, 0.0 if math.isfinite(zcdp) else zcdp, delta_total, t, d_conv,
                     rho_budget)
    return Spent(basic if r == "basic" else zcdp, r, basic, zcdp, delta_total, t, d_conv, rho_budget)


def fits(t: Totals, charge: Charge, epsilon_total: float, delta_total: float, *,
         pure: bool = False, route: Route | None = None) -> bool:
    """Whether the approval's filter accepts ``charge`` after the releases in ``t``.

    ``route`` is the approval's fixed route; ``None`` takes :func:`choose_route` without a
    per-query cap (basic). basic: Σε ≤ ε_T and Σδ ≤ δ_T (δ_T = 0 when pure).
    zcdp: Σρ ≤ ρ_T and Σδz ≤ δ_T − δ_conv.
    """
    r = _route(route if route is not None else choose_route(epsilon_total, delta_total, None, pure),
               delta_total, pure)
    after = t.add(charge)
    if r == "basic":
        return (after.epsilon <= epsilon_total + TOLERANCE
                and after.delta <= (0.0 if pure else delta_total) + TOLERANCE)
    return (after.zcdp_rho <= zcdp_budget(epsilon_total, delta_total) + TOLERANCE
            and after.zcdp_delta <= delta_total - conversion_delta(delta_total) + TOLERANCE)


def per_query_delta(delta_total: float, *, pure: bool = False) -> float:
    """The δ one query may use (partition selection, Gaussian noise): min(1e-7, δ_T / 10).

    A tenth of the approval's δ keeps room for ten δ-using queries on the basic route;
    on the zcdp route half of δ_T converts ρ, so five Laplace partition selections (whose
    whole δ counts) or ten Gaussian ones (half their δ is per-query conversion) fit.
    """
    if pure or delta_total <= 0:
        return 0.0
    return min(1e-7, delta_total / 10)
