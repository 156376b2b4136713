"""The de-identified derivative behind every unconditional download (第八、十一、十二条; issue 14).

No tier ever releases an identifier column raw. An unconditional (无条件开放) dataset is
downloaded as a *derivative* built here, never as its stored file. The derivative is an
**allow-list**: a column leaves only when it is safe by construction; everything else is
dropped, whatever its declaration (a careless or malicious declaration is the threat).

1. **dropped**: the privacy unit (a persistent pseudonym); every column declared
   ``identifier``; every column in which the risk scan — run over *every* value here, not a
   sample — finds identifier-like values; every column whose header names an identifier
   (身份证, 电话, 账号 …); and every other column that is not one of the kinds below (free
   text, near-unique text or numbers: names, notes, codes in forms no scanner knows).
2. **kept, generalised** (the columns the k target is counted over):

   * *quasi-identifiers*: those declared, and those recognised whatever their declaration —
     dates, and columns whose header or values say sex, age, birth, district/street/village,
     postcode, ethnicity, marital status, occupation, education (:func:`recognised_qi`);
   * *measures*: numbers with declared ``bounds``, coarsened into bands like a
     quasi-identifier (an exact income is as identifying as a birth date); NaN and ±inf are
     missing values, and bands never start at a person's value;
   * *categories*: text, booleans and unbounded numbers with at most ``CATEGORY_MAX`` distinct
     values; a value held by fewer than ``k_target`` persons is recoded ``*``, and the column is
     dropped if more than ``max_suppression`` of the persons hold such values.

   Datafly (Sweeney 2002) generalises one level at a time, the column with the most distinct
   values first, until every combination of *all* kept columns is shared by at least
   ``k_target`` persons; once at most ``max_suppression`` of the persons are in smaller
   combinations, their rows are removed instead.
3. **persons**, not rows or declared units: rows are linked into one person through the unit
   *and* every identifier-bearing column (declared, found by the scan, named so by its header,
   a record number such as 住院号 or a column of codes like ZY202600001:
   :func:`sandbox.governance.identifiers.persons.linking_columns`), on the scanner's normalised form (one ID number
   typed with spaces or full-width digits is one value); a value on many rows is a placeholder
   (无) and links nobody, unless it is a valid resident ID number. A dataset with no
   quasi-identifier at all, declared or recognised, is refused: k would be unchecked.
4. **successive releases** (第十二条): once a derivative is signed, later ones publish the same
   or fewer columns (a column added or renamed is held back; no quasi-identifier left: 409) at the same or
   coarser *nesting* levels — bands start at multiples of their width and widths divide each
   other (1, 5, 10, 50 …), dates go month → year, a category value hidden (``*``) stays hidden —
   so every previous row falls in one class of the new release. The guard compares class by
   class under the new (coarser) labels: a class whose count changed by fewer than
   ``k_target`` rows does not show the change (newcomers held back, departed rows retained from
   the release already public), and classes left below ``k_target`` are suppressed, so two
   downloads cannot be differenced down to one person.
5. **homogeneity**: a kept category that shows fewer than two values (other than ``*``) in a
   class of the quasi-identifiers and measures is recoded ``*`` there (distinct 2-diversity):
   k does not stop "every resident of 钢城区 in this file has 艾滋病".
6. **order**: the rows are shuffled with a secure random permutation (the stored order — a
   file sorted by ID number, or the same person at row *i* in every release — is not kept).
7. **counts across datasets** (round 3; :mod:`sandbox.governance.granular_counts`): every combination
   appears a multiple of g ≥ k times (5, 10, 20 …), so no sum or difference of open files —
   another dataset's yearly snapshot, a union of two files, renamed headers, an older version —
   is 1 … 4 rows; the multiple is anchored to every co-signed derivative of any dataset
   (``published``), so one newcomer does not tip a class over a rounding edge.

The result is scanned again (:func:`sandbox.governance.risk_scan.scan`, whole columns) and must pass
with ``k ≥ k_target``; otherwise :class:`DeidentificationError` names what failed. The recipe
— what was dropped and why, each column's level, the suppressed rows — is returned so it can
be recorded and shown beside the download. Pure functions over Arrow tables; no I/O.

This module runs the steps in order and writes the recipe; the steps are in
:mod:`sandbox.governance.deidentification` (generalisation hierarchies, what each column is,
the k-anonymity search, successive releases).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.governance import granular_counts, risk_scan
from sandbox.governance.deidentification.column_roles import (
    ColumnRoles,
    classify_columns,
    flagged_columns,
    recognised_qi,
)
from sandbox.governance.deidentification.generalisation import (
    TOP,
    column_levels,
    non_finite_as_null,
)
from sandbox.governance.deidentification.k_anonymity import (
    DeidentificationError,
    datafly,
    diversify,
    k_of,
    suppress_small,
)
from sandbox.governance.deidentification.successive_releases import (
    PREVIOUS,
    anchor_counts,
    granular_of,
    guard_differencing,
    level_name,
    level_names,
    map_level,
    previous_levels,
    shown_values,
)
from sandbox.governance.identifiers.persons import linking_columns, person_labels
from sandbox.governance.policy import ColumnPolicy, DatasetPolicy

RECIPE_FORMAT: Final = "data-sandbox/deidentification/v2"
#: The share of persons whose rows may be suppressed rather than generalising further.
MAX_SUPPRESSION: Final = 0.05


@dataclass(frozen=True)
class Derivative:
    """The table to publish (no privacy unit), its scan and the recipe that made it."""

    table: pa.Table
    scan: dict[str, Any]
    recipe: dict[str, Any]


@dataclass(frozen=True)
class Previous:
    """A signed derivative (what is already public) and its recipe: the dataset's previous one,
    or any other in ``published``; ``name`` says which (dataset and version) in the recipe, unless
    it is not ``public`` yet (awaiting the regulator)."""

    table: pa.Table
    recipe: Mapping[str, Any]
    name: str = ""
    public: bool = True


@dataclass
class _Build:
    """One derivative in the making: what its steps read and refine (levels rise, columns drop)."""

    policy: DatasetPolicy
    k_target: int
    max_suppression: float
    previous: Previous | None
    person_name: str
    persons: int
    columns: ColumnRoles
    kcols: list[str]
    cols_policy: dict[str, ColumnPolicy] = field(default_factory=dict)
    levels: dict[str, list[str]] = field(default_factory=dict)
    at: dict[str, int] = field(default_factory=dict)  # 0 = raw; i = levels[q][i - 1]
    before: dict[str, str] = field(default_factory=dict)  # the previous release's level of each column
    shown: dict[str, set[str]] = field(default_factory=dict)  # categories: the values this release shows

    def now(self) -> dict[str, str]:
        """Each kept column's current level (``raw``, ``band:10``, ``year``, ``*`` …)."""
        return {q: level_name(self.levels, self.at, q) for q in self.kcols}

    def require_qi(self, message: str) -> None:
        """Refuse when no quasi-identifier is left: k would be unchecked."""
        if not any(self.columns.roles[q] == "quasi_identifier" for q in self.kcols):
            raise DeidentificationError(message)


