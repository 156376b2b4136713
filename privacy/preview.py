"""Expected accuracy and cost of a plan before it runs, and ε for a target accuracy.

Everything here is computed from the plan and the budget only (the calibration is
data-independent), so it may be shown to anyone and costs nothing. For counts and sums
the expected half-width is exact: it is the interval the release will carry. Averages,
variances and quantiles divide by a group's size, which only the data knows; given an
``expected_rows`` (the researcher's own guess, public), a worst-case half-width is shown,
else the parts' half-widths and the formula.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from privacy.accounting import Charge
from privacy.allocation import FamilyChoice, NoisePlan, calibrate, calibrate_budget, split_delta
from privacy.errors import AccuracyError, PrivacyError
from privacy.mechanisms import Family
from privacy.mechanisms import half_width as noise_half_width
from privacy.quantiles import cumulative_band
from privacy.release import MechanismRecord, _record
from privacy.sensitivity import centre
from privacy.zcdp import epsilon_from_rho, rho_for_epsilon
from query_guard.plan import Measurement, OutputColumn, QueryPlan

MAX_EPSILON = 100.0


@dataclass(frozen=True)
class ColumnAccuracy:
    """Expected accuracy of one output column at ``confidence``.

    ``half_width``: the interval will be value ± this (None when it depends on data the
    preview cannot see; ``formula`` and ``parts`` then say how it will be computed).
    ``unit``: "value", or "rank" for quantiles (rows of the sorted data).
    """

    column: str
    kind: str
    half_width: float | None
    confidence: float
    unit: str = "value"
    method: str = ""
    formula: str = ""
    parts: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Preview:
    epsilon: float
    delta: float
    rho: float | None
    rho_delta: float
    family: str
    confidence: float
    columns: list[ColumnAccuracy]
    mechanisms: list[MechanismRecord]

    @property
    def charge(self) -> Charge:
        return Charge(self.epsilon, self.delta, self.rho, self.rho_delta)

    def as_dict(self) -> dict[str, object]:
        return {
            "cost": {"epsilon": self.epsilon, "delta": self.delta, "rho": self.rho,
                     "rho_delta": self.rho_delta, "noise": self.family},
            "confidence": self.confidence,
            "columns": {c.column: {k: v for k, v in asdict(c).items() if k != "column"}
                        for c in self.columns},
            "mechanisms": [asdict(m) for m in self.mechanisms],
        }


def _measurement(plan: QueryPlan, ref: str) -> Measurement:
    for m in plan.measurements:
        if m.id == ref:
            return m
    raise PrivacyError(f"output refers to unknown measurement {ref}", code="internal_error")


def _half(noise: NoisePlan, m: Measurement, stat: str, alpha: float) -> float:
    spec = noise.partitions if m.id in noise.count_from_partitions else noise.spec(m.id, stat)
    assert spec is not None
    return noise_half_width(spec.family, spec.scale, alpha) / spec.unit  # as the release's


def column_accuracy(plan: QueryPlan, noise: NoisePlan, oc: OutputColumn, confidence: float,
                    expected_rows: int | None = None) -> ColumnAccuracy:
    """The expected half-width of output column ``oc`` (see the module doc)."""
    alpha = 1 - confidence
    if oc.source == "group":
        return ColumnAccuracy(oc.name, "group", 0.0, confidence, method="public or selected key")
    if oc.source == "derived":
        return ColumnAccuracy(oc.name, "derived", None, confidence,
                              formula="interval arithmetic over its parts' intervals")
    m = _measurement(plan, oc.ref)
    n = expected_rows
    if m.kind in ("count", "count_distinct"):
        return ColumnAccuracy(oc.name, m.kind, _half(noise, m, "count", alpha), confidence,
                              method="OpenDP accuracy function")
    if m.kind == "sum":
        return ColumnAccuracy(oc.name, m.kind, _half(noise, m, "sum", alpha), confidence,
                              method="OpenDP accuracy function")
    lo, hi = float(m.lower), float(m.upper)  # type: ignore[arg-type]
    r = centre(m).value_radius
    if m.kind == "mean":
        a_s, a_c = _half(noise, m, "csum", alpha / 2), _half(noise, m, "count", alpha / 2)
        hw = None if n is None else min((hi - lo) / 2, (a_s + r * a_c) / max(n - a_c, 1.0))
        return ColumnAccuracy(oc.name, m.kind, hw, confidence, method="worst case over means",
                              formula=f"(sum ± {a_s:.6g} + r·(count ± {a_c:.6g})) / n, r = {r:g}",
                              parts={"sum": a_s, "count": a_c})
    if m.kind in ("variance", "stddev"):
        a_q, a_s, a_c = (_half(noise, m, s, alpha / 3) for s in ("csumsq", "csum", "count"))
        hw = None
        if n is not None:
            hw = min((hi - lo) ** 2 / 4, (a_q + 2 * r * a_s + r * r * a_c) / max(n - a_c - 1, 1.0))
            hw = math.sqrt(hw) if m.kind == "stddev" else hw
        return ColumnAccuracy(oc.name, m.kind, hw, confidence, method="first-order worst case",
                              formula="(Q ± a_q + 2r·(S ± a_s) + r²·(C ± a_c)) / (n − 1)"
                              + (", then √ (|√a − √b| ≤ √|a − b|)" if m.kind == "stddev" else ""),
                              parts={"sum_of_squares": a_q, "sum": a_s, "count": a_c})
    spec = noise.spec(m.id, "hist")
    band = cumulative_band(spec.family, spec.scale, m.bins, alpha)
    return ColumnAccuracy(oc.name, m.kind, band, confidence, unit="rank",
                          method="Doob–Chernoff bound on the histogram's cumulative noise",
                          formula=f"true quantile lies between the values at ranks "
                          f"f·n ± {band:.6g} (plus one bin of width {(hi - lo) / m.bins:g})")


def _output(plan: QueryPlan, column: str) -> OutputColumn:
    for oc in plan.outputs:
        if oc.name == column and not oc.hidden:
            return oc
    names = ", ".join(oc.name for oc in plan.outputs if not oc.hidden)
    raise AccuracyError(f"no output column {column!r}; the query returns: {names}")


def _value_half_width(plan: QueryPlan, noise: NoisePlan, oc: OutputColumn, confidence: float,
                      expected_rows: int | None) -> float:
    acc = column_accuracy(plan, noise, oc, confidence, expected_rows)
    if acc.half_width is None or acc.unit != "value":
        why = ("it is computed from other columns" if acc.kind == "derived" else
               "quantile accuracy is a rank band, not a value" if acc.unit == "rank" else
               f"the accuracy of a {acc.kind} depends on the group's size; give expected_rows")
        raise AccuracyError(f"cannot turn a target accuracy for column {oc.name!r} into ε: {why}")
    return acc.half_width


def epsilon_for_accuracy(
    plan: QueryPlan, column: str, half_width: float, confidence: float = 0.95, *,
    delta: float = 0.0, family: FamilyChoice = "auto", pure: bool = False,
    expected_rows: int | None = None, max_epsilon: float = MAX_EPSILON,
) -> float:
    """The smallest ε whose release gives ``column`` an interval of ± ``half_width``.

    Calibration with the same (delta, family, pure) as the release will use; the answer
    is checked against :func:`calibrate` itself, so releasing at it meets the target.
    """
    if not (half_width > 0 and math.isfinite(half_width)):
        raise AccuracyError("half_width must be a positive number")
    if not 0.5 <= confidence < 1:
        raise AccuracyError("confidence must be between 0.5 and 1")
    oc = _output(plan, column)
    families: list[Family] = ["laplace"]
    if not pure and delta > 0 and family in ("auto", "gaussian"):
        families = ["gaussian"] if family == "gaussian" else ["laplace", "gaussian"]
    candidates = []
    for fam in families:
        eps = _search(plan, oc, half_width, confidence, delta, fam, expected_rows, max_epsilon)
        if eps is not None:
            candidates.append(eps)
    for eps in sorted(candidates):
        for _ in range(40):  # the float round trip ε → ρ may lose the last bits
            noise = calibrate(plan, eps, delta, family=family, pure=pure)
            if _value_half_width(plan, noise, oc, confidence, expected_rows) <= half_width:
                return eps
            eps *= 1 + 1e-6
    raise AccuracyError(
        f"column {column!r} cannot reach ± {half_width:g} at {confidence:.0%} with ε ≤ "
        f"{max_epsilon:g}", code="accuracy_unreachable")


def _search(plan: QueryPlan, oc: OutputColumn, target: float, confidence: float, delta: float,
            fam: Family, expected_rows: int | None, max_epsilon: float) -> float | None:
    """Bisection (in log space) on the family's own budget, then its ε."""
    delta_ps, delta_conv = split_delta(plan, delta, fam)
    hi = max_epsilon if fam == "laplace" else rho_for_epsilon(max_epsilon, delta_conv)
    lo = hi * 1e-9

    def ok(budget: float) -> bool:
        noise = calibrate_budget(plan, budget, fam, delta_ps, delta_conv)
        return _value_half_width(plan, noise, oc, confidence, expected_rows) <= target

    if not ok(hi):
        return None
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        if hi / lo < 1 + 1e-7:
            break
    return hi if fam == "laplace" else epsilon_from_rho(hi, delta_conv)


def preview(
    plan: QueryPlan, *, epsilon: float | None = None, target: tuple[str, float, float] | None = None,
    delta: float = 0.0, confidence: float = 0.95, family: FamilyChoice = "auto",
    pure: bool = False, expected_rows: int | None = None,
) -> Preview:
    """Cost and expected accuracy of every output column, without running anything.

    Give ``epsilon``, or ``target = (column, half_width, confidence)`` to use the smallest
    ε that reaches it (the preview is then at the target's confidence).
    """
    if target is not None:
        column, half_width, confidence = target
        epsilon = epsilon_for_accuracy(plan, column, half_width, confidence, delta=delta,
                                       family=family, pure=pure, expected_rows=expected_rows)
    if epsilon is None:
        raise PrivacyError("give epsilon or a target accuracy", code="bad_epsilon")
    noise = calibrate(plan, epsilon, delta, family=family, pure=pure)
    columns = [column_accuracy(plan, noise, oc, confidence, expected_rows)
               for oc in plan.outputs if not oc.hidden]
    c = noise.charge
    return Preview(c.epsilon, c.delta, c.rho, c.rho_delta, noise.family, confidence, columns,
                   [_record(s) for s in noise.specs])
