"""Turn a plan's exact per-group statistics into a private release.

Input: the :class:`query_guard.QueryPlan` and the engine's exact result (columns as
lists). Output: noisy values for every output column, a confidence interval for every
value, and the list of OpenDP measurements applied with their scales and losses (for the
audit entry). PRIVACY: exact values and the noise never leave this function; only the
released (noisy) values do.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from privacy.errors import PrivacyError
from privacy.features import dp
from privacy.mechanisms import discrete_laplace_accuracy, laplace_vector, select_partitions
from query_guard.plan import STATS_FOR_KIND, Measurement, QueryPlan

MAX_GROUPS = 100_000


@dataclass(frozen=True)
class MechanismRecord:
    measurement: str
    statistic: str
    mechanism: str
    sensitivity: float
    scale: float
    epsilon: float
    delta: float = 0.0


@dataclass(frozen=True)
class Release:
    """The released table: ``rows`` hold noisy values only; ``intervals[c][r]`` is the
    (lower, upper) interval of row r's value in output column c (None for group keys)."""

    columns: list[str]
    rows: list[list[Any]]
    intervals: dict[str, list[tuple[float, float] | None]]
    methods: dict[str, str]
    confidence: float
    epsilon: float
    delta: float
    mechanisms: list[MechanismRecord] = field(default_factory=list)
    hidden: frozenset[str] = frozenset()


def planned_components(plan: QueryPlan) -> int:
    """How many noisy statistics the plan needs (each gets an equal share of ε)."""
    n = sum(len(STATS_FOR_KIND[m.kind]) for m in plan.measurements)
    return n + (1 if plan.needs_partition_selection else 0)


def _sensitivity(m: Measurement, stat: str) -> int:
    """L1 sensitivity of one statistic's vector over groups: L0 × L∞ × per-row bound."""
    rows = m.max_partitions * m.max_rows_per_partition
    if stat == "count":
        return m.max_partitions if m.kind == "count_distinct" else rows
    if stat == "hist":
        return rows
    lo, hi = float(m.lower), float(m.upper)  # type: ignore[arg-type]
    if stat == "sum":
        per_row = max(abs(lo), abs(hi))
    elif stat == "sumsq":
        per_row = max(lo * lo, hi * hi)
    else:  # pragma: no cover - contract violation
        raise PrivacyError(f"unknown statistic {stat!r}")
    return max(1, math.ceil(rows * per_row * m.fixed_point))


def _key(values: Sequence[Any]) -> str:
    return json.dumps(list(values), ensure_ascii=False, default=str, separators=(",", ":"))


