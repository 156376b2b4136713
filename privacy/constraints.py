"""What is public about a released figure, and the post-processing that respects it.

The owner's bounds are public (the policy declares them), and so is what they imply:

==================  ==========================================  ========================
kind                public range of the true (bounded) figure    post-processing
==================  ==========================================  ========================
count, distinct     [0, ∞)                                       value and interval ≥ 0
sum over [lo, hi]   [0, ∞) if lo ≥ 0; (−∞, 0] if hi ≤ 0;         clipped to that side
                    unbounded otherwise (the row count is not
                    public)
mean                [lo, hi]                                     clipped
variance            [0, (hi − lo)²/4] (population; the sample    ≥ 0 (the upper end is
                    estimator may exceed it by k/(k − 1))         clipped in estimates)
stddev              [0, (hi − lo)/2] (same remark)               ≥ 0
quantile            [lo, hi], non-decreasing in the fraction     clipped, made monotone
derived             none                                         none
==================  ==========================================  ========================

PRIVACY: every function here reads only released (noisy) values and public bounds, so it
is post-processing and costs nothing. Each is total: a value that is not a finite number
(None, NaN, a string) passes through unchanged, nothing raises (DESIGN.md: post-processing
never raises).

"Not informative" (issue 13): a figure whose interval tells little about it. With a
bounded public range [a, b], when the interval covers at least
:data:`NOT_INFORMATIVE_SHARE` of it (a median of a skewed income column bounded [0, 1e8]
whose interval is [0, 6e7]). With a range open on a side (counts, sums, derived figures),
when the interval reaches 0 from a figure that is not 0-wide: the noise is as large as the
figure itself, so even its sign, or whether the group is empty, is not known. A missing or
infinite interval is not informative either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from query_guard.plan import Measurement

#: Share of the public range an interval must cover to be flagged "not informative".
NOT_INFORMATIVE_SHARE = 0.5

Range = tuple[float | None, float | None]


def _real(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _bounds(m: Measurement) -> tuple[float, float] | None:
    lo, hi = m.lower, m.upper
    if not (_real(lo) and _real(hi)) or lo > hi:  # type: ignore[operator]
        return None
    return float(lo), float(hi)  # type: ignore[arg-type]


def public_range(m: Measurement) -> Range:
    """The range the public bounds allow for ``m``'s true figure (None: open on that side).

    >>> from query_guard.plan import Measurement
    >>> public_range(Measurement("m0", "mean", {}, 1, 1, 0, 5000))
    (0.0, 5000.0)
    >>> public_range(Measurement("m0", "sum", {}, 1, 1, -3, 10))
    (None, None)
    """
    if m.kind in ("count", "count_distinct"):
        return (0.0, None)
    b = _bounds(m)
    if b is None:
        return (None, None)
    lo, hi = b
    if m.kind == "sum":
        return (0.0 if lo >= 0 else None, 0.0 if hi <= 0 else None)
    if m.kind in ("mean", "quantile"):
        return (lo, hi)
    if m.kind == "variance":
        return (0.0, (hi - lo) ** 2 / 4)
    if m.kind == "stddev":
        return (0.0, (hi - lo) / 2)
    return (None, None)


def _clip(x: Any, lo: float | None, hi: float | None) -> Any:
    if not _real(x):
        return x
    y = x
    if lo is not None and y < lo:
        y = lo
    if hi is not None and y > hi:
        y = hi
    return type(x)(y) if isinstance(x, int) and float(y).is_integer() else y


def _clip_limits(m: Measurement) -> Range:
    """What values and interval ends are clipped to: the public range, except the upper
    end of a variance or stddev (the sample estimator may exceed the population bound;
    ``privacy.estimates`` caps it with the count)."""
    lo, hi = public_range(m)
    if m.kind in ("variance", "stddev"):
        hi = None
    return lo, hi


def _clip_interval(iv: Any, lo: float | None, hi: float | None) -> Any:
    if not isinstance(iv, tuple | list) or len(iv) != 2:
        return iv
    a, b = _clip(iv[0], lo, hi), _clip(iv[1], lo, hi)
    if _real(a) and _real(b) and a > b:
        a, b = b, a
    return (a, b)


def constrain_values(m: Measurement, values: Sequence[Any]) -> list[Any]:
    """Per group, ``m``'s noisy figure moved into its public range (quantiles: each
    fraction's value inside the bounds and non-decreasing in the fraction)."""
    return _per_group(m, values, _clip, _monotone_values)


def _monotone_values(clipped: list[Any], order: list[int]) -> list[Any]:
    """One group's quantile values as a running maximum in the fraction's order."""
    running: float | None = None
    for i in order:
        if i < len(clipped) and _real(clipped[i]):
            running = clipped[i] if running is None else max(running, clipped[i])
            clipped[i] = running
    return clipped