def _fresh(table: pa.Table, base: str) -> str:
    name = base
    while name in table.column_names:
        name += "_"
    return name


def make_derivative(table: pa.Table, policy: DatasetPolicy, raw_report: Mapping[str, Any], *, k_target: int,
                    max_suppression: float = MAX_SUPPRESSION, previous: Previous | None = None,
                    published: Sequence[Previous] = ()) -> Derivative:
    """Build, check and describe the unconditional derivative of ``table`` (see the module doc).

    ``raw_report`` is the risk scan of ``table`` as stored (its findings name columns to drop);
    the table is scanned again here over every value. ``previous`` is the dataset's last signed
    derivative, if any (the differencing guard); ``published`` every signed derivative of any
    dataset and version (granular counts anchored to them, :mod:`sandbox.governance.granular_counts`).
    """
    if k_target < risk_scan.K_MIN:
        raise DeidentificationError(f"the k-anonymity target must be at least {risk_scan.K_MIN} "
                                    f"(the risk scan's threshold), not {k_target}")
    sens = {c.name: c.sensitivity for c in policy.columns.values()}
    table = non_finite_as_null(table)
    full_scan = risk_scan.scan(table, sens, privacy_unit=policy.privacy_unit, dataset=policy.name, sample_rows=None)
    flagged = {**flagged_columns(full_scan), **flagged_columns(raw_report)}
    # 1. persons: the unit, linked through every identifier-bearing column
    findings = [*raw_report.get("identifier_findings", []), *full_scan["identifier_findings"]]
    linking, person, persons = _persons(table, policy, sens, findings, k_target)
    # 2. the allow-list: what each column is
    columns = classify_columns(table, policy, flagged, linking, person, persons, k_target, max_suppression)
    b = _Build(policy, k_target, max_suppression, previous, _fresh(table, "_person"), persons, columns,
               list(columns.roles))
    b.require_qi(
        "no quasi-identifier is declared or recognised among the columns that would be published, so the "
        "k-anonymity target cannot be checked: declare the columns an outsider could know about a person "
        "(district, age, sex, dates …) sensitivity = \"quasi_identifier\" (第十二条)")
    if previous is not None:
        _hold_back_new_columns(b, previous)
    _start_levels(b, table)
    work, suppressed, scan = _settle(b, pa.table({**columns.base, b.person_name: person}))
    differencing = None
    if previous is not None:
        work, suppressed, scan, differencing = _guard_previous(b, previous, work, suppressed)
    # l-diversity (distinct, l = 2; Machanavajjhala et al. 2007): a category that is the same for
    # everyone sharing the quasi-identifiers and measures says it of each of them; hidden there
    roles = columns.roles
    work, homogeneous = diversify(work, b.kcols, [q for q in b.kcols if roles[q] != "category"], roles)
    work, counts = _granular(b, work, published)
    suppressed += counts["suppressed_rows"]
    k = k_of(work, b.kcols, b.person_name)
    if scan["identifier_findings"] or not scan["passed"] or k < k_target:
        raise DeidentificationError(f"the de-identified derivative still fails its risk scan: "
                                    f"{'; '.join(scan['problems']) or f'k = {k} < {k_target}'}")
    # PRIVACY: a secure random permutation; the stored order (sorted by ID number, or the same
    # person at the same row in every release) must not survive.
    order = list(range(work.num_rows))
    random.SystemRandom().shuffle(order)
    work = work.take(pa.array(order, pa.int64())) if order else work
    recipe = _recipe(b, k, [policy.privacy_unit, *linking], suppressed, homogeneous, differencing, counts,
                     work.num_rows)
    return Derivative(work.drop_columns([b.person_name]), scan, recipe)


