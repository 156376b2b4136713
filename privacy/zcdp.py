"""zCDP and approximate DP: ρ → (ε, δ) by OpenDP's conversion, and its inverse.

The Gaussian mechanism is calibrated in ρ (zero-concentrated DP) but budgets are granted
in (ε, δ); these functions convert both ways. Every ε we report is OpenDP's own map
(``make_zCDP_to_approxDP``, Canonne, Kamath, Steinke 2020 Prop. 12), never a formula of
ours; our float search only proposes a ρ, which is kept when OpenDP's map agrees.

Apart from :mod:`privacy.mechanisms` (the builders and their noise) because this is the
accounting's arithmetic: the allocator and the accountant use it without any mechanism.
"""

from __future__ import annotations

import functools
import math

from privacy.errors import PrivacyError
from privacy.features import dp
from privacy.mechanisms import MAX_STEPS, check_budget, uncalibrated

#: Below this ε the zCDP → (ε, δ) conversion reports ε = 0 over a wide range of ρ and each
#: evaluation slows (tens of ms), so the ρ search would take seconds; such a release is
#: noise only (scale above 10⁶ × the sensitivity). ``calibrate(family="auto")`` then uses
#: Laplace noise, which calibrates in closed form at any ε.
GAUSSIAN_EPSILON_MIN = 1e-6


@functools.lru_cache(maxsize=1)
def _rho_proxy() -> tuple[dp.Measurement, dp.Measurement]:
    gauss = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float),
                               scale=1.0)
    return gauss, dp.c.make_zCDP_to_approxDP(gauss)


@functools.lru_cache(maxsize=65536)
def epsilon_from_rho(rho: float, delta: float) -> float:
    """ε such that ρ-zCDP implies (ε, δ)-DP, by OpenDP's ``make_zCDP_to_approxDP`` map.

    OpenDP converts with the bound of Canonne, Kamath, Steinke 2020 (Prop. 12), tighter
    than ρ + 2√(ρ ln 1/δ). It converts measurements, not numbers, so we evaluate it on a
    proxy: a Gaussian of scale 1 at ``d_in = √(2ρ)`` has exactly ρ in its map (nudged so
    the proxy's ρ is never below the one asked).
    """
    if rho <= 0:
        return 0.0
    if not 0 < delta < 1:
        raise PrivacyError("converting zCDP to (ε, δ) needs 0 < δ < 1")
    gauss, convert = _rho_proxy()
    d_in = math.sqrt(2 * rho)
    for _ in range(64):
        if gauss.map(d_in) >= rho:
            break
        d_in = math.nextafter(d_in, math.inf)
    else:  # pragma: no cover - the map is d_in²/2: a few ulps suffice
        raise PrivacyError(f"could not convert ρ = {rho!r} to (ε, δ)")
    try:
        return float(convert.map(d_in).epsilon(delta))
    except dp.OpenDPException:  # ρ beyond float range (an absurd budget)
        raise PrivacyError(f"cannot convert ρ = {rho:g} to (ε, δ)", code="bad_epsilon") from None


def _cks20_rho(epsilon: float, delta: float) -> float | None:
    """A shade under the largest ρ with ρ-zCDP ⇒ (ε, δ)-DP by CKS20 (Prop. 12), or None.

    The conversion is ε(ρ) = min over α > 1 of αρ + c(α), with
    c(α) = (ln 1/δ + (α − 1) ln(1 − 1/α) − ln α) / (α − 1); so ε(ρ) ≤ ε exactly when some α
    has αρ + c(α) ≤ ε, and the largest such ρ is max over α of (ε − c(α)) / α: a search on
    one variable of cheap arithmetic, where bisecting OpenDP's conversion costs ~8 calls of
    ~5 ms each. PRIVACY: only a proposal; :func:`rho_for_epsilon` keeps it only when
    OpenDP's map agrees. The 1e-9 shave absorbs float differences between the two.
    """
    log_term = math.log(1 / delta)

    def rho_at(log_a: float) -> float:
        a = 1.0 + math.exp(log_a)  # α > 1, searched on ln(α − 1)
        c = (log_term + (a - 1) * math.log1p(-1 / a) - math.log(a)) / (a - 1)
        return (epsilon - c) / a

    try:
        grid = [-20.0 + 0.5 * i for i in range(81)]  # α − 1 from 2e-9 to 2e8
        best = max(grid, key=rho_at)
        lo, hi = best - 0.5, best + 0.5
        g = (math.sqrt(5) - 1) / 2
        for _ in range(80):  # golden section: the bracket shrinks to ~1e-17
            c, d = hi - g * (hi - lo), lo + g * (hi - lo)
            lo, hi = (lo, d) if rho_at(c) > rho_at(d) else (c, hi)
        rho = rho_at((lo + hi) / 2) * (1 - 1e-9)
    except (OverflowError, ValueError, ZeroDivisionError):
        return None
    return rho if 0 < rho < math.inf else None


