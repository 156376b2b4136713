"""privacy.accounting: per-release charges, min(basic, zCDP) at the approval's δ, caps."""

from __future__ import annotations

import math

import opendp.prelude as dp
import pytest

from privacy.accounting import Charge, Totals, fits, per_query_delta, spent
from privacy.mechanisms import (
    epsilon_from_rho,
    make_pure_as_zcdp,
    make_vector_discrete_laplace,
    rho_for_epsilon,
)

dp.enable_features("contrib")


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


def test_spent_is_min_of_basic_and_zcdp():
    few = Totals.of([Charge(1.0, 0.0, 0.5)] * 3)  # three pure ε = 1 releases
    s = spent(few, 1e-6)
    assert s.route == "basic" and s.epsilon == 3.0
    assert s.zcdp_epsilon == pytest.approx(opendp_conversion(1.5, 1e-6))
    many = Totals.of([Charge(0.01, 0.0, 0.01**2 / 2)] * 500)  # 500 releases at ε = 0.01
    s = spent(many, 1e-6)
    assert s.route == "zcdp" and s.basic_epsilon == pytest.approx(5.0)
    assert s.epsilon == pytest.approx(opendp_conversion(500 * 0.01**2 / 2, 1e-6))
    assert s.epsilon < 5.0


def test_pure_approval_uses_basic_only_and_refuses_delta():
    many = Totals.of([Charge(0.01, 0.0, 0.01**2 / 2)] * 500)
    assert spent(many, 0.0).epsilon == pytest.approx(5.0)
    assert spent(many, 1e-6, pure=True).route == "basic"
    assert not fits(Totals(), Charge(0.1, 1e-8), 10.0, 1e-6, pure=True)
    assert per_query_delta(1e-6, pure=True) == 0.0 == per_query_delta(0.0)
    assert per_query_delta(1e-6) == 1e-7 and per_query_delta(1e-8) == pytest.approx(1e-9)


def test_release_without_zcdp_bound_counts_by_basic_composition_in_both_routes():
    t = Totals.of([Charge(0.01, 0.0, 0.01**2 / 2)] * 500 + [Charge(0.5, 1e-7, None)])
    assert t.other_epsilon == 0.5 and t.other_delta == 1e-7
    s = spent(t, 1e-6)
    assert s.zcdp_epsilon == pytest.approx(0.5 + opendp_conversion(500 * 0.01**2 / 2, 1e-6 - 1e-7))


def test_delta_budget_is_enforced_per_route():
    # Basic route out of δ; zCDP route still has δ to convert with.
    t = Totals.of([Charge(0.1, 1e-7, 0.005, 0.0)] * 10)
    assert spent(t, 1e-6).route in ("basic", "zcdp")
    assert fits(t, Charge(0.1, 1e-7, 0.005), 10.0, 1e-6)  # basic δ exhausted, zCDP affords it
    assert spent(t.add(Charge(0.1, 1e-7, 0.005)), 1e-6).route == "zcdp"
    # Partition selection's δ is charged in both routes: eleven of them cannot fit 1e-6.
    ps = Totals.of([Charge(0.1, 1e-7, None)] * 10)
    assert not fits(ps, Charge(0.1, 1e-7, None), 10.0, 1e-6)


def test_fits_is_exact_at_the_boundary():
    t = Totals.of([Charge(1.0, 0.0, 0.5)] * 9)
    assert fits(t, Charge(1.0, 0.0, 0.5), 10.0, 1e-6)
    assert not fits(t.add(Charge(1.0, 0.0, 0.5)), Charge(1e-9, 0.0, 5e-19), 10.0, 1e-6)
