"""Server-rendered SVG charts for the console (pure functions: data in, markup out).

Inline SVG needs no script and no inline style, so it passes the console's strict CSP
(``style-src 'self'``): colours come from classes in ``sandbox.css``, geometry from SVG
presentation attributes. Every chart has a ``<title>`` and a ``<desc>`` for screen
readers, and every mark a ``<title>`` tooltip; the numbers are also in a table beside it.
Every value is escaped: group keys and labels come from users.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from sandbox.clock import display_zone, parse_iso


def fmt(value: float | None, digits: int = 4) -> str:
    """A compact number: thousands separators for big ones, ``digits`` significant otherwise.

    >>> fmt(1234567.891), fmt(0.000123456), fmt(12.5), fmt(None)
    ('1,234,568', '0.0001235', '12.5', '—')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (Heckbert's "nice numbers").

    >>> nice_ticks(0, 97)
    [0, 20, 40, 60, 80, 100]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return []  # a release can hold values near the float range: no ticks, never a 500
    if high <= low:
        high = low + 1
    raw = (high - low) / max(1, count)
    if not math.isfinite(raw) or raw <= 0:
        return [low, high]  # the span overflows a double (e.g. -1e308 .. 1e308)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    t = start
    while t <= high + step * 0.5 and len(ticks) < 50:
        ticks.append(round(t, 12))
        if t >= high:
            break
        t += step
    return ticks


def _svg_open(width: int, height: int, title: str, desc: str, css: str) -> str:
    return (f'<svg class="chart {css}" viewBox="0 0 {width} {height}" role="img" '
            f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>")


def bar_chart(labels: Sequence[str], values: Sequence[float | None], intervals: Sequence[Sequence[float] | None],
              *, title: str, desc: str, max_bars: int = 40) -> Markup:
    """Horizontal bars with error bars (the released value and its confidence interval)."""
    labels, values, intervals = list(labels)[:max_bars], list(values)[:max_bars], list(intervals)[:max_bars]
    width, left, right, row_h, top = 520, 96, 52, 26, 10
    height = top + row_h * max(1, len(values)) + 34
    points = [v for v in values if v is not None]
    for iv in intervals:
        if iv:
            points += [p for p in iv if p is not None]
    lo, hi = min([0.0, *points]), max([0.0, *points]) or 1.0
    ticks = nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    span = (hi - lo) or 1.0

    def x(v: float) -> float:
        return left + (v - lo) / span * (width - left - right)

    parts = [_svg_open(width, height, title, desc, "bars")]
    axis_y = top + row_h * max(1, len(values)) + 4
    for t in ticks:
        parts.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top - 4}" y2="{axis_y}"/>'
                     f'<text class="tick" x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{fmt(t)}</text>')
    parts.append(f'<line class="axis" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top - 4}" y2="{axis_y}"/>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        cy = top + row_h * i + row_h / 2
        shown = label if len(label) <= 12 else label[:11] + "…"
        parts.append(f'<text class="label" x="{left - 10}" y="{cy + 4:.1f}" text-anchor="end">{escape(shown)}</text>')
        if value is None:
            continue
        x0, x1 = sorted((x(0), x(value)))
        iv = intervals[i] if i < len(intervals) else None
        tip = f"{label}: {fmt(value)}"
        if iv and iv[0] is not None and iv[1] is not None:
            tip += f" [{fmt(iv[0])}, {fmt(iv[1])}]"
        parts.append(f'<rect class="bar" x="{x0:.1f}" y="{cy - 8:.1f}" width="{max(1.0, x1 - x0):.1f}" '
                     f'height="16" rx="3"><title>{escape(tip)}</title></rect>')
        if iv and iv[0] is not None and iv[1] is not None:
            a, b = x(iv[0]), x(iv[1])
            parts.append(f'<g class="whisker"><line x1="{a:.1f}" x2="{b:.1f}" y1="{cy:.1f}" y2="{cy:.1f}"/>'
                         f'<line x1="{a:.1f}" x2="{a:.1f}" y1="{cy - 6:.1f}" y2="{cy + 6:.1f}"/>'
                         f'<line x1="{b:.1f}" x2="{b:.1f}" y1="{cy - 6:.1f}" y2="{cy + 6:.1f}"/></g>')
            end = max(b, x1)
        else:
            end = x1
        parts.append(f'<text class="value" x="{min(end + 6, width - 4):.1f}" y="{cy + 4:.1f}">{fmt(value)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def meter(spent: float, total: float, *, title: str) -> Markup:
    """A budget bar: the spent share filled; ``warn`` past 80 %, ``full`` at 100 %."""
    share = 0.0 if total <= 0 else max(0.0, min(1.0, spent / total))
    state = "full" if share >= 0.999 else "warn" if share >= 0.8 else "ok"
    width = 400
    return Markup(
        f'<svg class="meter meter-{state}" viewBox="0 0 {width} 14" preserveAspectRatio="none" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<rect class="meter-track" x="0" y="0" width="{width}" height="14" rx="7"/>'
        f'<rect class="meter-fill" x="0" y="0" width="{share * width:.1f}" height="14" rx="7"/></svg>'
    )


def _ts(text: str) -> float:
    return parse_iso(text).timestamp()


DISPLAY_TZ = display_zone()  # the console shows the display zone (Asia/Shanghai by default)


def _date_label(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, DISPLAY_TZ).strftime("%m-%d %H:%M")


def step_chart(series: Sequence[tuple[str, Sequence[tuple[str, float]], float | None]], *, title: str, desc: str,
               width: int = 720, height: int = 240, compact: bool = False) -> Markup:
    """Cumulative ε over time per series (step lines), each grant as a dashed line.

    ``series``: ``(label, [(time, cumulative), ...], total)``. ``compact``: a sparkline
    without axes labels for the budget card.
    """
    pts = [(_ts(t), v) for _, points, _ in series for t, v in points]
    if not pts:
        return Markup("")
    left, right, top, bottom = (6, 6, 8, 8) if compact else (52, 120, 16, 34)
    t0, t1 = min(p[0] for p in pts), max(p[0] for p in pts)
    if t1 - t0 < 60:
        t0 -= 30
        t1 += 30
    y_max = max([v for _, v in pts] + [float(tot) for _, _, tot in series if tot]) * 1.05 or 1.0

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * (width - left - right)

    def y(v: float) -> float:
        return height - bottom - v / y_max * (height - top - bottom)

    parts = [_svg_open(width, height, title, desc, "steps compact" if compact else "steps")]
    if not compact:
        for t in nice_ticks(0, y_max / 1.05, 4):
            if t > y_max:
                continue
            parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                         f'<text class="tick" x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
        parts.append(f'<text class="tick" x="{left}" y="{height - 10}">{_date_label(t0)}</text>'
                     f'<text class="tick" x="{width - right}" y="{height - 10}" text-anchor="end">'
                     f"{_date_label(t1)} (UTC+8)</text>")
    for i, (label, points, total) in enumerate(series):
        cls = f"s{i % 8}"
        if total and not compact:
            parts.append(f'<line class="limit {cls}" x1="{left}" x2="{width - right}" y1="{y(total):.1f}" '
                         f'y2="{y(total):.1f}"><title>{escape(label)}: {fmt(total)}</title></line>')
        if not compact:
            parts.append(f'<text class="legend {cls}" x="{width - right + 8}" y="{top + 14 + 16 * i}">'
                         f"{escape(label)}</text>")
        if not points:
            continue
        coords = [f"{x(_ts(points[0][0])):.1f},{y(0):.1f}"]
        prev = 0.0
        for when, v in points:
            coords.append(f"{x(_ts(when)):.1f},{y(prev):.1f}")
            coords.append(f"{x(_ts(when)):.1f},{y(v):.1f}")
            prev = v
        coords.append(f"{width - right:.1f},{y(prev):.1f}")
        parts.append(f'<polyline class="line {cls}" points="{" ".join(coords)}"><title>{escape(label)}</title></polyline>')
        for when, v in points:
            parts.append(f'<circle class="dot {cls}" cx="{x(_ts(when)):.1f}" cy="{y(v):.1f}" r="{2 if compact else 3}">'
                         f"<title>{escape(label)} · {escape(when[:19].replace('T', ' '))} · ε {fmt(v)}</title></circle>")
    parts.append("</svg>")
    return Markup("".join(parts))


def day_bars(days: Sequence[tuple[str, int, int]], *, title: str, desc: str, legend: tuple[str, str]) -> Markup:
    """Releases and refusals per day (two bars per day)."""
    if not days:
        return Markup("")
    width, height, left, bottom, top = 720, 180, 36, 30, 24
    y_max = max(max(a, b) for _, a, b in days) or 1
    slot = (width - left - 10) / len(days)
    bw = min(18.0, slot / 3)

    def y(v: float) -> float:
        return height - bottom - v / y_max * (height - top - bottom)

    parts = [_svg_open(width, height, title, desc, "days")]
    for t in nice_ticks(0, y_max, 3):
        if t > y_max:
            continue
        parts.append(f'<line class="grid" x1="{left}" x2="{width - 10}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, (day, rel, ref) in enumerate(days):
        cx = left + slot * i + slot / 2
        parts.append(f'<rect class="bar s0" x="{cx - bw:.1f}" y="{y(rel):.1f}" width="{bw:.1f}" '
                     f'height="{y(0) - y(rel):.1f}"><title>{escape(day)}: {rel} {escape(legend[0])}</title></rect>'
                     f'<rect class="bar s1" x="{cx:.1f}" y="{y(ref):.1f}" width="{bw:.1f}" '
                     f'height="{y(0) - y(ref):.1f}"><title>{escape(day)}: {ref} {escape(legend[1])}</title></rect>'
                     f'<text class="tick" x="{cx:.1f}" y="{height - 10}" text-anchor="middle">{escape(day[5:])}</text>')
    parts.append(f'<rect class="key s0" x="{left}" y="4" width="10" height="10"/>'
                 f'<text class="tick" x="{left + 14}" y="13">{escape(legend[0])}</text>'
                 f'<rect class="key s1" x="{left + 110}" y="4" width="10" height="10"/>'
                 f'<text class="tick" x="{left + 124}" y="13">{escape(legend[1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def remaining_sparkline(start: str, now: str, total: float, charges: Sequence[tuple[str, float]], *,
                        title: str, desc: str, width: int = 320, height: int = 64) -> Markup:
    """ε left over time: from the grant (``start``, ``total``) stepping down at each charge.

    ``charges``: ``(time, cumulative ε spent)`` in order.
    """
    if total <= 0:
        return Markup("")
    t0 = _ts(start)
    t1 = max(_ts(now), *(_ts(t) for t, _ in charges)) if charges else _ts(now)
    if t1 - t0 < 60:
        t1 = t0 + 60
    pad = 4

    def x(t: float) -> float:
        return pad + (t - t0) / (t1 - t0) * (width - 2 * pad)

    def y(v: float) -> float:
        return pad + (1 - max(0.0, v) / total) * (height - 2 * pad)

    coords = [f"{x(t0):.1f},{y(total):.1f}"]
    left = total
    dots = []
    for t, cum in charges:
        coords.append(f"{x(_ts(t)):.1f},{y(left):.1f}")
        left = total - cum
        coords.append(f"{x(_ts(t)):.1f},{y(left):.1f}")
        dots.append(f'<circle class="dot s0" cx="{x(_ts(t)):.1f}" cy="{y(left):.1f}" r="2.5">'
                    f"<title>{escape(t[:19].replace('T', ' '))} · ε {fmt(left)}</title></circle>")
    coords.append(f"{x(t1):.1f},{y(left):.1f}")
    area = " ".join(coords) + f" {x(t1):.1f},{height - pad} {x(t0):.1f},{height - pad}"
    return Markup(
        _svg_open(width, height, title, desc, "steps compact")
        + f'<polygon class="area" points="{area}"/>'
        + f'<polyline class="line s0" points="{" ".join(coords)}"/>' + "".join(dots) + "</svg>"
    )