def _persons(table: pa.Table, policy: DatasetPolicy, sens: Mapping[str, str], findings: list[Mapping[str, Any]],
             k_target: int) -> tuple[list[str], pa.Array, int]:
    """The linking columns, each row's person and the number of persons (at least ``k_target``)."""
    unit = policy.privacy_unit
    qi_like = [n for n in table.column_names if n != unit and recognised_qi(n, policy.columns.get(n), table.column(n))]
    linking = linking_columns(table, unit, sens, findings, exclude=qi_like)
    labels = person_labels(table, unit, linking) if table.num_rows else np.zeros(0, dtype=np.int64)
    persons = len(np.unique(labels))
    if persons < k_target:
        raise DeidentificationError(f"the dataset holds {persons} persons, fewer than the k-anonymity target "
                                    f"{k_target}: no row-level release can meet it")
    return linking, pa.array(labels), persons


def _hold_back_new_columns(b: _Build, previous: Previous) -> None:
    """PRIVACY (第十二条): a column the previous signed release did not publish (added, or
    renamed) cannot be compared with it, so it is held back: two downloads differenced over
    a column only one of them has are not guarded."""
    prev_columns = set(previous.table.column_names)
    for q in [q for q in b.kcols if q not in prev_columns]:
        b.columns.dropped[q] = ("not in the previous signed release of this dataset: a later release publishes the "
                                "same or fewer columns, so two downloads can be compared class by class (第十二条)")
    b.kcols = [q for q in b.kcols if q in prev_columns]
    b.require_qi(
        "successive releases must publish the same or fewer columns than the previous signed release "
        f"({', '.join(sorted(prev_columns)) or 'none'}), so that two downloads can be compared class by class; "
        "no quasi-identifier of this version is among them (renamed columns count as new) (第十二条)")


