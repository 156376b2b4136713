"""The ``accuracy`` part of a query response, and the same release at another confidence.

Per released measured column: the confidence, how the figure and its interval were
obtained, the interval ``[lower, upper]`` of every row (never a "±": intervals are
clipped to what the bounds allow, so they are often lopsided), the public range the
bounds imply, and whether each row's figure is informative (``privacy.constraints``).

A release is cached without its confidence (``sandbox.service.query_records.cache_key``): asking again
at another confidence returns the same noisy values with intervals recomputed from the
noisy statistics and noise scales stored with the release (:func:`with_confidence`).
PRIVACY: post-processing of a release already charged; nothing is read but the store.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import privacy
from privacy import PrivacyError

#: Said with every release (response ``accuracy_note``, console, docs/privacy.md §4).
ACCURACY_NOTE = (
    "Each interval covers the noise added for privacy, at the stated confidence, and nothing "
    "else. It does not cover the bias that bounding introduces: rows beyond a person's "
    "contribution bounds (groups per person, rows per group) are left out and values are "
    "clamped to the declared bounds before aggregating, so a figure can differ from the "
    "unbounded truth by more than its interval. Figures and intervals are kept inside what "
    "the public bounds allow (counts and sums of non-negative values ≥ 0, means and "
    "quantiles inside the bounds, quantiles non-decreasing). A figure flagged "
    "not_informative has an interval covering at least half of its public range, or, for "
    "counts, sums and derived figures, reaching zero."
)

#: The key of the noisy state in the stored response (``queries.response_json``); never
#: returned to anyone.
STATE = "_noisy_state"


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def accuracy(confidence: float, methods: Mapping[str, str], ranges: Mapping[str, Sequence[Any]],
             columns: Sequence[str], intervals: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """The response's ``accuracy``: per measured column (those with a method)."""
    out: dict[str, Any] = {}
    for c in columns:
        if c not in methods:
            continue
        ivs = [None if iv is None else [_number(iv[0]), _number(iv[1])] for iv in intervals.get(c, [])]
        rng = list(ranges.get(c) or (None, None))[:2]
        public = [_number(rng[0]), _number(rng[1])] if len(rng) == 2 else [None, None]
        out[c] = {
            "confidence": confidence,
            "method": methods.get(c, ""),
            "intervals": ivs,
            "public_range": public,
            "not_informative": [privacy.not_informative(iv, public) for iv in ivs],
        }
    return out


def without_state(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored response as it may be shown: without the noisy state."""
    return {k: v for k, v in stored.items() if k != STATE}


def with_confidence(stored: Mapping[str, Any], confidence: float) -> dict[str, Any]:
    """A stored response as returned at ``confidence``: the same rows, the intervals and
    flags recomputed when the confidence differs. Never raises on a stored response:
    when its state is missing (too large to keep, or a release older than this) the
    intervals stay at their own confidence and a note says so."""
    response = without_state(stored)
    acc = response.get("accuracy") or {}
    current = next((a.get("confidence") for a in acc.values() if isinstance(a, dict)), None)
    if not acc or current is None or confidence == current:
        return response
    state = stored.get(STATE)
    try:
        if not isinstance(state, dict):
            raise PrivacyError("no state", code="bad_state")
        full = privacy.reinterval(state, confidence)
        order = [int(r) for r in state["order"]]
        columns = list(response.get("columns") or [])
        intervals = {c: [full[c][r] for r in order] for c in columns if c in acc}
    except (PrivacyError, KeyError, IndexError, TypeError, ValueError):
        response["notes"] = [*(response.get("notes") or []), (
            f"the intervals are at {100 * float(current):g}% confidence, the level this release was "
            f"made at; it cannot be recomputed at {100 * confidence:g}% (the release is too large "
            "or older than this feature)")]
        return response
    methods = {c: a.get("method", "") for c, a in acc.items()}
    ranges = {c: a.get("public_range") or (None, None) for c, a in acc.items()}
    response["accuracy"] = accuracy(confidence, methods, ranges, columns, intervals)
    return response


__all__ = ["ACCURACY_NOTE", "STATE", "accuracy", "with_confidence", "without_state"]
