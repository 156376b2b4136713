"""OpenDP measurements over vectors of exact integer statistics, and their calibration.

Every builder here returns an OpenDP ``Measurement``; every loss we report is that
measurement's own privacy map at the sensitivity ``d_in``, never a formula of ours
(STYLE.md, decision 0001). Calibration searches for the smallest noise whose *map* fits
the budget, so rounding inside OpenDP can only make us charge less than asked.

Families:

* ``laplace``: ``make_laplace`` on ``vector_domain(atom_domain(T="i64"))`` under
  ``l1_distance`` — the discrete Laplace (geometric) mechanism, pure ε-DP
  (Ghosh, Roughgarden, Sundararajan 2012; Canonne, Kamath, Steinke 2020 §5.2);
* ``gaussian``: ``make_gaussian`` on the same domain under ``l2_distance`` — the discrete
  Gaussian, ρ-zCDP (Canonne, Kamath, Steinke 2020);
* partition selection: ``make_laplace_threshold`` ((ε, δ)-DP) or
  ``make_gaussian_threshold`` (δ-approximate ρ-zCDP) on a key → count map
  (Rogers et al. 2023, "A unifying privacy analysis framework for unknown domain
  algorithms").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from privacy.errors import PrivacyError
from privacy.features import dp

I64_MAX = 2**63 - 1
Family = Literal["laplace", "gaussian"]


# -- builders --------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def make_vector_discrete_laplace(scale: float) -> dp.Measurement:
    """ε-DP for integer vectors under the L1 distance: ``map(d_in) = d_in / scale``.

    Guarantee: for inputs at L1 distance ≤ d_in, the output distributions differ by at
    most ``map(d_in)`` in max-divergence (pure DP).
    """
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale
    )


@functools.lru_cache(maxsize=4096)
def make_vector_discrete_gaussian(scale: float) -> dp.Measurement:
    """ρ-zCDP for integer vectors under the L2 distance: ``map(d_in) = d_in² / (2 scale²)``.

    The L2 distance is typed f64 so that a sensitivity like √L0 × L∞ needs no rounding.
    """
    return dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="f64"), scale=scale
    )


def make_pure_as_zcdp(measurement: dp.Measurement) -> dp.Measurement:
    """The same mechanism analysed in zCDP: ε-DP implies (ε²/2)-zCDP (Bun, Steinke 2016,
    Prop. 1.4), as OpenDP's ``make_pureDP_to_zCDP`` map reports it."""
    return dp.c.make_pureDP_to_zCDP(measurement)


@functools.lru_cache(maxsize=1024)
def make_partition_threshold(scale: float, threshold: int) -> dp.Measurement:
    """(ε, δ)-DP release of a key → count map whose keys come from private data.

    Keys whose noisy count is below ``threshold`` are dropped; ``map((l0, l1, linf))``
    gives (ε, δ).
    """
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


@functools.lru_cache(maxsize=1024)
def make_gaussian_partition_threshold(scale: float, threshold: int) -> dp.Measurement:
    """δ-approximate ρ-zCDP release of a key → count map; ``map((l0, l2, linf))`` gives
    (ρ, δ). The L2 part is an integer in OpenDP 0.16, so callers round it up."""
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
    metric = dp.l02inf_distance(dp.absolute_distance(T="i64"))
    return dp.m.make_gaussian_threshold(domain, metric, scale=scale, threshold=threshold)


# -- calibration -----------------------------------------------------------------------
#: Most steps of any one search below. Each step is one OpenDP map evaluation (micro-
#: seconds), so a calibration ends within milliseconds whatever the budget: issue 12
#: (finding 5) had ε = 1e-300 loop forever in ``zcdp.rho_for_epsilon`` and hang a server thread.
MAX_STEPS = 200


def check_budget(value: float, name: str) -> None:
    """``PrivacyError`` unless ``value`` (an ε or a ρ) is a positive finite number."""
    if not (value > 0 and math.isfinite(value)):
        raise PrivacyError(f"{name} must be a positive number, got {value!r}")


def uncalibrated(budget: float) -> PrivacyError:
    """The error of a budget no finite float scale calibrates."""
    return PrivacyError(f"cannot calibrate noise for a budget of {budget:g}: it is too small "
                        f"(or too large) for floating point", code="bad_epsilon")


