"""Turn a plan's exact per-group statistics into a private release.

Input: the :class:`query_guard.QueryPlan` and the engine's exact result (columns as
lists). Output: noisy values for every output column, an interval for every value, the
OpenDP measurements applied (for the audit entry) and the :class:`Charge` — which is
what :func:`privacy.allocation.calibrate` computed from the same measurements' maps
before any data was touched. PRIVACY: exact values and the noise never leave this
function; only the released (noisy) values do.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from privacy.accounting import Charge
from privacy.allocation import PARTITIONS, FamilyChoice, NoisePlan, NoiseSpec, calibrate
from privacy.constraints import (
    Range,
    constrain_intervals,
    constrain_values,
    monotone_across,
    public_range,
)
from privacy.derived import Row, evaluate_derived
from privacy.derived import check as check_derived
from privacy.errors import PrivacyError
from privacy.estimates import Noisy, intervals, method, values
from privacy.mechanisms import (
    make_gaussian_partition_threshold,
    make_partition_threshold,
    noisy_vector,
)
from privacy.sensitivity import NOISED_STATS, exact_vector
from query_guard.plan import Measurement, OutputColumn, QueryPlan

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
    #: per measured or derived column, the range its true figure lies in by the public
    #: bounds (:func:`privacy.constraints.public_range`; None: open on that side)
    ranges: dict[str, Range] = field(default_factory=dict)
    #: what :func:`reinterval` needs to give the intervals at another confidence: the
    #: noisy statistics and their noise scales (JSON; None when too large to keep)
    state: dict[str, Any] | None = None

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
    columns, rows, out_intervals, out_methods, hidden = _table(plan, groups, noisy, 1 - confidence)
    c = noise.charge
    return Release(columns, rows, out_intervals, out_methods, confidence, c.epsilon, c.delta,
                   [_record(s) for s in noise.specs], frozenset(hidden), c.rho, c.rho_delta,
                   noise.family, notes, output_ranges(plan), _state(plan, noisy, len(groups), confidence))


def _table(plan: QueryPlan, groups: list[tuple[Any, ...]], noisy: dict[str, Noisy], alpha: float
           ) -> tuple[list[str], list[list[Any]], dict[str, list[Any]], dict[str, str], set[str]]:
    """The released table from the noisy statistics: values, intervals and methods, with
    what is public respected (:mod:`privacy.constraints`; post-processing only)."""
    point = monotone_across(plan.measurements,
                            {mid: constrain_values(n.m, values(n)) for mid, n in noisy.items()})
    columns: list[str] = []
    rows: list[list[Any]] = [[] for _ in groups]
    out_intervals: dict[str, list[Any]] = {}
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
            out_intervals[oc.name] = _pick(_intervals(noisy[oc.ref], alpha), oc.index)
            out_methods[oc.name] = method(noisy[oc.ref])
        else:
            col_vals, ivs, parts = _derived(oc.expression, noisy, point, alpha, len(groups))
            out_intervals[oc.name] = ivs
            out_methods[oc.name] = (
                f"arithmetic on noisy values; interval by interval arithmetic over its "
                f"{parts} part(s)' intervals, each at α/{parts}")
        for r, v in enumerate(col_vals):
            rows[r].append(v)
    return columns, rows, out_intervals, out_methods, hidden


def _intervals(n: Noisy, alpha: float) -> list[Any]:
    """OpenDP's intervals for the noise, clipped to what the public bounds allow."""
    return constrain_intervals(n.m, intervals(n, alpha))


def output_ranges(plan: QueryPlan) -> dict[str, Range]:
    """Per measured column, the public range of its true figure; derived: none known."""
    by_id = {m.id: m for m in plan.measurements}
    return {oc.name: public_range(by_id[oc.ref]) if oc.source == "measure" and oc.ref in by_id
            else (None, None) for oc in plan.outputs if oc.source != "group"}


#: Above this many noisy integers a release keeps no state for :func:`reinterval` (its
#: intervals then stay at the confidence it was released at).
MAX_STATE_VALUES = 500_000
STATE_VERSION = 1


