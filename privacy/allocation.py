"""Split one query's budget over its noised statistics and calibrate each OpenDP measurement.

Data-independent by construction: the result depends on the plan (kinds, bounds,
contribution limits) and the budget only, so the cost and the expected accuracy are
known before anything runs (preview, target accuracy) and equal the charge afterwards.

**Split.** Each measurement (aggregate) and, when needed, partition selection get an
equal share. Inside a measurement the share is split to minimise the worst-case
expected squared error of its estimate by the delta method: with noise variances V_j
and worst-case sensitivity coefficients k_j of the estimate to statistic j
(``StatSpec.weight``, in output units), minimise Σ k_j² V_j subject to the budget.

* Laplace (V_j = 2 Δ_j² / ε_j², Σ ε_j = ε): Lagrange gives ε_j ∝ (k_j Δ_j)^(2/3).
* Gaussian (V_j = Δ_j² / (2 ρ_j), Σ ρ_j = ρ): ρ_j ∝ k_j Δ_j.

For a mean, c + S/C with |μ − c| ≤ r: k = (1, r) for (centred sum, count), and since the
centred sum's Δ is r × the count's, the split is even — the minimax choice over all
means in [lo, hi] (cf. Tumult Analytics and PipelineDP, which split AVG evenly between
a normalised sum and a count; the derivation is in docs/privacy.md). For a variance,
k = (1, 2r, r²) for (centred sum of squares, centred sum, count).

**Family.** Laplace (pure ε) unless the approval allows δ and the discrete Gaussian gives
less expected error at the same per-query (ε, δ) — typically when a person touches many
groups (L2 = √L0·L∞ ≪ L1 = L0·L∞) or the query has many statistics.

**COUNT(*) from partition selection.** When keys need DP partition selection and the
query has a COUNT(*) over the same bounded rows, the threshold mechanism's released
noisy counts *are* that COUNT(*): one measurement, one share, no second noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from privacy.accounting import Charge
from privacy.errors import PrivacyError
from privacy.features import dp
from privacy.mechanisms import (
    Family,
    calibrate_threshold,
    make_gaussian_partition_threshold,
    make_partition_threshold,
    make_pure_as_zcdp,
    make_vector_discrete_gaussian,
    make_vector_discrete_laplace,
    noise_variance,
    scale_for_epsilon,
    scale_for_rho,
    threshold_d_in,
)
from privacy.sensitivity import StatSpec, stat_specs
from privacy.zcdp import epsilon_from_rho, rho_for_epsilon, rho_proposal
from query_guard.plan import Measurement, QueryPlan

FamilyChoice = Literal["auto", "laplace", "gaussian"]
PARTITIONS = "partitions"


@dataclass(frozen=True)
class NoiseSpec:
    """One calibrated OpenDP measurement: what it noises, how, and its map's loss."""

    measurement: str  # a Measurement.id, or "partitions"
    stat: str
    family: Family
    sensitivity: float  # d_in: L1 (laplace) or L2 (gaussian); threshold: the L1/L2 part
    scale: float
    epsilon: float | None  # laplace: the map's ε
    rho: float | None  # zCDP map (laplace: make_pureDP_to_zCDP's)
    delta: float = 0.0
    threshold: int | None = None
    unit: float = 1.0
    weight: float = 1.0


@dataclass(frozen=True)
class NoisePlan:
    family: Family
    specs: tuple[NoiseSpec, ...]
    charge: Charge
    partitions: NoiseSpec | None
    count_from_partitions: frozenset[str]  # measurement ids answered by the threshold
    l0: int = 1
    linf: int = 1

    def spec(self, measurement: str, stat: str) -> NoiseSpec:
        for s in self.specs:
            if s.measurement == measurement and s.stat == stat:
                return s
        raise KeyError((measurement, stat))


def partition_bounds(plan: QueryPlan) -> tuple[int, int]:
    """(L0, L∞) of one person's effect on ``__rows``: the plan's, or its measurements'
    if larger (a hand-built plan may leave the plan-level defaults of 1)."""
    l0 = max([plan.max_partitions, *(m.max_partitions for m in plan.measurements)])
    linf = max([plan.max_rows_per_partition, *(m.max_rows_per_partition for m in plan.measurements)])
    return l0, linf


