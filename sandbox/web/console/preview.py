"""The cost preview in words (issue 15): "About ±X (95 %)" per output column, what the ε
buys, what is left after, and — plainly — when the budget or the per-query cap is not enough.

Pure function of the preview the service returns (``sandbox.service.preview.preview_query``); the
numbers are the service's (``privacy.preview``), only phrased here. The technical formula
stays available under "How this is computed" for those who want it.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from flask_babel import gettext as _

from sandbox.web.console import notes as console_notes
from sandbox.web.console.charts import fmt

#: Group sizes used to put a mean's accuracy in words when the preview cannot know n.
EXAMPLE_SIZES: Final = (100, 1000)
_RADIUS = re.compile(r"r = ([0-9.eE+-]+)")


def _about(x: float) -> str:
    """A half-width rounded to what a reader needs: three significant digits.

    >>> _about(14.764), _about(14764.2), _about(0.012345), _about(2213330.0)
    ('14.8', '14,800', '0.0123', '2,210,000')
    """
    if x == 0 or not math.isfinite(x):
        return fmt(x)
    digits = 2 - int(math.floor(math.log10(abs(x))))
    rounded = round(x, digits)
    return f"{int(rounded):,}" if digits <= 0 else f"{rounded:,.{digits}f}"


def _mean_half_width(col: dict[str, Any], n: int) -> float | None:
    """``(a_s + r·a_c) / (n − a_c)`` — privacy.preview's worst case for a mean over n rows,
    read from its parts; None when the parts are not there."""
    parts = col.get("parts") or {}
    m = _RADIUS.search(col.get("formula") or "")
    if "sum" not in parts or "count" not in parts or m is None:
        return None
    a_s, a_c, r = float(parts["sum"]), float(parts["count"]), float(m.group(1))
    return (a_s + r * a_c) / max(n - a_c, 1.0)


def column_words(name: str, col: dict[str, Any]) -> dict[str, Any] | None:
    """One output column's expected accuracy as a sentence, or None for group keys."""
    pct = round(100 * float(col.get("confidence", 0.95)))
    kind = col.get("kind")
    hw = col.get("half_width")
    if kind == "group":
        return None
    if kind == "derived":
        text = _("Computed from the intervals of its parts.")
    elif hw is not None and col.get("unit") == "rank":
        text = _("About ±%(x)s places in the sorted data (%(pct)s%%): the value returned is the one "
                 "at most that many rows away from the true quantile.", x=_about(hw), pct=pct)
    elif hw is not None:
        text = _("About ±%(x)s (%(pct)s%%)", x=_about(hw), pct=pct)
    elif kind == "mean" and (small := _mean_half_width(col, EXAMPLE_SIZES[0])) is not None:
        large = _mean_half_width(col, EXAMPLE_SIZES[1]) or 0.0
        text = _("About ±%(a)s for a group of %(n)s people, ±%(b)s for %(m)s (%(pct)s%%): smaller groups, "
                 "wider intervals.", a=_about(small), n=EXAMPLE_SIZES[0], b=_about(large),
                 m=f"{EXAMPLE_SIZES[1]:,}", pct=pct)
    else:
        text = _("Depends on the size of each group: the larger the group, the narrower the interval.")
    return {"column": name, "kind": kind, "text": text, "formula": col.get("formula") or "",
            "method": console_notes.method(col.get("method"))}


def noise_name(family: str | None) -> str:
    """The noise family in words (the preview's ``cost.noise`` is a code: ``laplace`` …)."""
    names = {"laplace": _("Laplace noise (pure ε-DP)"), "gaussian": _("Gaussian noise (zero-concentrated DP)")}
    return names.get(family or "", family or "")


def preview_words(estimate: dict[str, Any], approval: dict[str, Any]) -> dict[str, Any]:
    """The preview as sentences: per column, the cost, what is left, and why not if it cannot run."""
    cost = float(estimate["cost"]["epsilon"])
    left = float(estimate["budget"]["epsilon"]["remaining"])
    cap = float(approval.get("epsilon_per_query") or 0)
    columns = [w for name, col in (estimate.get("columns") or {}).items() if (w := column_words(name, col))]
    if not estimate.get("within_per_query_cap", True):
        verdict = _("Cannot run: this query needs ε %(cost)s, above this approval's limit of ε %(cap)s per query. "
                    "Lower ε (the intervals get wider) or ask for a looser accuracy target.",
                    cost=fmt(cost), cap=fmt(cap))
    elif not estimate.get("affordable", True):
        verdict = _("Not enough budget: this query needs ε %(cost)s but only ε %(left)s is left. Lower ε "
                    "(the intervals get wider) or ask the data owner for more budget.",
                    cost=fmt(cost), left=fmt(left))
    else:
        verdict = None
    share = 0 if left <= 0 else round(100 * cost / left)
    return {
        "columns": columns,
        "cost": _("This query spends ε %(cost)s, %(share)s%% of the ε %(left)s left.",
                  cost=fmt(cost), share=min(share, 100), left=fmt(left)),
        "after": _("About ε %(after)s will be left after it.", after=fmt(max(left - cost, 0.0))),
        "verdict": verdict,
        "ok": verdict is None,
        "noise": noise_name(estimate["cost"].get("noise")),
    }
