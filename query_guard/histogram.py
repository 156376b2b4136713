"""Where a quantile's histogram puts its bin edges: one layout for the engine and privacy.

Quantiles are read off one noisy histogram of the clamped value (see
:mod:`privacy.quantiles`). With equal bins over owner bounds such as [0, 1e8] an income
of 50,000 shares its bin (97,656 wide) with most of the population, so the median can be
no better than a bin's width. The layout here is the union of two data-independent
grids over [lower, upper]:

* ``EQUAL_BINS`` equal-width bins (the old layout, at half the resolution), and
* ``ASINH_BINS`` bins equally spaced in ``asinh(x / unit)``: a symmetric log scale,
  linear within ``unit`` of zero, relative width ≈ ln(2·DYNAMIC_RANGE) / ASINH_BINS
  (2.8 %) above it, with ``unit = max(|lower|, |upper|) / DYNAMIC_RANGE``.

A value's bin is (equal-grid index) + (asinh-grid index), i.e. the number of interior
edges of both grids at or below it, so every bin lies between two consecutive edges of
the merged grid. PRIVACY: the layout depends on the public bounds only and each row
still falls in exactly one bin, so the histogram's sensitivity (and OpenDP's map) is
unchanged. Width anywhere is at most twice the old equal width, and where the mass of a
skewed column sits it is orders of magnitude finer.
"""

from __future__ import annotations

import math

from sqlglot import exp

EQUAL_BINS = 512
ASINH_BINS = 513
HIST_BINS = EQUAL_BINS + ASINH_BINS - 1  # 1024: bins of the merged grid
DYNAMIC_RANGE = 1e6
LAYOUT = "linear_asinh"


def asinh_unit(lower: float, upper: float) -> float:
    """Below this magnitude the asinh grid is linear (a public function of the bounds)."""
    return max(abs(lower), abs(upper)) / DYNAMIC_RANGE


def _grids(lower: float, upper: float) -> tuple[list[float], list[float]]:
    """Interior edges of the equal grid and of the asinh grid, each increasing."""
    width = (upper - lower) / EQUAL_BINS
    equal = [lower + i * width for i in range(1, EQUAL_BINS)]
    unit = asinh_unit(lower, upper)
    t_lo, t_hi = math.asinh(lower / unit), math.asinh(upper / unit)
    step = (t_hi - t_lo) / ASINH_BINS
    asinh = [unit * math.sinh(t_lo + j * step) for j in range(1, ASINH_BINS)]
    return equal, asinh


def bin_edges(lower: float, upper: float) -> list[float]:
    """The HIST_BINS + 1 edges of the merged grid (non-decreasing; ties give empty bins).

    >>> e = bin_edges(0.0, 1e8); len(e), e[0], e[-1]
    (1025, 0.0, 100000000.0)
    >>> round(e[1], 2), round(e[245] - e[244])   # vs 97,656 for 1,024 equal bins
    (2.83, 1424)
    """
    equal, asinh = _grids(lower, upper)
    return [lower, *sorted(equal + asinh), upper]


def bin_index(x: float, lower: float, upper: float) -> int:
    """The bin of one clamped value, as the engine computes it (a reference for tests)."""
    unit = asinh_unit(lower, upper)
    t_lo, t_hi = math.asinh(lower / unit), math.asinh(upper / unit)
    i = math.floor((x - lower) / (upper - lower) * EQUAL_BINS)
    j = math.floor((math.asinh(x / unit) - t_lo) / (t_hi - t_lo) * ASINH_BINS)
    return min(max(i, 0), EQUAL_BINS - 1) + min(max(j, 0), ASINH_BINS - 1)


def bin_sql(value: exp.Expr, lower: float, upper: float, number) -> exp.Expr:
    """The engine's expression for :func:`bin_index` (``number`` renders a float literal)."""
    unit = asinh_unit(lower, upper)
    t_lo, t_hi = math.asinh(lower / unit), math.asinh(upper / unit)

    def index(scaled_from: exp.Expr, origin: float, span: float, bins: int) -> exp.Expr:
        scaled = exp.Mul(
            this=exp.Div(this=exp.paren(exp.Sub(this=scaled_from, expression=number(origin))),
                         expression=number(span)),
            expression=exp.Literal.number(bins),
        )
        floored = exp.TryCast(this=exp.Floor(this=scaled), to=exp.DataType.build("INT"))
        return exp.Least(
            this=exp.Greatest(this=floored, expressions=[exp.Literal.number(0)]),
            expressions=[exp.Literal.number(bins - 1)],
        )

    asinh = exp.Anonymous(this="ASINH", expressions=[
        exp.Div(this=value.copy(), expression=number(unit))])
    return exp.Add(this=index(value.copy(), lower, upper - lower, EQUAL_BINS),
                   expression=index(asinh, t_lo, t_hi - t_lo, ASINH_BINS))