def _is_count_star(m: Measurement, l0: int, linf: int) -> bool:
    return (m.kind == "count" and m.expression_sql == "*" and m.max_partitions == l0
            and m.max_rows_per_partition == linf)


def calibrate(
    plan: QueryPlan, epsilon: float, delta: float = 0.0, *, family: FamilyChoice = "auto",
    pure: bool = False,
) -> NoisePlan:
    """The measurements to apply for ``plan`` with per-query loss ≤ (epsilon, delta)."""
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise PrivacyError(f"epsilon must be a positive number, got {epsilon!r}", code="bad_epsilon")
    if pure:
        delta = 0.0
        if family == "gaussian":
            raise PrivacyError("this approval requires pure ε-DP: Gaussian noise is not allowed",
                               code="pure_dp_required")
        family = "laplace"
    if plan.needs_partition_selection and delta <= 0:
        raise PrivacyError(
            "grouping by a column without a public list of values needs δ > 0 for partition "
            "selection; this approval allows δ = 0" + (" (pure ε-DP)" if pure else ""),
            code="needs_delta",
        )
    if family == "gaussian" and delta <= 0:
        raise PrivacyError("Gaussian noise needs δ > 0", code="needs_delta")
    if family != "auto":
        return _calibrate(plan, epsilon, delta, family)
    laplace = _calibrate(plan, epsilon, delta, "laplace")
    if delta <= 0:
        return laplace
    try:
        gaussian = _calibrate(plan, epsilon, delta, "gaussian")
    except PrivacyError:
        return laplace
    return gaussian if _relative_error(gaussian, laplace) < 1.0 else laplace


def _calibrate(plan: QueryPlan, epsilon: float, delta: float, family: Family) -> NoisePlan:
    """One family's calibration. Every search in it is bounded (``mechanisms.MAX_STEPS``);
    a budget OpenDP cannot represent (ε so large that ε²/2 overflows, say) is a
    ``PrivacyError``, never OpenDP's own exception (issue 12, finding 5)."""
    try:
        return _calibrate_family(plan, epsilon, delta, family)
    except dp.OpenDPException:
        raise PrivacyError(f"cannot calibrate {family} noise for ε = {epsilon:g}",
                           code="bad_epsilon") from None


def _relative_error(a: NoisePlan, b: NoisePlan) -> float:
    """Mean over measurements of a's worst-case error variance over b's."""
    ratios = []
    for mid in {s.measurement for s in b.specs if s.measurement != PARTITIONS}:
        va = sum((s.weight / s.unit) ** 2 * noise_variance(s.family, s.scale)
                 for s in a.specs if s.measurement == mid)
        vb = sum((s.weight / s.unit) ** 2 * noise_variance(s.family, s.scale)
                 for s in b.specs if s.measurement == mid)
        ratios.append(va / vb if vb > 0 else 1.0)
    return sum(ratios) / len(ratios) if ratios else 1.0


def split_delta(plan: QueryPlan, delta: float, family: Family) -> tuple[float, float]:
    """(δ for partition selection, δ for converting the Gaussian's ρ to ε)."""
    selecting = plan.needs_partition_selection
    if family == "laplace":
        return (delta if selecting else 0.0), 0.0
    return (delta / 2, delta / 2) if selecting else (0.0, delta)


def _calibrate_family(plan: QueryPlan, epsilon: float, delta: float, family: Family) -> NoisePlan:
    delta_ps, delta_conv = split_delta(plan, delta, family)
    if family == "laplace":
        return calibrate_budget(plan, epsilon, family, delta_ps, delta_conv)
    # Gaussian: try the float CKS20 proposal for ρ; the charge is OpenDP's conversion of the
    # ρ actually composed, so one OpenDP conversion both prices and confirms it (a new ε
    # cost ~8 conversions of ~5 ms before). PRIVACY: kept only if that charge ≤ ε.
    proposal = rho_proposal(epsilon, delta_conv)
    if proposal is not None:
        noise = calibrate_budget(plan, proposal, family, delta_ps, delta_conv)
        if noise.charge.epsilon <= epsilon:
            return noise
    return calibrate_budget(plan, rho_for_epsilon(epsilon, delta_conv), family, delta_ps, delta_conv)