def release(
    plan: QueryPlan,
    exact: Mapping[str, Sequence[Any]],
    *,
    epsilon: float,
    delta: float = 0.0,
    confidence: float = 0.95,
) -> Release:
    """Release ``plan``'s outputs with total loss ≤ (epsilon, delta) by basic composition."""
    if not 0.5 <= confidence < 1:
        raise PrivacyError("confidence must be between 0.5 and 1")
    components = planned_components(plan)
    eps_each = epsilon / components
    mechanisms: list[MechanismRecord] = []
    key_cols = [k.column for k in plan.group_keys]
    n_rows = len(exact.get("__rows", []))
    exact_index = {_key([exact[c][i] for c in key_cols]): i for i in range(n_rows)}

    # 1. Which groups are released.
    if not plan.group_keys:
        groups = [()]
    elif not plan.needs_partition_selection:
        domains = [k.public_domain for k in plan.group_keys]
        size = math.prod(len(d) for d in domains)  # type: ignore[arg-type]
        if size > MAX_GROUPS:
            raise PrivacyError(f"the grouping has {size:,} public groups; at most {MAX_GROUPS:,}")
        groups = list(itertools.product(*domains))  # type: ignore[arg-type]
    else:
        l0 = max(m.max_partitions for m in plan.measurements)
        linf = max(m.max_rows_per_partition for m in plan.measurements)
        candidate = {}
        for key, i in exact_index.items():
            values = json.loads(key)
            if all(
                k.public_domain is None or v in k.public_domain
                for k, v in zip(plan.group_keys, values, strict=True)
            ):
                candidate[key] = int(exact["__rows"][i])
        selected = select_partitions(candidate, l0=l0, linf=linf, epsilon=eps_each, delta=delta)
        mechanisms.append(
            MechanismRecord("partitions", "rows", "laplace_threshold", l0 * linf,
                            selected.scale, selected.epsilon, selected.delta)
        )
        groups = sorted((tuple(json.loads(k)) for k in selected.counts), key=_key)

    alpha = 1 - confidence
    rows_idx = [exact_index.get(_key(g)) for g in groups]
    values: dict[str, list[Any]] = {}
    intervals: dict[str, list[tuple[float, float] | None]] = {}
    methods: dict[str, str] = {}

    # 2. Noise each statistic of each measurement.
    for m in plan.measurements:
        stats = STATS_FOR_KIND[m.kind]
        noisy: dict[str, list[float]] = {}
        half: dict[str, float] = {}
        # Each statistic's interval at alpha/len(stats): a union bound over the parts.
        part_alpha = alpha / len(stats)
        for stat in stats:
            if stat == "hist":
                raise PrivacyError(
                    "quantiles are not supported yet; use COUNT, SUM, AVG, VARIANCE or STDDEV",
                    code="unsupported_aggregate",
                )
            column = exact[m.stats[stat]] if rows_idx else []
            vector = [int(column[i]) if i is not None and column[i] is not None else 0 for i in rows_idx]
            sens = _sensitivity(m, stat)
            out = laplace_vector(vector, sens, eps_each)
            mechanisms.append(MechanismRecord(m.id, stat, out.mechanism, sens, out.scale, out.epsilon))
            noisy[stat] = [float(v) for v in out.values]
            half[stat] = discrete_laplace_accuracy(out.scale, part_alpha)
        vals, ivs, method = _combine(m, noisy, half)
        values[m.id], intervals[m.id], methods[m.id] = vals, ivs, method

    # 3. Assemble output columns in SELECT order.
    columns: list[str] = []
    rows: list[list[Any]] = [[] for _ in groups]
    out_intervals: dict[str, list[tuple[float, float] | None]] = {}
    out_methods: dict[str, str] = {}
    hidden = set()
    key_pos = {k.column: i for i, k in enumerate(plan.group_keys)}
    for oc in plan.outputs:
        columns.append(oc.name)
        if oc.hidden:
            hidden.add(oc.name)
        if oc.source == "group":
            col_vals = [g[key_pos[oc.ref]] for g in groups]
            out_intervals[oc.name] = [None] * len(groups)
        elif oc.source == "measure":
            col_vals = _pick(values[oc.ref], oc.index)
            out_intervals[oc.name] = _pick(intervals[oc.ref], oc.index)
            out_methods[oc.name] = methods[oc.ref]
        else:
            col_vals, ivs = _derived(oc.expression, values, intervals, len(groups))
            out_intervals[oc.name] = ivs
            out_methods[oc.name] = "interval arithmetic over the noisy parts' intervals"
        for r, v in enumerate(col_vals):
            rows[r].append(v)
    total_eps = sum(rec.epsilon for rec in mechanisms)
    total_delta = sum(rec.delta for rec in mechanisms)
    return Release(columns, rows, out_intervals, out_methods, confidence, total_eps,
                   total_delta, mechanisms, frozenset(hidden))


def _pick(seq: list[Any], index: int) -> list[Any]:
    return [v[index] if isinstance(v, list) else v for v in seq]


def _combine(
    m: Measurement, noisy: dict[str, list[float]], half: dict[str, float]
) -> tuple[list[Any], list[tuple[float, float] | None], str]:
    """Post-process noisy statistics into the aggregate and its interval."""
    fp = m.fixed_point
    if m.kind in ("count", "count_distinct"):
        a = half["count"]
        vals = [max(0, int(v)) for v in noisy["count"]]
        return vals, [(max(0.0, v - a), v + a) for v in noisy["count"]], "discrete Laplace accuracy"
    if m.kind == "sum":
        a = half["sum"] / fp
        vals = [v / fp for v in noisy["sum"]]
        if m.value_type == "int":
            vals = [round(v) for v in vals]
        return vals, [(v - a, v + a) for v in vals], "discrete Laplace accuracy"
    lo, hi = float(m.lower), float(m.upper)  # type: ignore[arg-type]
    sums = [v / fp for v in noisy["sum"]]
    counts = noisy["count"]
    a_s, a_c = half["sum"] / fp, half["count"]
    if m.kind == "mean":
        vals, ivs = [], []
        for s, c in zip(sums, counts, strict=True):
            vals.append(min(hi, max(lo, s / c)) if c >= 1 else (lo + hi) / 2)
            ivs.append(_ratio_interval(s, a_s, c, a_c, lo, hi))
        return vals, ivs, "noisy sum / noisy count; interval from both parts' intervals"
    # variance / stddev from sum, sum of squares and count
    sqs = [v / fp for v in noisy["sumsq"]]
    max_var = ((hi - lo) / 2) ** 2
    vals, ivs = [], []
    for s, ss, c in zip(sums, sqs, counts, strict=True):
        if c < 2:
            var = max_var / 2
        else:
            mean = min(hi, max(lo, s / c))
            var = min(max_var, max(0.0, ss / c - mean * mean) * c / (c - 1))
        vals.append(math.sqrt(var) if m.kind == "stddev" else var)
        ivs.append((0.0, math.sqrt(max_var) if m.kind == "stddev" else max_var)
                   if c - a_c <= 1 else _variance_interval(s, a_s, ss, half["sumsq"] / fp, c, a_c, max_var, m.kind))
    return vals, ivs, "from noisy sum, sum of squares and count; interval by interval arithmetic"


