"""privacy.accounting: per-release charges, one filter per approval on a route fixed from
the approval's terms (decision 0007), checked against OpenDP's own privacy filter."""

from __future__ import annotations

import math
import random

import opendp.prelude as dp
import pytest

from privacy.accounting import (
    Charge,
    Totals,
    choose_route,
    conversion_delta,
    fits,
    per_query_delta,
    spent,
    zcdp_budget,
)
from privacy.mechanisms import make_pure_as_zcdp, make_vector_discrete_laplace
from privacy.zcdp import epsilon_from_rho, rho_for_epsilon

dp.enable_features("contrib")

DEMO = (10.0, 1e-6, 1.0)  # sandbox.demo.setup.APPROVAL: ε_T, δ_T, per-query cap


def opendp_conversion(rho: float, delta: float) -> float:
    """OpenDP's zCDP → (ε, δ) map on a Gaussian whose map is exactly ρ."""
    gauss = dp.m.make_gaussian(dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=1.0)
    d_in = math.sqrt(2 * rho)
    while gauss.map(d_in) < rho:
        d_in = math.nextafter(d_in, math.inf)
    return dp.c.make_zCDP_to_approxDP(gauss).map(d_in).epsilon(delta)


def test_pure_release_rho_is_opendp_pure_to_zcdp_map():
    meas = make_vector_discrete_laplace(2.0)
    assert make_pure_as_zcdp(meas).map(3) == pytest.approx(1.5**2 / 2) == meas.map(3) ** 2 / 2


@pytest.mark.parametrize("rho,delta", [(1e-4, 1e-6), (0.05, 1e-7), (0.5, 1e-6), (5.0, 1e-9)])
def test_epsilon_from_rho_is_opendp_conversion(rho, delta):
    assert epsilon_from_rho(rho, delta) == opendp_conversion(rho, delta)
    assert epsilon_from_rho(rho, delta) < rho + 2 * math.sqrt(rho * math.log(1 / delta))  # CKS20 is tighter


def test_rho_for_epsilon_is_the_largest_affordable():
    rho = rho_for_epsilon(1.0, 1e-7)
    assert epsilon_from_rho(rho, 1e-7) <= 1.0 < epsilon_from_rho(rho * (1 + 1e-5), 1e-7)


@pytest.mark.parametrize("epsilon", [1e-3, 0.05, 0.5, 1.0, 7.0, 60.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-7, 1e-10])
def test_the_fast_cks20_proposal_is_affordable_and_tight(epsilon, delta):
    """The ρ proposed by our float CKS20 search (one OpenDP call to confirm, not ~8) is
    affordable by OpenDP's own map and within 1e-6 of the largest affordable."""
    from privacy.zcdp import _cks20_rho

    rho = _cks20_rho(epsilon, delta)
    assert rho is not None
    assert epsilon_from_rho(rho, delta) <= epsilon < epsilon_from_rho(rho * (1 + 1e-6), delta)


# -- the route: fixed per approval from its terms ---------------------------------------------
def test_route_is_basic_when_pure_or_without_delta():
    assert choose_route(10.0, 1e-6, 0.01, True) == "basic"
    assert choose_route(10.0, 0.0, 0.01) == "basic"
    assert choose_route(10.0, 1e-6) == "basic"  # no per-query cap: one release of ε_T


def test_demo_approval_keeps_basic_and_small_caps_get_zcdp():
    assert choose_route(*DEMO) == "basic"  # 10 releases at the cap; zCDP would afford 2
    assert choose_route(10.0, 1e-6, 0.29) == "zcdp"  # ε_q below 2ρ_T/ε_T ≈ 0.296
    assert choose_route(20.0, 1e-5, 0.5) == "zcdp"  # 41 > 40 releases at the cap


def _count(route: str, eps_t: float, delta_t: float, q: float) -> int:
    """How many pure releases of ε = q the route's filter accepts in a row."""
    t, n, c = Totals(), 0, Charge(q, 0.0, q * q / 2)
    while fits(t, c, eps_t, delta_t, route=route) and n < 100_000:
        t, n = t.add(c), n + 1
    return n


