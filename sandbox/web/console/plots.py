"""Result charts that fit the data (issue 15), server-rendered SVG like ``console_charts``:

- one key that is a date or a number → a line through the released values with the
  confidence band around it (``line_band``);
- two keys → grouped bars, one colour per value of the second key, with error bars
  (``grouped_bars``);
- otherwise → horizontal bars with error bars (``console_charts.bar_chart``).

Pure functions; no script, no inline style (CSP); every mark has a ``<title>`` and the
numbers are in the table beside the chart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

from markupsafe import Markup, escape

from sandbox.web.console.charts import _svg_open, fmt, nice_ticks

Kind = Literal["line", "grouped", "bars"]
MAX_GROUPS, MAX_SERIES = 16, 8


def _x_of(value: Any) -> float | None:
    """A key as a position on a continuous axis: numbers as they are, dates as days."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and len(value) >= 10:
        try:
            return dt.date.fromisoformat(value[:10]).toordinal()
        except ValueError:
            return None
    return None


def chart_kind(key_values: Sequence[Sequence[Any]]) -> Kind:
    """Which chart fits: ``key_values`` holds each key column's values, row by row.

    >>> chart_kind([["2024-01-01", "2024-02-01", "2024-03-01", None]]), chart_kind([[18, 30, 45]])
    ('line', 'line')
    >>> chart_kind([["a", "b"], ["x", "y"]]), chart_kind([["a", "b"]]), chart_kind([])
    ('grouped', 'bars', 'bars')
    """
    if len(key_values) == 1:
        # A missing key (NULL: values outside the public domain) stays in the table only.
        known = [v for v in key_values[0] if v is not None]
        xs = [_x_of(v) for v in known]
        if len(xs) >= 3 and all(x is not None for x in xs) and len(set(xs)) == len(xs):
            return "line"
    if len(key_values) == 2:
        if len(set(key_values[0])) <= MAX_GROUPS and len(set(key_values[1])) <= MAX_SERIES:
            return "grouped"
    return "bars"


def _bounds(values: Sequence[float | None], intervals: Sequence[Any], zero: bool) -> tuple[float, float, list[float]]:
    points = [v for v in values if v is not None]
    for iv in intervals:
        if iv:
            points += [p for p in iv if isinstance(p, int | float) and math.isfinite(p)]
    lo, hi = (min(points), max(points)) if points else (0.0, 1.0)
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    ticks = nice_ticks(lo, hi) or [lo, hi]
    return min(lo, ticks[0]), max(hi, ticks[-1]), ticks


def _iv(intervals: Sequence[Any], i: int) -> tuple[float, float] | None:
    iv = intervals[i] if i < len(intervals) else None
    if not iv or len(iv) != 2 or not all(isinstance(p, int | float) and math.isfinite(p) for p in iv):
        return None
    return float(iv[0]), float(iv[1])


def _y_scale(lo: float, hi: float, top: float, bottom: float) -> Callable[[float], float]:
    """A value's y in the plot area from ``top`` down to ``bottom`` (``hi`` at the top)."""

    def py(y: float) -> float:
        return top + (hi - y) / ((hi - lo) or 1.0) * (bottom - top)

    return py


def _grid(ticks: Sequence[float], py: Callable[[float], float], left: float, right: float) -> list[str]:
    """A grid line and its value at the left of the plot area, for each tick."""
    return [f'<line class="grid" x1="{left}" x2="{right}" y1="{py(t):.1f}" y2="{py(t):.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>'
            for t in ticks]


