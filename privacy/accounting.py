"""Budget arithmetic: what one release costs and what a sequence of releases has spent.

Each release is described by a :class:`Charge` holding two valid views of it:

* **basic**: the release is (ε, δ)-DP. Releases compose by adding ε and δ (Dwork, Roth
  2014, Thm 3.16; for adaptively chosen ε a valid filter, Rogers et al. 2016).
* **zCDP**: the release is δz-approximately ρ-zCDP (Bun, Steinke 2016, Def. 8.1). Releases
  compose by adding ρ and δz (BS16 Lemma 8.3); a ρ-zCDP total is (ε(ρ, δ'), δ')-DP by
  OpenDP's ``make_zCDP_to_approxDP`` map (Canonne, Kamath, Steinke 2020). A pure ε
  release has ρ = ε²/2 (BS16 Prop. 1.4, OpenDP's ``make_pureDP_to_zCDP`` map). A release
  with no zCDP bound (``rho is None``, e.g. Laplace partition selection, which OpenDP
  analyses only in (ε, δ)) is added by basic composition inside this route too.

Spent ε, at the approval's total δ_T, is the *minimum* of the two routes:

    basic = Σε                     valid when Σδ ≤ δ_T
    zcdp  = Σε_other + ε(Σρ, δ_T − Σδz − Σδ_other)   valid when that δ is > 0

Both are upper bounds on the privacy loss of the same releases at δ_T, so the smaller
one is too. A new release is affordable when the spent ε with it stays ≤ ε_T. Why mixing
the routes adaptively stays sound: on every run, whichever route is within budget at
the end bounds the loss; the privacy-loss event {L > ε_T} can only happen where the
basic route is exceeded, hence where the zCDP route holds, and there the zCDP
supermartingale bound (Whitehouse et al. 2023, "Fully-adaptive composition in
differential privacy") bounds its probability — strictly with the classical conversion
ρ + 2√(ρ ln 1/δ); OpenDP's (reported) conversion is ~10% tighter and exact for a sequence
fixed in advance. See docs/privacy.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from privacy.mechanisms import epsilon_from_rho

#: Float sums can differ in the last bits; never let that refuse a release that fits.
TOLERANCE = 1e-12

Route = Literal["basic", "zcdp", "none"]


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


FREE = Charge(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Totals:
    """Sufficient statistics of a sequence of charges (what the ledger sums)."""

    epsilon: float = 0.0
    delta: float = 0.0
    rho: float = 0.0
    rho_delta: float = 0.0
    other_epsilon: float = 0.0
    other_delta: float = 0.0
    releases: int = 0

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
        )

    @classmethod
    def of(cls, charges: list[Charge] | tuple[Charge, ...]) -> Totals:
        out = cls()
        for c in charges:
            out = out.add(c)
        return out


@dataclass(frozen=True)
class Spent:
    """Privacy loss of a sequence of releases at δ_T: ``epsilon`` = min over valid routes."""

    epsilon: float
    route: Route
    basic_epsilon: float
    zcdp_epsilon: float
    delta_total: float
    totals: Totals = field(default_factory=Totals)

    def as_dict(self) -> dict[str, object]:
        def num(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "route": self.route,
            "basic": {"epsilon": num(self.basic_epsilon), "delta": self.totals.delta},
            "zcdp": {"rho": self.totals.rho, "epsilon": num(self.zcdp_epsilon),
                     "at_delta": self.delta_total},
        }


def basic_epsilon(t: Totals, delta_total: float) -> float:
    """Σε when Σδ ≤ δ_T, else ∞."""
    return t.epsilon if t.delta <= delta_total + TOLERANCE else math.inf


def zcdp_epsilon(t: Totals, delta_total: float) -> float:
    """Σε_other + ε(Σρ, δ_T − Σδz − Σδ_other), or ∞ when no δ is left to convert with."""
    left = delta_total - t.rho_delta - t.other_delta
    if t.rho <= 0:
        return t.other_epsilon if left >= -TOLERANCE else math.inf
    if left <= 0:
        return math.inf
    return t.other_epsilon + epsilon_from_rho(t.rho, left)


def spent(t: Totals, delta_total: float, *, pure: bool = False) -> Spent:
    """The loss of the releases summarised by ``t``, reported at ``delta_total``.

    ``pure``: the owner requires pure ε-DP; only the basic route applies (and δ must be 0).
    """
    basic = basic_epsilon(t, 0.0 if pure else delta_total)
    zcdp = math.inf if pure else zcdp_epsilon(t, delta_total)
    if t.releases == 0:
        return Spent(0.0, "basic", 0.0, 0.0, delta_total, t)
    if basic <= zcdp:
        route: Route = "basic" if math.isfinite(basic) else "none"
        return Spent(basic, route, basic, zcdp, delta_total, t)
    return Spent(zcdp, "zcdp", basic, zcdp, delta_total, t)


def fits(t: Totals, charge: Charge, epsilon_total: float, delta_total: float, *,
         pure: bool = False) -> bool:
    """Whether adding ``charge`` keeps the spent ε within ``epsilon_total`` at ``delta_total``."""
    after = spent(t.add(charge), delta_total, pure=pure)
    return after.route != "none" and after.epsilon <= epsilon_total + TOLERANCE


def per_query_delta(delta_total: float, *, pure: bool = False) -> float:
    """The δ one query may use (partition selection, Gaussian noise): min(1e-7, δ_T / 10).

    A tenth of the approval's δ keeps room for ten δ-using queries under basic
    composition; the zCDP route spends δ only on partition selection.
    """
    if pure or delta_total <= 0:
        return 0.0
    return min(1e-7, delta_total / 10)