@pytest.mark.parametrize("eps_t", [1.0, 3.0, 10.0, 50.0])
@pytest.mark.parametrize("delta_t", [1e-8, 1e-6, 1e-4])
@pytest.mark.parametrize("cap_share", [0.005, 0.02, 0.05, 0.1, 0.3, 1.0])
def test_route_rule_never_loses_releases_at_the_cap_and_zcdp_wins_below(eps_t, delta_t, cap_share):
    cap = eps_t * cap_share
    route = choose_route(eps_t, delta_t, cap)
    basic, zcdp = _count("basic", eps_t, delta_t, cap), _count("zcdp", eps_t, delta_t, cap)
    assert _count(route, eps_t, delta_t, cap) == max(basic, zcdp)
    if route == "zcdp":  # then at every smaller release size too
        for q in (cap / 2, cap / 5):
            assert _count("zcdp", eps_t, delta_t, q) >= _count("basic", eps_t, delta_t, q)


def test_route_is_a_pure_function_of_the_terms():
    assert {choose_route(20.0, 1e-5, 0.5) for _ in range(5)} == {"zcdp"}
    # The history never enters: spent/fits take the route, they do not choose it.
    many_small = Totals.of([Charge(0.01, 0.0, 0.5e-4)] * 500)
    assert spent(many_small, 1e-6, route="basic").route == "basic"
    assert spent(many_small, 1e-6, route="basic").epsilon == pytest.approx(5.0)


# -- the basic filter ---------------------------------------------------------------------------
def test_basic_filter_sums_epsilon_and_delta():
    t = Totals.of([Charge(1.0, 0.0, 0.5)] * 9)
    assert fits(t, Charge(1.0, 0.0, 0.5), 10.0, 1e-6, route="basic")
    assert not fits(t.add(Charge(1.0, 0.0, 0.5)), Charge(1e-9, 0.0, 5e-19), 10.0, 1e-6, route="basic")
    s = spent(t, 1e-6, route="basic")
    assert s.route == "basic" and s.epsilon == pytest.approx(9.0)
    ps = Totals.of([Charge(0.1, 1e-7, None)] * 10)
    assert not fits(ps, Charge(0.1, 1e-7, None), 10.0, 1e-6, route="basic")  # Σδ would be 1.1e-6


def test_pure_approval_uses_basic_only_and_refuses_delta():
    many = Totals.of([Charge(0.01, 0.0, 0.01**2 / 2)] * 500)
    assert spent(many, 0.0, route="zcdp").epsilon == pytest.approx(5.0)
    assert spent(many, 1e-6, pure=True, route="zcdp").route == "basic"
    assert not fits(Totals(), Charge(0.1, 1e-8), 10.0, 1e-6, pure=True)
    assert per_query_delta(1e-6, pure=True) == 0.0 == per_query_delta(0.0)
    assert per_query_delta(1e-6) == 1e-7 and per_query_delta(1e-8) == pytest.approx(1e-9)


def test_route_none_is_basic():
    t = Totals.of([Charge(0.01, 0.0, 0.5e-4)] * 500)
    assert spent(t, 1e-6).route == "basic"
    assert fits(t, Charge(5.0, 0.0, 12.5), 10.0, 1e-6) == fits(t, Charge(5.0, 0.0, 12.5), 10.0, 1e-6,
                                                               route="basic")


# -- the zCDP filter ----------------------------------------------------------------------------
def test_zcdp_budget_is_the_largest_rho_converting_within_epsilon_total():
    rho_t = zcdp_budget(10.0, 1e-6)
    d = conversion_delta(1e-6)
    assert d == 5e-7
    assert opendp_conversion(rho_t, d) <= 10.0 < opendp_conversion(rho_t * (1 + 1e-4), d)


def test_zcdp_filter_counts_rho_and_reports_the_conversion_at_the_fixed_delta():
    many = Totals.of([Charge(0.01, 0.0, 0.01**2 / 2)] * 500)  # 500 releases at ε = 0.01
    s = spent(many, 1e-6, route="zcdp", epsilon_total=10.0)
    assert s.route == "zcdp" and s.basic_epsilon == pytest.approx(5.0)
    assert s.epsilon == pytest.approx(opendp_conversion(500 * 0.01**2 / 2, 5e-7)) and s.epsilon < 5.0
    assert s.rho_budget == zcdp_budget(10.0, 1e-6) and s.conversion_delta == 5e-7
    # Few large releases: the fixed route reports its own figure even where Σε is smaller.
    few = Totals.of([Charge(0.2, 0.0, 0.02)] * 3)
    s = spent(few, 1e-6, route="zcdp")
    assert s.epsilon == pytest.approx(opendp_conversion(0.06, 5e-7)) and s.epsilon > s.basic_epsilon


