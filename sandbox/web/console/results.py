"""A release as the pages show it: table cells with their intervals, and the chart that fits.

Shared by the researcher's workbench and history and the regulator's trace page.
"""

from __future__ import annotations

import math
from typing import Any

from flask_babel import gettext as _

from sandbox.web.console import charts as console_charts
from sandbox.web.console import plots as console_plots


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def result_view(response: dict[str, Any]) -> dict[str, Any]:
    """Table cells with their intervals as ``[lower, upper]`` (never "±": intervals are
    clipped to the bounds, so often lopsided) and a "not informative" badge where the API
    flags one, and one bar chart per released numeric column."""
    columns: list[str] = response.get("columns") or []
    rows: list[list[Any]] = response.get("rows") or []
    accuracy: dict[str, Any] = response.get("accuracy") or {}
    confidence = next((a.get("confidence") for a in accuracy.values()), 0.95)
    table = []
    for r, row in enumerate(rows):
        cells = []
        for c, value in zip(columns, row, strict=False):
            iv, flag = None, False
            if c in accuracy:
                ivs = accuracy[c].get("intervals") or []
                iv = ivs[r] if r < len(ivs) else None
                flags = accuracy[c].get("not_informative") or []
                flag = bool(flags[r]) if r < len(flags) else False
            cells.append({"value": value, "text": console_charts.fmt(value) if _is_number(value) else value,
                          "numeric": _is_number(value), "interval": iv,
                          "interval_text": _interval_text(iv), "not_informative": flag})
        table.append(cells)
    keys = [i for i, c in enumerate(columns) if c not in accuracy]
    measures = [i for i, c in enumerate(columns) if c in accuracy and any(_is_number(row[i]) for row in rows)]
    charts = []
    pct = round(100 * float(confidence))
    # The chart that fits the data (console_plots): a line with its band over a date or
    # number key, grouped bars for two keys, horizontal bars otherwise.
    kind = console_plots.chart_kind([[row[k] for row in rows] for k in keys])
    for i in measures:
        name = columns[i]
        values = [row[i] if _is_number(row[i]) else None for row in rows]
        ivs = (accuracy[name].get("intervals") or [None] * len(rows))
        title = _("%(column)s with %(pct)d%% confidence intervals", column=name, pct=pct)
        if kind == "line":
            svg = console_plots.line_band([row[keys[0]] for row in rows], values, ivs, title=title,
                                          desc=_("A line through the released values; the shaded band: "
                                                 "confidence intervals."))
            caption = _("line: released values; band: %(pct)s%% confidence intervals", pct=pct)
        elif kind == "grouped":
            svg = console_plots.grouped_bars([row[keys[0]] for row in rows], [row[keys[1]] for row in rows],
                                             values, ivs, title=title,
                                             desc=_("Bars grouped by %(first)s, one colour per %(second)s; "
                                                    "whiskers: confidence intervals.", first=columns[keys[0]],
                                                    second=columns[keys[1]]))
            caption = _("bars by %(first)s and %(second)s; whiskers: %(pct)s%% confidence intervals",
                        first=columns[keys[0]], second=columns[keys[1]], pct=pct)
        else:
            labels = [" · ".join(str(row[k]) for k in keys) if keys else f"#{n + 1}" for n, row in enumerate(rows)]
            svg = console_charts.bar_chart(
                labels, values, ivs, title=title,
                desc=_("Horizontal bars: released values; whiskers: confidence intervals."),
            )
            caption = _("bars: released values; whiskers: %(pct)s%% confidence intervals", pct=pct)
        charts.append({"column": name, "svg": svg, "kind": kind, "caption": caption})
    return {"columns": columns, "table": table, "charts": charts, "confidence_pct": pct,
            "methods": {c: a.get("method", "") for c, a in accuracy.items()},
            "any_not_informative": any(cell["not_informative"] for row in table for cell in row),
            "has_intervals": bool(accuracy)}


def _interval_text(iv: Any) -> str | None:
    """``[lower, upper]`` as shown; an open end (no finite bound) as −∞ / ∞."""
    if not isinstance(iv, list | tuple) or len(iv) != 2:
        return None
    lo = console_charts.fmt(iv[0]) if _is_number(iv[0]) else "−∞"
    hi = console_charts.fmt(iv[1]) if _is_number(iv[1]) else "∞"
    return f"[{lo}, {hi}]"

