"""Self-contained HTML for a replay report: inline CSS and an inline SVG budget chart.

No script, no external asset (government intranets are offline; DESIGN.md). Every value
from the log is HTML-escaped: entries are data written by users.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from datetime import datetime
from typing import Any

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_W, _H, _PAD = 760, 320, 48


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _ts(text: Any) -> float | None:
    try:
        return datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
    except ValueError:
        return None


_Series = tuple[Any, list[tuple[float, float]], Any]  # approval id, (time, ε spent), ε granted


def _series(report: dict[str, Any]) -> list[_Series]:
    """Per approval with a dated charge: its cumulative ε over time, and its grant."""
    series = []
    for rec in report["approvals"].values():
        points: list[tuple[float, float]] = []
        for p in rec["timeline"]:
            moment = _ts(p["time"])
            if moment is not None:
                points.append((moment, float(p["epsilon_spent"])))
        total = (rec.get("granted") or {}).get("epsilon_total")
        if points:
            series.append((rec["approval_id"], points, total))
    return series


def _series_svg(
    i: int, one: _Series, x: Callable[[float], float], y: Callable[[float], float]
) -> list[str]:
    """One approval's step line, its grant as a dashed line, and its legend entry."""
    approval_id, points, total = one
    colour = _COLOURS[i % len(_COLOURS)]
    coords = [f"{x(points[0][0]):.1f},{y(0):.1f}"]
    prev_v = 0.0
    for t, v in points:
        coords.append(f"{x(t):.1f},{y(prev_v):.1f}")
        coords.append(f"{x(t):.1f},{y(v):.1f}")
        prev_v = v
    parts = [
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(coords)}">'
        f"<title>approval {_e(approval_id)}</title></polyline>"
    ]
    if isinstance(total, int | float):
        parts.append(
            f'<line x1="{_PAD}" x2="{_W - _PAD}" y1="{y(float(total)):.1f}" '
            f'y2="{y(float(total)):.1f}" stroke="{colour}" stroke-dasharray="6 4"/>'
        )
    parts.append(
        f'<text x="{_W - _PAD + 4}" y="{_PAD + 14 * i}" font-size="11" fill="{colour}">'
        f"approval {_e(approval_id)}</text>"
    )
    return parts


def budget_chart_svg(report: dict[str, Any]) -> str:
    """Cumulative ε spent per approval over time (step lines), grants as dashed lines."""
    series = _series(report)
    if not series:
        return '<p class="muted">No releases in this log: no budget to chart.</p>'
    t_min = min(p[0] for _, pts, _ in series for p in pts)
    t_max = max(p[0] for _, pts, _ in series for p in pts)
    y_max = (
        max(
            [p[1] for _, pts, _ in series for p in pts]
            + [float(t) for _, _, t in series if isinstance(t, int | float)]
        )
        or 1.0
    )
    t_span = (t_max - t_min) or 1.0

    def x(t: float) -> float:
        return _PAD + (t - t_min) / t_span * (_W - 2 * _PAD)

    def y(v: float) -> float:
        return _H - _PAD - v / (y_max * 1.05) * (_H - 2 * _PAD)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="privacy budget spent over time">',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#333"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#333"/>',
        f'<text x="{_PAD}" y="{_PAD - 12}" font-size="12">ε spent (cumulative)</text>',
        f'<text x="{_PAD - 6}" y="{y(0):.1f}" font-size="11" text-anchor="end">0</text>',
        f'<text x="{_PAD - 6}" y="{y(y_max):.1f}" font-size="11" text-anchor="end">{y_max:.3g}</text>',
        f'<text x="{_PAD}" y="{_H - _PAD + 16}" font-size="11">{_e(report.get("first_time"))}</text>',
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 16}" font-size="11" text-anchor="end">'
        f"{_e(report.get('last_time'))}</text>",
    ]
    for i, one in enumerate(series):
        parts += _series_svg(i, one, x, y)
    parts.append("</svg>")
    return "".join(parts)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _approval_rows(report: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            rec["approval_id"],
            rec.get("researcher"),
            (rec.get("granted") or {}).get("epsilon_total"),
            f"{rec['epsilon_spent']:.6g}",
            f"{rec['delta_spent']:.3g}",
            rec["releases"],
            rec["refusals"],
            len(rec["inconsistencies"]),
        ]
        for rec in report["approvals"].values()
    ]


def _researcher_rows(report: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            name,
            r["releases"],
            r["refusals"],
            ", ".join(f"{k}: {v}" for k, v in r["refusal_codes"].items()),
        ]
        for name, r in report["researchers"].items()
    ]


def _events(items: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [e["seq"], e["time"], e["actor"], e["action"], e["subject"], e["details"]] for e in items
    ]


def render_html(report: dict[str, Any], *, title: str = "Audit log replay") -> str:
    """The whole page: status, the budget chart, and one table per part of the report."""
    approvals = _approval_rows(report)
    researchers = _researcher_rows(report)
    event_headers = ["seq", "time", "actor", "action", "subject", "details"]
    problems = [[i["approval_id"], i["seq"], i["message"]] for i in report["inconsistencies"]]
    ledger = [
        [d["approval_id"], d["log_epsilon"], d["ledger_epsilon"], d["log_delta"], d["ledger_delta"]]
        for d in report.get("ledger_differences", [])
    ]
    flagged = bool(problems or ledger)
    status = (
        '<p class="bad">Differences found: see below.</p>'
        if flagged
        else '<p class="ok">The logged charges are consistent.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #bbb;padding:.25em .6em;text-align:left;font-size:.9em}}
th{{background:#eee}}.muted{{color:#777}}.bad{{color:#b00;font-weight:bold}}.ok{{color:#060}}
</style></head><body>
<h1>{_e(title)}</h1>
<p>{_e(report["entries"])} entries, {_e(report.get("first_time"))} to {_e(report.get("last_time"))}.</p>
{status}
<h2>Privacy budget over time</h2>
{budget_chart_svg(report)}
<h2>Approvals</h2>
{_table(["approval", "researcher", "ε granted", "ε spent", "δ spent", "releases", "refusals", "flags"], approvals)}
<h2>Researchers</h2>
{_table(["researcher", "releases", "refusals", "refusal codes"], researchers)}
<h2>Inconsistent budget reports</h2>
{_table(["approval", "seq", "problem"], problems)}
<h2>Differences with the live ledger</h2>
{_table(["approval", "ε in log", "ε in ledger", "δ in log", "δ in ledger"], ledger)}
<h2>Suspensions</h2>
{_table(event_headers, _events(report["suspensions"]))}
<h2>Tier changes</h2>
{_table(event_headers, _events(report["tier_changes"]))}
<h2>Key changes</h2>
{_table(event_headers, _events(report["key_changes"]))}
</body></html>
"""