def _smallest_scale(build, d_in, budget: float, start: float) -> float:
    """The smallest scale (to 1e-9) with ``build(scale).map(d_in) <= budget``.

    ``start`` is the textbook scale. OpenDP's map may round up in the last bit (then we
    nudge up) or be tighter than the textbook (then we search down), so the charge is
    never above the budget and the noise never larger than needed. Every loop is bounded
    (``MAX_STEPS``); a budget whose scale is not a finite float raises ``PrivacyError``.
    """
    if not (0 < start < math.inf):  # e.g. ε = 5e-324: Δ/ε overflows to inf
        raise uncalibrated(budget)

    def loss(scale: float) -> float:
        try:
            out = build(scale).map(d_in)
        except dp.OpenDPException:
            raise uncalibrated(budget) from None
        return out[0] if isinstance(out, tuple) else out

    scale = start
    for _ in range(64):
        if loss(scale) <= budget:
            break
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    else:  # pragma: no cover
        raise PrivacyError("could not calibrate the noise scale")
    if loss(scale * (1 - 1e-9)) > budget:
        return scale
    lo, hi = scale / 4, scale
    for _ in range(MAX_STEPS):
        if lo <= 0 or loss(lo) > budget:
            break
        lo, hi = lo / 4, lo
    else:
        raise uncalibrated(budget)
    if lo <= 0:
        raise uncalibrated(budget)
    for _ in range(MAX_STEPS):
        if hi - lo <= 1e-9 * hi:
            break
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if loss(mid) <= budget else (mid, hi)
    return hi


@functools.lru_cache(maxsize=4096)
def scale_for_epsilon(sensitivity: float, epsilon: float) -> float:
    """Smallest discrete-Laplace scale whose map at ``sensitivity`` (L1) is ≤ ``epsilon``."""
    check_budget(epsilon, "epsilon")
    return _smallest_scale(make_vector_discrete_laplace, int(sensitivity), epsilon,
                           sensitivity / epsilon)


@functools.lru_cache(maxsize=4096)
def scale_for_rho(l2_sensitivity: float, rho: float) -> float:
    """Smallest discrete-Gaussian scale whose map at ``l2_sensitivity`` is ≤ ``rho``."""
    check_budget(rho, "rho")
    return _smallest_scale(make_vector_discrete_gaussian, float(l2_sensitivity), rho,
                           l2_sensitivity / math.sqrt(2 * rho))


# -- applying ----------------------------------------------------------------------------
def clip_i64(values: Sequence[int]) -> list[int]:
    """Clip to the i64 range. PRIVACY: clipping is 1-Lipschitz, so sensitivity holds."""
    return [max(-I64_MAX, min(I64_MAX, int(v))) for v in values]


def noisy_vector(values: Sequence[int], family: Family, scale: float) -> list[int]:
    """Apply the family's OpenDP measurement with ``scale`` to the whole vector at once."""
    meas = (make_vector_discrete_laplace if family == "laplace" else make_vector_discrete_gaussian)(scale)
    clipped = clip_i64(values)
    return list(meas(clipped)) if clipped else []


@dataclass(frozen=True)
class NoisyVector:
    values: list[int]
    scale: float
    epsilon: float
    mechanism: str


def laplace_vector(values: Sequence[int], sensitivity: int, epsilon: float) -> NoisyVector:
    """Discrete Laplace noise on each value; one person moves the vector by ≤ sensitivity (L1)."""
    if sensitivity <= 0:
        raise PrivacyError("sensitivity must be positive")
    scale = scale_for_epsilon(sensitivity, epsilon)
    out = noisy_vector(values, "laplace", scale)
    return NoisyVector(out, scale, float(make_vector_discrete_laplace(scale).map(sensitivity)),
                       "discrete_laplace")


@dataclass(frozen=True)
class SelectedPartitions:
    counts: dict[str, int]
    scale: float
    threshold: int
    epsilon: float
    delta: float
    rho: float | None = None
    family: Family = "laplace"


def threshold_d_in(l0: int, linf: int, family: Family) -> tuple[int, int, int]:
    """(L0, L1 or ⌈L2⌉, L∞) of one person's effect on the key → row-count map."""
    middle = l0 * linf if family == "laplace" else math.ceil(math.sqrt(l0) * linf)
    return (l0, middle, linf)