def _check_gaussian_budget(epsilon: float, delta: float) -> None:
    check_budget(epsilon, "epsilon")
    if not 0 < delta < 1:
        raise PrivacyError("the Gaussian mechanism needs 0 < δ < 1", code="needs_delta")
    if epsilon < GAUSSIAN_EPSILON_MIN:
        raise PrivacyError(f"the Gaussian mechanism is not calibrated below ε = "
                           f"{GAUSSIAN_EPSILON_MIN:g}", code="bad_epsilon")


@functools.lru_cache(maxsize=4096)
def rho_proposal(epsilon: float, delta: float) -> float | None:
    """A ρ to try for (ε, δ), not yet confirmed by OpenDP (:func:`_cks20_rho`); None when
    the float search fails. The caller must check OpenDP's conversion of what it charges
    (``privacy.allocation`` does, and falls back to :func:`rho_for_epsilon`)."""
    _check_gaussian_budget(epsilon, delta)
    return _cks20_rho(epsilon, delta)


@functools.lru_cache(maxsize=4096)
def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest ρ whose (ε, δ) conversion stays ≤ ``epsilon`` (bisection on the map)."""
    _check_gaussian_budget(epsilon, delta)
    # Fast path: the largest ρ by the CKS20 bound itself, computed here in floating point
    # and accepted only if OpenDP's own conversion (one call, ~5 ms) confirms it affordable.
    guess = rho_proposal(epsilon, delta)
    if guess is not None and epsilon_from_rho(guess, delta) <= epsilon:
        return guess
    # Start from the classical bound ε = ρ + 2√(ρ ln 1/δ) (Bun, Steinke 2016, Prop. 1.3),
    # which OpenDP's conversion never exceeds: its ρ is always affordable. For a tiny ε its
    # root (√(L + ε) − √L)² cancels to 0 (and doubling 0 looped forever: issue 12); then
    # ε² / (√(L + ε) + √L)² is used, which still underflows to 0 below ε ≈ 1e-154.
    log_term = math.log(1 / delta)
    lo = (math.sqrt(log_term + epsilon) - math.sqrt(log_term)) ** 2
    if lo <= 0:  # the difference cancelled: the same root, written without cancellation
        lo = (epsilon / (math.sqrt(log_term + epsilon) + math.sqrt(log_term))) ** 2
    if not 0 < lo < math.inf:
        raise uncalibrated(epsilon)
    f_lo = epsilon_from_rho(lo, delta) - epsilon
    if f_lo > 0:  # pragma: no cover - would contradict the bound above
        raise PrivacyError("could not calibrate ρ for this ε")
    hi = 2 * lo
    for _ in range(MAX_STEPS):  # SECURITY: bounded; lo = 0 once doubled forever (issue 12)
        f_hi = epsilon_from_rho(hi, delta) - epsilon
        if f_hi > 0:
            break
        lo, f_lo, hi = hi, f_hi, hi * 2
    else:
        raise uncalibrated(epsilon)
    # Illinois (regula falsi) on the smooth, increasing conversion; keep lo affordable.
    side = 0
    for _ in range(100):
        if hi - lo <= 1e-5 * hi:  # ρ within 0.001 % of the largest affordable: no visible loss
            break
        mid = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        if not lo < mid < hi:
            mid = (lo + hi) / 2
        f_mid = epsilon_from_rho(mid, delta) - epsilon
        if f_mid <= 0:
            lo, f_lo = mid, f_mid
            if side == -1:
                f_hi /= 2
            side = -1
        else:
            hi, f_hi = mid, f_mid
            if side == 1:
                f_lo /= 2
            side = 1
    return lo