def _ratio_interval(s: float, a_s: float, c: float, a_c: float, lo: float, hi: float) -> tuple[float, float]:
    c_lo = c - a_c
    if c_lo <= 0:
        return (lo, hi)
    cands = [(s + ds) / (c + dc) for ds in (-a_s, a_s) for dc in (-a_c, a_c)]
    # The true mean lies in [lo, hi]: clamp each end (an empty intersection clamps to a point).
    return (min(hi, max(lo, min(cands))), min(hi, max(lo, max(cands))))


def _variance_interval(s, a_s, ss, a_ss, c, a_c, max_var, kind) -> tuple[float, float]:
    c_lo, c_hi = c - a_c, c + a_c
    m2_lo, m2_hi = (ss - a_ss) / c_hi, (ss + a_ss) / c_lo
    mean_abs_hi = max(abs(s - a_s), abs(s + a_s)) / c_lo
    mean_abs_lo = 0.0 if (s - a_s) <= 0 <= (s + a_s) else min(abs(s - a_s), abs(s + a_s)) / c_hi
    v_lo = max(0.0, m2_lo - mean_abs_hi**2)
    v_hi = min(max_var, max(0.0, m2_hi - mean_abs_lo**2) * c_hi / max(c_hi - 1, 1))
    if kind == "stddev":
        return (math.sqrt(v_lo), math.sqrt(v_hi))
    return (v_lo, v_hi)


def _derived(
    expression: exp.Expression | None,
    values: dict[str, list[Any]],
    intervals: dict[str, list[tuple[float, float] | None]],
    n: int,
) -> tuple[list[Any], list[tuple[float, float] | None]]:
    """Evaluate arithmetic over noisy aggregates, with interval arithmetic for accuracy."""
    if expression is None:
        raise PrivacyError("derived output without an expression")
    out_v, out_i = [], []
    for r in range(n):
        v, iv = _eval(expression, values, intervals, r)
        out_v.append(v)
        out_i.append(iv)
    return out_v, out_i


def _eval(node: exp.Expression, values, intervals, r) -> tuple[float | None, tuple[float, float] | None]:
    if isinstance(node, exp.Paren):
        return _eval(node.this, values, intervals, r)
    if isinstance(node, exp.Column):
        name = node.name
        v = values[name][r]
        iv = intervals[name][r]
        return (None if v is None else float(v)), iv
    if isinstance(node, exp.Literal) and not node.is_string:
        x = float(node.this)
        return x, (x, x)
    if isinstance(node, exp.Neg):
        v, (lo, hi) = _eval(node.this, values, intervals, r)
        return (None if v is None else -v), (-hi, -lo)
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        a, ia = _eval(node.this, values, intervals, r)
        b, ib = _eval(node.expression, values, intervals, r)
        if a is None or b is None or ia is None or ib is None:
            return None, None
        if isinstance(node, exp.Add):
            return a + b, (ia[0] + ib[0], ia[1] + ib[1])
        if isinstance(node, exp.Sub):
            return a - b, (ia[0] - ib[1], ia[1] - ib[0])
        if isinstance(node, exp.Mul):
            prods = [x * y for x in ia for y in ib]
            return a * b, (min(prods), max(prods))
        if b == 0:
            return None, None
        if ib[0] <= 0 <= ib[1]:
            return a / b, (-math.inf, math.inf)
        quots = [x / y for x in ia for y in ib]
        return a / b, (min(quots), max(quots))
    raise PrivacyError(f"unsupported derived expression: {node.sql()}")


__all__ = ["MechanismRecord", "Release", "dp", "planned_components", "release"]
