"""Turn a plan's exact per-group statistics into a private release.

Input: the :class:`query_guard.QueryPlan` and the engine's exact result (columns as
lists). Output: noisy values for every output column, an interval for every value, the
OpenDP measurements applied (for the audit entry) and the :class:`Charge` — which is
what :func:`privacy.allocation.calibrate` computed from the same measurements' maps
before any data was touched. PRIVACY: exact values and the noise never leave this
function; only the released (noisy) values do.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from privacy.accounting import Charge
from privacy.allocation import PARTITIONS, FamilyChoice, NoisePlan, NoiseSpec, calibrate
from privacy.errors import PrivacyError
from privacy.estimates import Noisy, intervals, method, values
from privacy.mechanisms import (
    make_gaussian_partition_threshold,
    make_partition_threshold,
    noisy_vector,
)
from privacy.sensitivity import NOISED_STATS, exact_vector
from query_guard.plan import QueryPlan

MAX_GROUPS = 100_000
MAX_NOISED_VALUES = 2_000_000  # groups × histogram bins: keeps one release's noise bounded


@dataclass(frozen=True)
class MechanismRecord:
    """One OpenDP measurement as applied: enough to re-check its map in an audit."""

    measurement: str
    statistic: str
    mechanism: str
    sensitivity: float
    scale: float
    epsilon: float | None
    delta: float = 0.0
    rho: float | None = None
    threshold: int | None = None


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
    rho: float | None = None
    rho_delta: float = 0.0
    family: str = "laplace"
    notes: list[str] = field(default_factory=list)

    @property
    def charge(self) -> Charge:
        return Charge(self.epsilon, self.delta, self.rho, self.rho_delta)


MECHANISM_NAMES = {
    ("laplace", False): "discrete_laplace",
    ("gaussian", False): "discrete_gaussian",
    ("laplace", True): "laplace_threshold",
    ("gaussian", True): "gaussian_threshold",
}


def planned_components(plan: QueryPlan) -> int:
    """How many noised statistics the plan needs (kept for the cache key's shape)."""
    n = sum(len(NOISED_STATS[m.kind]) for m in plan.measurements)
    return n + (1 if plan.needs_partition_selection else 0)


def _key(values: Sequence[Any]) -> str:
    return json.dumps(list(values), ensure_ascii=False, default=str, separators=(",", ":"))


def _record(s: NoiseSpec) -> MechanismRecord:
    name = MECHANISM_NAMES[(s.family, s.measurement == PARTITIONS)]
    return MechanismRecord(s.measurement, s.stat, name, s.sensitivity, s.scale, s.epsilon,
                           s.delta, s.rho, s.threshold)


def release(
    plan: QueryPlan,
    exact: Mapping[str, Sequence[Any]],
    *,
    epsilon: float,
    delta: float = 0.0,
    confidence: float = 0.95,
    family: FamilyChoice = "auto",
    pure: bool = False,
    noise: NoisePlan | None = None,
) -> Release:
    """Release ``plan``'s outputs with per-query loss ≤ (epsilon, delta).

    ``delta`` is the δ this query may use (partition selection; Gaussian noise when it is
    more accurate). ``pure``: the owner requires pure ε-DP (Laplace only, δ unused).
    ``noise``: a plan from :func:`~privacy.allocation.calibrate` made earlier with the
    same arguments (the service calibrates once to check the budget).
    """
    if not 0.5 <= confidence < 1:
        raise PrivacyError("confidence must be between 0.5 and 1", code="bad_confidence")
    noise = noise or calibrate(plan, epsilon, delta, family=family, pure=pure)
    key_cols = [k.column for k in plan.group_keys]
    n_rows = len(exact.get("__rows", []))
    exact_index = {_key([exact[c][i] for c in key_cols]): i for i in range(n_rows)}

    check_plan(plan)  # PRIVACY: refusals are decided from the plan, never the data
    groups, partition_counts, notes = _groups(plan, exact, exact_index, noise)
    rows_idx = [exact_index.get(_key(g)) for g in groups]
    alpha = 1 - confidence

    noisy: dict[str, Noisy] = {}
    for m in plan.measurements:
        stats: dict[str, list[int]] = {}
        specs: dict[str, NoiseSpec] = {}
        if m.id in noise.count_from_partitions:
            assert noise.partitions is not None and partition_counts is not None
            stats["count"] = [partition_counts[_key(g)] for g in groups]
            specs["count"] = noise.partitions
        else:
            for stat in NOISED_STATS[m.kind]:
                spec = noise.spec(m.id, stat)
                vector = exact_vector(m, stat, exact, rows_idx)
                stats[stat] = noisy_vector(vector, spec.family, spec.scale)
                specs[stat] = spec
        noisy[m.id] = Noisy(m, stats, specs, m.id in noise.count_from_partitions)
    del exact  # PRIVACY: nothing exact below this line

    point = {mid: values(n) for mid, n in noisy.items()}
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
            col_vals = _pick(point[oc.ref], oc.index)
            out_intervals[oc.name] = _pick(intervals(noisy[oc.ref], alpha), oc.index)
            out_methods[oc.name] = method(noisy[oc.ref])
        else:
            col_vals, ivs, parts = _derived(oc.expression, noisy, point, alpha, len(groups))
            out_intervals[oc.name] = ivs
            out_methods[oc.name] = (
                f"arithmetic on noisy values; interval by interval arithmetic over its "
                f"{parts} part(s)' intervals, each at α/{parts}")
        for r, v in enumerate(col_vals):
            rows[r].append(v)
    c = noise.charge
    return Release(columns, rows, out_intervals, out_methods, confidence, c.epsilon, c.delta,
                   [_record(s) for s in noise.specs], frozenset(hidden), c.rho, c.rho_delta,
                   noise.family, notes)


def _bins(plan: QueryPlan) -> int:
    return max([1, *(m.bins for m in plan.measurements if m.kind == "quantile")])


def max_released_groups(plan: QueryPlan) -> int:
    """How many groups one release may hold: bounds the noise drawn per request."""
    return min(MAX_GROUPS, MAX_NOISED_VALUES // _bins(plan))


#: The nodes a derived output (arithmetic over released aggregates) may hold: ``_eval``.
DERIVED_NODES = (exp.Paren, exp.Column, exp.Identifier, exp.Literal, exp.Neg, exp.Add, exp.Sub, exp.Mul, exp.Div)


def check_plan(plan: QueryPlan) -> None:
    """Refuse, from the plan alone, what the release could not do whatever the data.

    PRIVACY: decided before the charge and before any data is read, so a refusal never
    depends on the data. Two things: a derived output ``_eval`` cannot compute, and a
    release over public domains that would be too large. Groups found by partition
    selection are not known in advance; there the release keeps the
    :func:`max_released_groups` groups with the largest noisy counts and says so in a note
    (post-processing).
    """
    for oc in plan.outputs:
        if oc.source != "derived" or oc.expression is None:
            continue
        for node in oc.expression.walk():
            if not isinstance(node, DERIVED_NODES) or (isinstance(node, exp.Literal) and node.is_string):
                raise PrivacyError(
                    f"output {oc.name!r}: {node.sql()} cannot be computed on released aggregates; "
                    "use +, -, * and / with numbers, or compute it from the released figures yourself",
                    code="unsupported_expression")
    if not plan.group_keys or plan.needs_partition_selection:
        return
    size = math.prod(len(k.public_domain or ()) for k in plan.group_keys)
    if size > max_released_groups(plan):
        raise PrivacyError(
            f"the grouping has {size:,} public groups (× {_bins(plan)} histogram bins); "
            f"at most {max_released_groups(plan):,} groups fit in one release; group more coarsely",
            code="too_many_groups")


def _groups(plan: QueryPlan, exact: Mapping[str, Sequence[Any]], exact_index: dict[str, int],
            noise: NoisePlan) -> tuple[list[tuple[Any, ...]], dict[str, int] | None, list[str]]:
    """The released groups (and, after partition selection, their noisy row counts)."""
    if not plan.group_keys:
        return [()], None, []
    if not plan.needs_partition_selection:
        domains = [k.public_domain or () for k in plan.group_keys]
        return list(itertools.product(*domains)), None, []
    spec = noise.partitions
    assert spec is not None and spec.threshold is not None
    candidate = {}
    for key, i in exact_index.items():
        keys = json.loads(key)
        if all(k.public_domain is None or v in k.public_domain
               for k, v in zip(plan.group_keys, keys, strict=True)):
            candidate[key] = max(-(2**63 - 1), min(2**63 - 1, int(exact["__rows"][i])))
    build = make_partition_threshold if spec.family == "laplace" else make_gaussian_partition_threshold
    released = dict(build(spec.scale, spec.threshold)(candidate))
    notes = []
    cap = max_released_groups(plan)
    if len(released) > cap:
        # PRIVACY: post-processing of the noisy counts, not a data-dependent refusal.
        kept = sorted(released.items(), key=lambda kv: (-kv[1], kv[0]))[:cap]
        notes.append(f"{len(released):,} groups passed partition selection; the {cap:,} with "
                     "the largest noisy counts are released")
        released = dict(kept)
    groups = sorted((tuple(json.loads(k)) for k in released), key=_key)
    return groups, {k: int(v) for k, v in released.items()}, notes


def _pick(seq: list[Any], index: int) -> list[Any]:
    return [v[index] if isinstance(v, list) else v for v in seq]


def _derived(expression: exp.Expression | None, noisy: dict[str, Noisy], point: dict[str, list[Any]],
             alpha: float, n: int) -> tuple[list[Any], list[tuple[float, float] | None], int]:
    """Arithmetic over noisy aggregates; each part's interval at α/k for k parts."""
    if expression is None:
        raise PrivacyError("derived output without an expression", code="internal_error")
    parts = sorted({c.name for c in expression.find_all(exp.Column)})
    k = max(1, len(parts))
    ivs = {p: intervals(noisy[p], alpha / k) for p in parts if p in noisy}
    out_v, out_i = [], []
    for r in range(n):
        v, iv = _eval(expression, point, ivs, r)
        out_v.append(v)
        out_i.append(iv)
    return out_v, out_i, k


def _eval(node: exp.Expression, values: Mapping[str, list[Any]],
          intervals: Mapping[str, list[Any]], r: int) -> tuple[float | None, tuple[float, float] | None]:
    if isinstance(node, exp.Paren):
        return _eval(node.this, values, intervals, r)
    if isinstance(node, exp.Column):
        if node.name not in values:
            raise PrivacyError(f"derived expression refers to unknown {node.name}", code="internal_error")
        v, iv = values[node.name][r], intervals[node.name][r]
        if isinstance(v, list):  # a quantile measurement with one fraction
            v, iv = v[0], iv[0]
        return (None if v is None else float(v)), iv
    if isinstance(node, exp.Literal) and not node.is_string:
        x = float(node.this)
        return x, (x, x)
    if isinstance(node, exp.Neg):
        v, iv = _eval(node.this, values, intervals, r)
        if v is None or iv is None:
            return None, None
        return -v, (-iv[1], -iv[0])
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
    raise PrivacyError(f"unsupported derived expression: {node.sql()}", code="unsupported_expression")


__all__ = ["MechanismRecord", "Release", "planned_components", "release"]