@functools.lru_cache(maxsize=1024)
def calibrate_threshold(l0: int, linf: int, budget: float, delta: float, family: Family
                        ) -> tuple[float, int]:
    """(scale, threshold): the noise for ``budget`` (ε or ρ), then the smallest threshold
    whose map reports δ ≤ ``delta``."""
    if not 0 < delta < 1:
        raise PrivacyError(
            "grouping by a column without a public list of values needs δ > 0 for partition "
            "selection; this approval allows δ = 0",
            code="needs_delta",
        )
    d_in = threshold_d_in(l0, linf, family)
    build = make_partition_threshold if family == "laplace" else make_gaussian_partition_threshold
    start = d_in[1] / budget if family == "laplace" else d_in[1] / math.sqrt(2 * budget)
    scale = _smallest_scale(lambda s: build(s, max(linf, 1) + 1), d_in, budget, start)

    def too_loose(t: int) -> bool:
        return build(scale, t).map(d_in)[1] > delta

    lo, hi = linf, linf + 1
    while too_loose(hi):
        lo, hi = hi, hi * 2
        if hi > 2**40:
            raise PrivacyError("δ is too small for partition selection")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if too_loose(mid) else (lo, mid)
    return scale, hi


def select_partitions(
    counts: Mapping[str, int], *, l0: int, linf: int, epsilon: float | None = None,
    delta: float, rho: float | None = None, family: Family = "laplace",
) -> SelectedPartitions:
    """DP partition selection: keep only keys whose noisy row count clears a threshold.

    PRIVACY: a key seen only in private data is never echoed unless this releases it.
    Give ``epsilon`` (laplace) or ``rho`` (gaussian).
    """
    budget = epsilon if family == "laplace" else rho
    if budget is None:
        raise PrivacyError("partition selection needs a budget")
    scale, threshold = calibrate_threshold(l0, linf, float(budget), float(delta), family)
    build = make_partition_threshold if family == "laplace" else make_gaussian_partition_threshold
    meas = build(scale, threshold)
    loss, dlt = meas.map(threshold_d_in(l0, linf, family))
    released = meas({k: max(-I64_MAX, min(I64_MAX, int(v))) for k, v in counts.items()})
    if family == "laplace":
        return SelectedPartitions(dict(released), scale, threshold, float(loss), float(dlt))
    return SelectedPartitions(dict(released), scale, threshold, float("nan"), float(dlt),
                              rho=float(loss), family="gaussian")


# -- accuracy (OpenDP's accuracy functions) ----------------------------------------------
@functools.lru_cache(maxsize=65536)
def accuracy(family: Family, scale: float, alpha: float) -> float:
    """Half-width a with P(|noise| > a) ≤ alpha for one noisy integer."""
    if family == "laplace":
        return float(dp.discrete_laplacian_scale_to_accuracy(scale=scale, alpha=alpha))
    slack = 2 / (scale * math.sqrt(2 * math.pi))
    if scale > 100 and alpha > 2 * slack:
        # OpenDP's discrete-Gaussian accuracy sums the distribution exactly, which takes
        # time proportional to the scale. For large scales compare with the continuous
        # Gaussian Y: the normaliser is ≥ σ√(2π) (Poisson summation, CKS20 §2) and a
        # decreasing sum is ≤ its first term + the integral, so
        # P(|X| ≥ t) ≤ P(|Y| ≥ t) + 2/(σ√(2π)). OpenDP's Gaussian accuracy at
        # α − 2/(σ√(2π)), rounded up, is therefore a valid half-width at α.
        return float(math.ceil(dp.gaussian_scale_to_accuracy(scale=scale, alpha=alpha - slack)))
    return float(dp.discrete_gaussian_scale_to_accuracy(scale=scale, alpha=alpha))


def half_width(family: Family, scale: float, alpha: float) -> float:
    """The least integer h with P(|noise| > h) ≤ alpha, for a closed interval ± h.

    OpenDP's accuracy a bounds P(|noise| ≥ a) ≤ alpha (its docs: α = P[Y ≥ accuracy]).
    The noise is an integer, so |noise| ≤ ⌈a⌉ − 1 with probability ≥ 1 − alpha. Using a
    itself made discrete-Gaussian intervals (whose a is an integer) one unit too wide:
    96.4 % coverage for a 95 % count at scale 14, 95.0 % with ⌈a⌉ − 1."""
    a = accuracy(family, scale, alpha)
    return max(0.0, math.ceil(a) - 1.0) if math.isfinite(a) else a


def noise_variance(family: Family, scale: float) -> float:
    """Variance of one noise draw: 2p/(1-p)² with p = e^(-1/scale) for the discrete Laplace
    (≈ 2 scale²); at most scale² for the discrete Gaussian (CKS20 Prop. 19)."""
    if family == "laplace":
        p = math.exp(-1.0 / scale)
        return 2 * p / (1 - p) ** 2
    return scale * scale