def _start_levels(b: _Build, table: pa.Table) -> None:
    """Each kept column's levels, the values a category shows, and the level Datafly starts from:
    raw, or the finest that nests the previous release's."""
    base, roles, previous = b.columns.base, b.columns.roles, b.previous
    b.cols_policy = {n: b.policy.columns.get(n) or ColumnPolicy(n, "text", "sensitive") for n in b.kcols}
    b.levels = {q: column_levels(b.cols_policy[q], table.column(q), roles[q]) for q in b.kcols}
    b.at = dict.fromkeys(b.kcols, 0)
    b.before = level_names(previous.recipe, previous.table.column_names) if previous is not None else {}
    for q in [q for q in b.kcols if roles[q] == "category"]:
        if previous is not None and b.before.get(q) == "raw":
            # PRIVACY: a value the previous release hid (recoded *) stays hidden, so the classes of
            # the two releases nest (a value moving out of * would let the difference show it)
            was = shown_values(previous.table.column(q))
            text = pc.cast(base[q], pa.string())
            keep = pc.or_kleene(pc.is_null(text),
                                pc.fill_null(pc.is_in(text, value_set=pa.array(sorted(was), pa.string())), False))
            base[q] = pc.if_else(keep, text, TOP)
        b.shown[q] = shown_values(base[q])
    if previous is not None:  # the floor: the finest level of each column that nests the previous one
        b.at.update(previous_levels(previous, b.before, b.cols_policy, b.kcols, b.levels, b.shown))


def _settle(b: _Build, source: pa.Table) -> tuple[pa.Table, int, dict[str, Any]]:
    """Datafly, re-scanned until no column is newly flagged and every level nests the previous
    release's: the generalised table, its suppressed rows and its scan."""
    roles, previous = b.columns.roles, b.previous
    for _round in range(64):
        work, suppressed = datafly(source, b.cols_policy, b.kcols, b.at, b.levels, b.person_name, b.persons,
                                   b.k_target, b.max_suppression)
        # the re-scan may flag more columns (values found only after a change)
        scan = risk_scan.scan(work, dict.fromkeys(b.kcols, "quasi_identifier"), privacy_unit=b.person_name,
                              dataset=b.policy.name, sample_rows=None)
        newly = {n: w for n, w in flagged_columns(scan).items() if n not in b.columns.dropped}
        if newly:
            b.columns.dropped.update(newly)
            b.kcols = [q for q in b.kcols if q not in newly]
            source = source.drop_columns(list(newly))
            if not any(roles[q] == "quasi_identifier" for q in b.kcols):
                raise DeidentificationError("every quasi-identifier was dropped by the re-scan of the derivative")
            continue
        # Datafly may have coarsened a column past a level that nests the previous release's
        # (bands of a release signed with another origin): coarsen until it nests (``*`` always does)
        loose = [q for q in b.kcols if previous is not None and map_level(
            previous.table.column(q), b.before[q], level_name(b.levels, b.at, q), b.cols_policy[q],
            b.shown.get(q)) is None]
        if not loose:
            return work, suppressed, scan
        for q in loose:
            b.at[q] += 1
    raise DeidentificationError("the derivative's columns could not be settled: re-scans kept flagging columns or levels "
                                "kept failing to nest the previous signed release's (第十二条)")


