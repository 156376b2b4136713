"""Noise over vectors of exact statistics, built only from OpenDP measurements.

Each function builds the OpenDP measurement, asks its privacy map for the loss at the
given sensitivity ``d_in`` and applies it. The loss returned is *the map's own answer*,
never a formula of ours: that is what the ledger charges (STYLE.md: tests pin it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from privacy.errors import PrivacyError
from privacy.features import dp

I64_MAX = 2**63 - 1


@dataclass(frozen=True)
class NoisyVector:
    values: list[int]
    scale: float
    epsilon: float
    mechanism: str


def make_vector_discrete_laplace(scale: float) -> dp.Measurement:
    """ε-DP for integer vectors under the L1 distance: ε = d_in / scale.

    Guarantee: for inputs whose L1 distance is at most d_in, the output distributions
    differ by at most ``map(d_in)`` in max-divergence (pure DP).
    """
    return dp.m.make_laplace(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale
    )


def scale_for_epsilon(sensitivity: int, epsilon: float) -> float:
    """The smallest scale whose map at ``sensitivity`` is ≤ ``epsilon``.

    ``sensitivity / epsilon`` is the textbook value; OpenDP's map may round up in the last
    bit, so we nudge the scale until the map agrees (never charge more than asked).
    """
    if not (epsilon > 0 and math.isfinite(epsilon)):
        raise PrivacyError(f"epsilon must be a positive number, got {epsilon!r}")
    scale = sensitivity / epsilon
    for _ in range(64):
        if make_vector_discrete_laplace(scale).map(sensitivity) <= epsilon:
            return scale
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    raise PrivacyError("could not calibrate the noise scale")  # pragma: no cover


def laplace_vector(values: Sequence[int], sensitivity: int, epsilon: float) -> NoisyVector:
    """Discrete Laplace noise on each value; one person moves the vector by ≤ sensitivity (L1)."""
    if sensitivity <= 0:
        raise PrivacyError("sensitivity must be positive")
    scale = scale_for_epsilon(sensitivity, epsilon)
    meas = make_vector_discrete_laplace(scale)
    clipped = [max(-I64_MAX, min(I64_MAX, int(v))) for v in values]
    noisy = meas(clipped) if clipped else []
    return NoisyVector(list(noisy), scale, float(meas.map(sensitivity)), "discrete_laplace")


def make_partition_threshold(scale: float, threshold: int) -> dp.Measurement:
    """(ε, δ)-DP release of a key→count map where keys come from private data.

    Keys whose noisy count is below ``threshold`` are dropped (Rogers et al. 2023);
    ``map((l0, l1, linf))`` gives (ε, δ).
    """
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


@dataclass(frozen=True)
class SelectedPartitions:
    counts: dict[str, int]
    scale: float
    threshold: int
    epsilon: float
    delta: float


def select_partitions(
    counts: dict[str, int], *, l0: int, linf: int, epsilon: float, delta: float
) -> SelectedPartitions:
    """DP partition selection: keep only keys whose noisy row count clears a threshold.

    PRIVACY: a key seen only in private data is never echoed unless this releases it.
    The threshold is the smallest for which OpenDP's map reports δ ≤ ``delta``.
    """
    if not 0 < delta < 1:
        raise PrivacyError(
            "grouping by a column without a public list of values needs δ > 0 for partition "
            "selection; this approval allows δ = 0",
            code="needs_delta",
        )
    d_in = (l0, l0 * linf, linf)
    scale = (l0 * linf) / epsilon
    lo, hi = linf, linf + 1
    while make_partition_threshold(scale, hi).map(d_in)[1] > delta:
        lo, hi = hi, hi * 2
        if hi > 2**40:
            raise PrivacyError("δ is too small for partition selection")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if make_partition_threshold(scale, mid).map(d_in)[1] > delta:
            lo = mid
        else:
            hi = mid
    meas = make_partition_threshold(scale, hi)
    eps, dlt = meas.map(d_in)
    released = meas({k: int(v) for k, v in counts.items()})
    return SelectedPartitions(dict(released), scale, hi, float(eps), float(dlt))


def discrete_laplace_accuracy(scale: float, alpha: float) -> float:
    """Half-width a with P(|noise| > a) ≤ alpha (OpenDP's accuracy function)."""
    return float(dp.discrete_laplacian_scale_to_accuracy(scale=scale, alpha=alpha))