def line_band(keys: Sequence[Any], values: Sequence[float | None], intervals: Sequence[Any], *,
              title: str, desc: str) -> Markup:
    """Released values over a date or number key, joined by a line, with the interval band."""
    order = sorted((i for i in range(len(keys)) if _x_of(keys[i]) is not None), key=lambda i: _x_of(keys[i]) or 0.0)
    xs = [_x_of(keys[i]) or 0.0 for i in order]
    ys = [values[i] for i in order]
    ivs = [_iv(intervals, i) for i in order]
    width, height, left, right, top, bottom = 560, 260, 64, 16, 12, 40
    lo, hi, ticks = _bounds(ys, [iv for iv in ivs if iv], zero=False)
    x_lo, x_hi = min(xs), max(xs)

    def px(x: float) -> float:
        return left + (x - x_lo) / ((x_hi - x_lo) or 1.0) * (width - left - right)

    py = _y_scale(lo, hi, top, height - bottom)
    parts = [_svg_open(width, height, title, desc, "line-band"), *_grid(ticks, py, left, width - right)]
    band = [(px(x), py(iv[1])) for x, iv in zip(xs, ivs, strict=True) if iv]
    band += [(px(x), py(iv[0])) for x, iv in reversed(list(zip(xs, ivs, strict=True))) if iv]
    if band:
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in band)
        parts.append(f'<polygon class="band" points="{pts}"/>')
    line = [(px(x), py(y)) for x, y in zip(xs, ys, strict=True) if y is not None]
    if line:
        parts.append('<polyline class="line s0" points="' + " ".join(f"{a:.1f},{b:.1f}" for a, b in line) + '"/>')
    step = max(1, len(order) // 6)
    for n, i in enumerate(order):
        x, y, iv = xs[n], ys[n], ivs[n]
        if n % step == 0 or n == len(order) - 1:
            parts.append(f'<text class="tick" x="{px(x):.1f}" y="{height - bottom + 18}" text-anchor="middle">'
                         f"{escape(str(keys[i])[:10])}</text>")
        if y is None:
            continue
        tip = f"{keys[i]}: {fmt(y)}" + (f" [{fmt(iv[0])}, {fmt(iv[1])}]" if iv else "")
        parts.append(f'<circle class="dot s0" cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.2">'
                     f"<title>{escape(tip)}</title></circle>")
    parts.append("</svg>")
    return Markup("".join(parts))


def grouped_bars(groups: Sequence[Any], series: Sequence[Any], values: Sequence[float | None],
                 intervals: Sequence[Any], *, title: str, desc: str) -> Markup:
    """Vertical bars grouped by the first key, one colour per value of the second key."""
    group_names = list(dict.fromkeys(str(g) for g in groups))[:MAX_GROUPS]
    series_names = list(dict.fromkeys(str(s) for s in series))[:MAX_SERIES]
    cell: dict[tuple[str, str], tuple[float | None, tuple[float, float] | None]] = {}
    for i, (g, s) in enumerate(zip(groups, series, strict=True)):
        cell[(str(g), str(s))] = (values[i], _iv(intervals, i))
    width, height, left, right, top, bottom = 560, 280, 64, 12, 28, 44
    lo, hi, ticks = _bounds(list(values), [iv for _v, iv in cell.values() if iv], zero=True)
    slot = (width - left - right) / max(1, len(group_names))
    bar_w = max(3.0, min(22.0, (slot - 8) / max(1, len(series_names))))

    py = _y_scale(lo, hi, top, height - bottom)
    parts = [_svg_open(width, height, title, desc, "grouped"), *_grid(ticks, py, left, width - right)]
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{py(0):.1f}" y2="{py(0):.1f}"/>')
    for s_i, name in enumerate(series_names):  # legend
        lx = left + s_i * 90
        parts.append(f'<rect class="key s{s_i % 8}" x="{lx}" y="6" width="10" height="10" rx="2"/>'
                     f'<text class="label" x="{lx + 14}" y="15">{escape(name[:10])}</text>')
    for g_i, g in enumerate(group_names):
        x0 = left + g_i * slot + (slot - bar_w * len(series_names)) / 2
        label = g if len(g) <= 8 else g[:7] + "…"
        parts.append(f'<text class="tick" x="{left + g_i * slot + slot / 2:.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{escape(label)}</text>')
        for s_i, s in enumerate(series_names):
            if (g, s) not in cell or cell[(g, s)][0] is None:
                continue
            v, iv = cell[(g, s)]
            assert v is not None
            bx = x0 + s_i * bar_w
            y0, y1 = sorted((py(0), py(v)))
            tip = f"{g} · {s}: {fmt(v)}" + (f" [{fmt(iv[0])}, {fmt(iv[1])}]" if iv else "")
            parts.append(f'<rect class="bar key s{s_i % 8}" x="{bx:.1f}" y="{y0:.1f}" width="{bar_w - 1:.1f}" '
                         f'height="{max(1.0, y1 - y0):.1f}"><title>{escape(tip)}</title></rect>')
            if iv:
                cx, a, b = bx + (bar_w - 1) / 2, py(iv[0]), py(iv[1])
                parts.append(f'<g class="whisker"><line x1="{cx:.1f}" x2="{cx:.1f}" y1="{a:.1f}" y2="{b:.1f}"/>'
                             f'<line x1="{cx - 3:.1f}" x2="{cx + 3:.1f}" y1="{a:.1f}" y2="{a:.1f}"/>'
                             f'<line x1="{cx - 3:.1f}" x2="{cx + 3:.1f}" y1="{b:.1f}" y2="{b:.1f}"/></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