def monotone_across(measurements: Sequence[Measurement], point: dict[str, list[Any]]
                    ) -> dict[str, list[Any]]:
    """Quantiles of one value asked for in separate calls (``QUANTILE_CONT(x, 0.25)``,
    ``QUANTILE_CONT(x, 0.75)``) come from separate noisy histograms, so their figures may
    cross. Per group, make them non-decreasing in the fraction (a running maximum), as
    one call's fractions are. Measurements agree on the value when they share its
    expression, dataset and bounds."""
    by_value: dict[tuple[Any, ...], list[tuple[float, str, int]]] = {}
    for m in measurements:
        if m.kind == "quantile" and m.id in point:
            key = (m.expression_sql, m.dataset, m.lower, m.upper)
            by_value.setdefault(key, []).extend((f, m.id, i) for i, f in enumerate(m.quantiles))
    out = dict(point)
    for members in by_value.values():
        if len({mid for _, mid, _ in members}) < 2:
            continue
        members.sort(key=lambda t: t[0])
        for mid in {mid for _, mid, _ in members}:
            out[mid] = [list(g) if isinstance(g, list) else g for g in out[mid]]
        groups = min(len(out[mid]) for _, mid, _ in members)
        for g in range(groups):
            running: float | None = None
            for _, mid, i in members:
                cell = out[mid][g]
                if isinstance(cell, list) and i < len(cell) and _real(cell[i]):
                    running = cell[i] if running is None else max(running, cell[i])
                    cell[i] = running
    return out


def constrain_intervals(m: Measurement, intervals: Sequence[Any]) -> list[Any]:
    """Per group, ``m``'s interval clipped like its value. Quantiles: each fraction's
    interval inside the bounds; a lower end never below a smaller fraction's lower end and
    an upper end never above a larger fraction's upper end (valid because the intervals of
    one histogram hold jointly: q₁ ≤ q₂ ≤ u₂ gives q₁ ≤ u₂)."""
    return _per_group(m, intervals, _clip_interval, _monotone_intervals)


def _monotone_intervals(ivs: list[Any], order: list[int]) -> list[Any]:
    """One group's quantile intervals with ends monotone in the fraction's order."""
    ok = [i for i in order if i < len(ivs) and isinstance(ivs[i], tuple)
          and _real(ivs[i][0]) and _real(ivs[i][1])]
    running = -math.inf
    for i in ok:
        running = max(running, ivs[i][0])
        ivs[i] = (running, ivs[i][1])
    running = math.inf
    for i in reversed(ok):
        running = min(running, ivs[i][1])
        ivs[i] = (ivs[i][0], max(ivs[i][0], running))
    return ivs


def _per_group(
    m: Measurement,
    per_group: Sequence[Any],
    clip: Callable[[Any, float | None, float | None], Any],
    monotone: Callable[[list[Any], list[int]], list[Any]],
) -> list[Any]:
    """Each group's figure (value or interval) clipped to ``m``'s limits; a quantile's
    list of figures, one a fraction, clipped each, then made ``monotone`` in the fraction."""
    lo, hi = _clip_limits(m)
    if m.kind != "quantile":
        return [clip(v, lo, hi) for v in per_group]
    order = sorted(range(len(m.quantiles)), key=lambda i: m.quantiles[i])
    out = []
    for group in per_group:
        if not isinstance(group, list):
            out.append(clip(group, lo, hi))
            continue
        out.append(monotone([clip(v, lo, hi) for v in group], order))
    return out


def not_informative(interval: Any, public: Sequence[Any] | None) -> bool:
    """Whether ``interval`` says too little about its figure (module docstring).

    >>> not_informative((0, 3000), (0, 5000)), not_informative((100, 900), (0, 5000))
    (True, False)
    >>> not_informative((0.0, 12.5), (0, None)), not_informative((80.0, 95.0), (0, None))
    (True, False)
    """
    if not isinstance(interval, tuple | list) or len(interval) != 2:
        return True
    a, b = interval
    if not (_real(a) and _real(b)):
        return True
    width = abs(b - a)
    lo, hi = (public or (None, None))[:2] if isinstance(public, tuple | list) and len(public) == 2 \
        else (None, None)
    if _real(lo) and _real(hi) and hi > lo:
        return width >= NOT_INFORMATIVE_SHARE * (hi - lo)
    return width > 0 and min(a, b) <= 0 <= max(a, b)


__all__ = ["NOT_INFORMATIVE_SHARE", "constrain_intervals", "constrain_values", "monotone_across",
           "not_informative", "public_range"]