def _guard_previous(b: _Build, previous: Previous, work: pa.Table,
                    suppressed: int) -> tuple[pa.Table, int, dict[str, Any], dict[str, Any]]:
    """The differencing guard against the previous signed release, then the classes it left
    small removed and the result re-scanned."""
    work, differencing = guard_differencing(work, previous, b.kcols, b.before, b.now(), b.cols_policy,
                                            b.person_name, b.k_target, b.shown)
    work, late = suppress_small(work, b.kcols, b.person_name, b.k_target)
    differencing["suppressed_rows"] = late
    suppressed += late
    if late > b.max_suppression * b.persons:
        raise DeidentificationError(
            f"after holding back changes of fewer than {b.k_target} rows against the previous signed release, "
            f"{late} rows are in combinations smaller than {b.k_target} (more than {b.max_suppression:.0%} of the "
            "persons); publish with the previous release's k or wait for more data (第十二条)")
    scan = risk_scan.scan(work, dict.fromkeys(b.kcols, "quasi_identifier"), privacy_unit=b.person_name,
                          dataset=b.policy.name, sample_rows=None)
    return work, suppressed, scan, differencing


def _granular(b: _Build, work: pa.Table, published: Sequence[Previous]) -> tuple[pa.Table, dict[str, Any]]:
    """PRIVACY (第十二条): every combination a multiple of g ≥ k times, anchored to what is public,
    so no sum or difference of open files — other datasets, older versions, other headers —
    singles out fewer than 5 rows (round 3 of the red team; granular_counts' module doc). The
    counts' ``suppressed_rows`` are those of classes left below k afterwards."""
    previous = b.previous
    priors, exact, compared_with = anchor_counts(work, b.kcols, b.now(), b.cols_policy, b.shown, previous, published)
    own = (priors[0] if previous is not None and compared_with[:1] == [PREVIOUS] and priors
           and granular_of(previous.recipe) else None)
    work, counts = granular_counts.make_granular(work, b.kcols, b.person_name,
                                                 granular_counts.granularity(b.k_target), priors, exact,
                                                 predecessor=own)
    counts["compared_with"] = compared_with
    counts["aligned"] = "multiples" if exact is None and counts["granularity"] > 1 else "previous exact counts"
    work, late = suppress_small(work, b.kcols, b.person_name, b.k_target)
    counts["suppressed_rows"] = late
    return work, counts


def _recipe(b: _Build, k: int, linked_by: list[str], suppressed: int, homogeneous: dict[str, int],
            differencing: dict[str, Any] | None, counts: dict[str, Any], rows: int) -> dict[str, Any]:
    """What was dropped and why, each column's level, the suppressed rows: shown beside the download."""
    c, kcols = b.columns, b.kcols
    return {
        "format": RECIPE_FORMAT,
        "k_target": b.k_target,
        "k_achieved": k,
        "persons": b.persons,
        "persons_linked_by": linked_by,
        "max_suppression": b.max_suppression,
        "dropped": [{"column": n, "reason": why} for n, why in c.dropped.items()],
        "quasi_identifiers": [{"column": q, "why": c.why_qi[q]} for q in kcols if c.roles[q] == "quasi_identifier"],
        "generalised": [{"column": q, "level": (b.levels[q][b.at[q] - 1] if b.at[q] else "raw"), "role": c.roles[q]}
                        for q in kcols if c.roles[q] != "category"],
        "kept": [q for q in kcols if c.roles[q] == "category"],
        "categories": [{"column": q, "level": (b.levels[q][b.at[q] - 1] if b.at[q] else "raw"),
                        "rare_values_recoded_persons": c.recoded.get(q, 0)}
                       for q in kcols if c.roles[q] == "category"],
        "suppressed_rows": suppressed,
        "homogeneous_classes_hidden": homogeneous,
        "differencing": differencing,
        "counts": counts,
        "row_order": "shuffled (secure random permutation)",
        "rows": rows,
    }