def test_zcdp_filter_accepts_while_rho_fits_the_budget():
    rho_t = zcdp_budget(10.0, 1e-6)
    c = Charge(0.1, 0.0, 0.005)
    n = _count("zcdp", 10.0, 1e-6, 0.1)
    assert n == math.floor(rho_t / 0.005)  # 295 releases where basic composition affords 100
    t = Totals.of([c] * n)
    assert not fits(t, c, 10.0, 1e-6, route="zcdp")
    assert spent(t, 1e-6, route="zcdp").epsilon <= 10.0


def test_release_without_zcdp_bound_is_approximate_zcdp_by_bs16_prop_1_13():
    t = Totals.of([Charge(0.01, 0.0, 0.01**2 / 2)] * 500 + [Charge(0.5, 1e-7, None)])
    assert t.other_epsilon == 0.5 and t.other_delta == 1e-7
    assert t.zcdp_rho == pytest.approx(500 * 0.01**2 / 2 + 0.5**2 / 2) and t.zcdp_delta == 1e-7
    s = spent(t, 1e-6, route="zcdp")
    assert s.zcdp_epsilon == pytest.approx(opendp_conversion(t.zcdp_rho, 5e-7))
    # Summed elsewhere without Σε²: bounded by (Σε)²/2, never below the true sum.
    unknown = Totals(t.epsilon, t.delta, t.rho, t.rho_delta, t.other_epsilon, t.other_delta, t.releases)
    assert unknown.zcdp_rho >= t.zcdp_rho - 1e-15


def test_zcdp_filter_delta_is_what_the_conversion_leaves():
    # δz budget = δ_T − δ_conv = 5e-7: five Laplace partition selections at 1e-7, not six.
    ps = Totals.of([Charge(0.1, 1e-7, None)] * 5)
    assert not fits(ps, Charge(0.1, 1e-7, None), 10.0, 1e-6, route="zcdp")
    assert math.isfinite(spent(ps, 1e-6, route="zcdp").epsilon)
    # A Gaussian release's per-query conversion δ is not spent on the zcdp route; its δz is.
    g = Totals.of([Charge(0.5, 1e-7, 0.003, 5e-8)] * 10)
    assert spent(g, 1e-6, route="zcdp").epsilon == pytest.approx(opendp_conversion(0.03, 5e-7))
    assert not fits(g, Charge(0.5, 1e-7, 0.003, 5e-8), 10.0, 1e-6, route="zcdp")
    assert fits(g, Charge(0.5, 1e-7, 0.003, 0.0), 10.0, 1e-6, route="zcdp")


# -- against OpenDP's own privacy filter (make_fully_adaptive_composition + make_privacy_filter)
def _opendp_filter(measure, budget):
    dp.enable_features("honest-but-curious")  # user measurements with a given privacy map
    domain, metric = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    odometer = dp.c.make_fully_adaptive_composition(domain, metric, measure)
    queryable = dp.c.make_privacy_filter(odometer, d_in=1.0, d_out=budget)(0.0)

    def ask(loss) -> bool:
        query = dp.m.make_user_measurement(domain, metric, measure, function=lambda _: 0.0,
                                           privacy_map=lambda _d_in: loss)
        try:
            queryable(query)
            return True
        except dp.OpenDPException:
            return False

    return ask


def _adaptive_charges(seed: int, route: str, n: int = 400) -> list[Charge]:
    """Charges whose size depends on the history so far (an adaptive analyst)."""
    rng, out = random.Random(seed), []
    for i in range(n):
        last = out[-1].epsilon if out else 0.3
        eps = max(1e-3, min(1.0, last * rng.choice([0.5, 0.9, 1.1, 2.0]) + rng.random() * 0.05))
        if route == "zcdp" and i % 7 == 3:
            out.append(Charge(eps, 1e-7, None))  # Laplace partition selection: no ρ
        elif route == "zcdp" and i % 5 == 1:
            out.append(Charge(eps, 1e-7, eps * eps / 8, 5e-8))  # Gaussian with threshold
        else:
            out.append(Charge(eps, 1e-7 if i % 9 == 4 else 0.0, eps * eps / 2))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps_t,delta_t", [(10.0, 1e-6), (3.0, 1e-5)])