def calibrate_budget(plan: QueryPlan, budget: float, family: Family, delta_ps: float,
                     delta_conv: float) -> NoisePlan:
    """Calibrate with the family's own budget: ε (laplace) or ρ (gaussian)."""
    l0, linf = partition_bounds(plan)
    selecting = plan.needs_partition_selection
    from_partitions = frozenset(
        m.id for m in plan.measurements if selecting and _is_count_star(m, l0, linf)
    )
    groups: list[list[StatSpec]] = [
        stat_specs(m) for m in plan.measurements if m.id not in from_partitions
    ]
    shares = len(groups) + (1 if selecting else 0)
    if shares == 0:
        return NoisePlan(family, (), Charge(0.0, 0.0, 0.0), None, frozenset(), l0, linf)
    share = budget / shares * (1 - 1e-12)

    specs: list[NoiseSpec] = []
    for stats in groups:
        specs.extend(_split(stats, share, family))
    partitions = _threshold(l0, linf, share, delta_ps, family) if selecting else None
    charge = _charge(specs, partitions, family, delta_conv)
    all_specs = (*specs, partitions) if partitions is not None else tuple(specs)
    return NoisePlan(family, all_specs, charge, partitions, from_partitions, l0, linf)


def _split(stats: list[StatSpec], share: float, family: Family) -> list[NoiseSpec]:
    if family == "laplace":
        raw = [(s.weight * s.l1 / s.unit) ** (2 / 3) for s in stats]
    else:
        raw = [s.weight * s.l2 / s.unit for s in stats]
    total = sum(raw)
    out = []
    for s, w in zip(stats, raw, strict=True):
        # The (1 − 1e-12) keeps the float sum of the parts from exceeding the share.
        part = share * (w / total if total > 0 else 1 / len(stats)) * (1 - 1e-12)
        if family == "laplace":
            scale = scale_for_epsilon(s.l1, part)
            meas = make_vector_discrete_laplace(scale)
            eps = float(meas.map(int(s.l1)))
            rho = float(make_pure_as_zcdp(meas).map(int(s.l1)))
            out.append(NoiseSpec(s.measurement, s.stat, family, s.l1, scale, eps, rho,
                                 unit=s.unit, weight=s.weight))
        else:
            scale = scale_for_rho(s.l2, part)
            rho = float(make_vector_discrete_gaussian(scale).map(float(s.l2)))
            out.append(NoiseSpec(s.measurement, s.stat, family, s.l2, scale, None, rho,
                                 unit=s.unit, weight=s.weight))
    return out


def _threshold(l0: int, linf: int, share: float, delta: float, family: Family) -> NoiseSpec:
    scale, threshold = calibrate_threshold(l0, linf, share, delta, family)
    d_in = threshold_d_in(l0, linf, family)
    if family == "laplace":
        eps, dlt = make_partition_threshold(scale, threshold).map(d_in)
        return NoiseSpec(PARTITIONS, "rows", family, d_in[1], scale, float(eps), None,
                         float(dlt), threshold)
    rho, dlt = make_gaussian_partition_threshold(scale, threshold).map(d_in)
    return NoiseSpec(PARTITIONS, "rows", family, d_in[1], scale, None, float(rho), float(dlt),
                     threshold)


def _charge(specs: list[NoiseSpec], partitions: NoiseSpec | None, family: Family,
            delta_conv: float) -> Charge:
    """Compose the maps: basic for ε (and δ), zCDP for ρ (OpenDP's composition adds them)."""
    if family == "laplace":
        eps = sum(s.epsilon or 0.0 for s in specs)
        rho: float | None = sum(s.rho or 0.0 for s in specs)
        dlt = 0.0
        if partitions is not None:
            # OpenDP analyses the Laplace threshold in (ε, δ) only: no zCDP view.
            eps += partitions.epsilon or 0.0
            dlt = partitions.delta
            rho = None
        return Charge(eps, dlt, rho, 0.0)
    rho_total = sum(s.rho or 0.0 for s in specs)
    rho_delta = 0.0
    if partitions is not None:
        rho_total += partitions.rho or 0.0
        rho_delta = partitions.delta
    eps = epsilon_from_rho(rho_total, delta_conv)
    return Charge(eps, delta_conv + rho_delta, rho_total, rho_delta)