def _state(plan: QueryPlan, noisy: dict[str, Noisy], n_groups: int, confidence: float) -> dict[str, Any] | None:
    """The noisy statistics and noise scales, as JSON, for :func:`reinterval`.

    PRIVACY: noisy values only (the exact ones are gone); kept with the release in the
    store, never shown (the service strips it from what it returns)."""
    if sum(len(v) for n in noisy.values() for v in n.stats.values()) > MAX_STATE_VALUES:
        return None
    return {
        "v": STATE_VERSION,
        "confidence": confidence,
        "groups": n_groups,
        "outputs": [[oc.name, oc.source, oc.ref, oc.index,
                     oc.expression.sql() if oc.expression is not None else None] for oc in plan.outputs],
        "measurements": {
            mid: {
                "m": _measurement_json(n.m),
                "stats": {k: [int(x) for x in v] for k, v in n.stats.items()},
                "noise": {k: [s.family, s.scale, s.unit] for k, s in n.specs.items()},
                "from_partitions": n.from_partitions,
            }
            for mid, n in noisy.items()
        },
    }


def _measurement_json(m: Measurement) -> dict[str, Any]:
    """Every field of ``m`` (all JSON values: numbers, text, tuples of numbers, the stats map)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(m):
        v = getattr(m, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v
    return out


def reinterval(state: Mapping[str, Any], confidence: float) -> dict[str, list[Any]]:
    """The intervals of a release at another ``confidence``, from its stored noisy
    statistics and noise scales (:attr:`Release.state`): the same noisy values, so free
    (post-processing; issue 13). Per measured or derived column, one interval per released
    group, in the release's group order (before HAVING, ORDER BY and LIMIT).

    Raises :class:`PrivacyError` (``bad_state``) when the state is not one this version
    wrote, and ``bad_confidence`` like :func:`release`.
    """
    if not 0.5 <= confidence < 1:
        raise PrivacyError("confidence must be between 0.5 and 1", code="bad_confidence")
    try:
        if state.get("v") != STATE_VERSION:
            raise ValueError("version")
        noisy: dict[str, Noisy] = {}
        for mid, rec in state["measurements"].items():
            m = Measurement(**{k: tuple(v) if isinstance(v, list) else v for k, v in rec["m"].items()})
            specs = {k: NoiseSpec(mid, k, fam, 0.0, float(scale), None, None, unit=float(unit))
                     for k, (fam, scale, unit) in rec["noise"].items()}
            noisy[mid] = Noisy(m, {k: [int(x) for x in v] for k, v in rec["stats"].items()}, specs,
                               bool(rec["from_partitions"]))
        outputs = [OutputColumn(name, source, ref, int(index),
                                sqlglot.parse_one(expr) if expr is not None else None)
                   for name, source, ref, index, expr in state["outputs"]]
        groups: list[tuple[Any, ...]] = [()] * int(state["groups"])
        alpha = 1 - confidence
        out: dict[str, list[Any]] = {}
        for oc in outputs:
            if oc.source == "measure":
                out[oc.name] = _pick(_intervals(noisy[oc.ref], alpha), oc.index)
            elif oc.source == "derived":
                out[oc.name] = _derived(oc.expression, noisy, {mid: constrain_values(n.m, values(n))
                                                                for mid, n in noisy.items()},
                                        alpha, len(groups))[1]
        return out
    except PrivacyError:
        raise
    except Exception as err:  # a state written by another version, or damaged
        raise PrivacyError(f"the release's stored state cannot be read ({type(err).__name__})",
                           code="bad_state") from None


def _bins(plan: QueryPlan) -> int:
    return max([1, *(m.bins for m in plan.measurements if m.kind == "quantile")])


def max_released_groups(plan: QueryPlan) -> int:
    """How many groups one release may hold: bounds the noise drawn per request."""
    return min(MAX_GROUPS, MAX_NOISED_VALUES // _bins(plan))


def check_plan(plan: QueryPlan) -> None:
    """Refuse, from the plan alone, what the release could not do whatever the data.

    PRIVACY: decided before the charge and before any data is read, so a refusal never
    depends on the data. Two things: a derived output :mod:`privacy.derived` cannot compute, and a
    release over public domains that would be too large. Groups found by partition
    selection are not known in advance; there the release keeps the
    :func:`max_released_groups` groups with the largest noisy counts and says so in a note
    (post-processing).
    """
    for oc in plan.outputs:
        if oc.source == "derived" and oc.expression is not None:
            check_derived(oc.name, oc.expression)
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
    ivs = {p: _intervals(noisy[p], alpha / k) for p in parts if p in noisy}
    out_v, out_i = [], []
    for r in range(n):
        v, iv = evaluate_derived(expression, Row(point, ivs, r))
        out_v.append(v)
        out_i.append(iv)
    return out_v, out_i, k


__all__ = ["MechanismRecord", "Release", "output_ranges", "planned_components", "reinterval", "release"]