def test_basic_route_accepts_and_refuses_as_opendp_filter(seed, eps_t, delta_t):
    """OpenDP's filter halts for good at its first refusal ("filter is now exhausted"); ours
    refuses that release and may accept a smaller one later (a refused release is the
    analyst choosing ε = 0, data-independently, which every filter theorem allows). So
    both must agree on every release up to and including the first refusal."""
    ask = _opendp_filter(dp.approximate(dp.max_divergence()), (eps_t, delta_t))
    t = Totals()
    for c in _adaptive_charges(seed, "basic"):
        ours = fits(t, c, eps_t, delta_t, route="basic")
        assert ask((c.epsilon, c.delta)) == ours
        if not ours:
            break
        t = t.add(c)
    else:
        pytest.fail("the sequence never reached the budget")


@pytest.mark.parametrize("seed", range(4))
def test_pure_approval_accepts_and_refuses_as_opendp_pure_filter(seed):
    ask = _opendp_filter(dp.max_divergence(), 5.0)
    t = Totals()
    for c in _adaptive_charges(seed, "basic"):
        c = Charge(c.epsilon, 0.0, c.rho)
        ours = fits(t, c, 5.0, 0.0, pure=True, route="zcdp")  # pure overrides any route
        assert ask(c.epsilon) == ours
        if not ours:
            break
        t = t.add(c)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps_t,delta_t", [(10.0, 1e-6), (3.0, 1e-5)])
def test_zcdp_route_accepts_and_refuses_as_opendp_approximate_zcdp_filter(seed, eps_t, delta_t):
    """The same sequence in OpenDP's filter over δ-approximate zCDP with the budget
    (ρ_T, δ_T − δ_conv): releases without ρ enter as (ε²/2, δ) (BS16 Prop. 1.13)."""
    rho_t = zcdp_budget(eps_t, delta_t)
    ask = _opendp_filter(dp.approximate(dp.zero_concentrated_divergence()),
                         (rho_t, delta_t - conversion_delta(delta_t)))
    t = Totals()
    for c in _adaptive_charges(seed, "zcdp"):
        ours = fits(t, c, eps_t, delta_t, route="zcdp")
        assert ask(c.zcdp) == ours
        if not ours:
            break
        t = t.add(c)
    else:
        pytest.fail("the sequence never reached the budget")


def test_opendp_converts_the_fixed_filter_budget_to_the_approval_total():
    """The conversion is applied to the filter's budget ρ_T, fixed before any query:
    OpenDP's own filter measurement at ρ_T, through make_zCDP_to_approxDP, is within
    (ε_T, δ_T) with δ_conv for the conversion and the rest for the releases' δz."""
    domain, metric = dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float)
    for eps_t, delta_t in [(10.0, 1e-6), (3.0, 1e-5), (20.0, 1e-5)]:
        rho_t, d_conv = zcdp_budget(eps_t, delta_t), conversion_delta(delta_t)
        pure_zcdp = dp.c.make_privacy_filter(
            dp.c.make_fully_adaptive_composition(domain, metric, dp.zero_concentrated_divergence()),
            d_in=1.0, d_out=rho_t)
        assert dp.c.make_zCDP_to_approxDP(pure_zcdp).map(1.0).epsilon(d_conv) <= eps_t
        approx = dp.c.make_privacy_filter(
            dp.c.make_fully_adaptive_composition(
                domain, metric, dp.approximate(dp.zero_concentrated_divergence())),
            d_in=1.0, d_out=(rho_t, delta_t - d_conv))
        profile, delta_z = dp.c.make_zCDP_to_approxDP(approx).map(1.0)
        assert profile.epsilon(d_conv) <= eps_t and delta_z + d_conv <= delta_t * (1 + 1e-12)


@pytest.mark.parametrize("epsilon", [0.01, 0.3, 1.0, 4.0])
def test_gaussian_calibration_never_charges_more_than_asked(epsilon, monkeypatch):
    """The float CKS20 proposal is kept only when OpenDP's conversion of the ρ actually
    composed is ≤ ε; a wrong proposal (here 10× too large) falls back to the bisection."""
    from test_guard_support import CATALOG, SCENARIOS

    from privacy import allocation
    from query_guard import plan as guard_plan

    p = guard_plan("SELECT district, COUNT(*), AVG(income) FROM residents GROUP BY district",
                   SCENARIOS["default"], CATALOG)
    good = allocation.calibrate(p, epsilon, 1e-6, family="gaussian")
    assert good.charge.epsilon <= epsilon
    assert good.charge.epsilon > epsilon * (1 - 1e-6)  # and spends what was asked, nearly all
    monkeypatch.setattr(allocation, "rho_proposal", lambda e, d: 10 * rho_for_epsilon(e, d))
    fallback = allocation.calibrate(p, epsilon, 1e-6, family="gaussian")
    assert fallback.charge.epsilon <= epsilon
