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
   :func:`sandbox.governance.risk_scan.linking_columns`), on the scanner's normalised form (one ID number
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
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.errors import SandboxError
from sandbox.governance import granular_counts, risk_scan
from sandbox.governance.policy import ColumnPolicy, DatasetPolicy

RECIPE_FORMAT: Final = "data-sandbox/deidentification/v2"
#: The share of persons whose rows may be suppressed rather than generalising further.
MAX_SUPPRESSION: Final = 0.05
#: A column that is not a quasi-identifier or a bounded measure is kept only as a category of
#: at most this many distinct values (more is free text or a code, dropped).
CATEGORY_MAX: Final = 50
#: Band widths tried for numbers, times powers of ten (1, 5, 10, 50, 100 …): each divides the
#: next, and bands start at multiples of their width, so every band of one width lies inside one
#: band of any wider width (successive releases nest; see :func:`_map_level`).
_NICE: Final = (1, 5)
TOP: Final = "*"

#: Headers that say a column describes a person's demographics or whereabouts: a quasi-identifier
#: whatever it is declared (Sweeney 2000: birth date, sex and postcode single out 87 % of people).
QI_HEADER: Final = re.compile(
    r"(?:^|[^a-z])(?:sex|gender|age|ages|birth\w*|born|dob|district|county|street|town|township|village|"
    r"community|post_?code|postal\w*|zip\w*|ethnic\w*|nation\w*|marital|marriage|occupation|job|education|"
    r"degree|date|day|time|month|year)(?:$|[^a-z])"
    r"|性别|年龄|岁|出生|生日|区县|县区|[区县市镇乡村]$|街道|乡镇|社区|居委|村委|邮编|邮政编码|民族|国籍|籍贯|婚姻|职业|学历|"
    r"文化程度|日期|时间",
    re.IGNORECASE,
)
#: Headers that name an identifier (dropped whatever they hold, and used to link rows of one
#: person), headers of names (dropped, not linking), scan kinds that link: shared with the scan's
#: per-person ``value_support`` (:mod:`sandbox.governance.risk_scan`).
ID_HEADER: Final = risk_scan.ID_HEADER
NAME_HEADER: Final = risk_scan.NAME_HEADER
LINKING_KINDS: Final = risk_scan.LINKING_KINDS
person_labels = risk_scan.person_labels
SEX_VALUES: Final = frozenset({"男", "女", "男性", "女性", "m", "f", "male", "female", "未知"})
_AREA_VALUE: Final = re.compile(r"(?:省|市|区|县|旗|街道|镇|乡|社区|村|居委会)$")
class DeidentificationError(SandboxError):
    """The derivative cannot reach its target (too few persons, or the scan still fails)."""

    code = "deidentification_failed"
    http_status = 409


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


def _widths(span: float, integer: bool) -> list[float]:
    """Increasing band widths below ``span`` (a span that is not a positive finite number — an
    empty or all-NaN column — is taken as 1).

    >>> _widths(100, True)
    [1, 5, 10, 50]
    >>> _widths(float("nan"), False)
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5]
    """
    if not math.isfinite(span) or span <= 0:
        span = 1.0
    out: list[float] = []
    exp = math.floor(math.log10(span)) - 3 if span > 0 else 0
    while True:
        for n in _NICE:
            w = n * 10.0 ** exp
            if integer and w < 1:
                continue
            if w >= span:
                return out
            out.append(int(w) if integer or float(w).is_integer() else w)
        exp += 1


def _levels(col: ColumnPolicy, arr: pa.ChunkedArray, role: str) -> list[str]:
    """Names of the generalisation levels of one column, level 0 (raw) excluded; last is ``*``."""
    if role == "category":
        return [TOP]
    if col.type in ("int", "float") and (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        lo, hi = _range(col, arr)
        return [f"band:{w}" for w in _widths(hi - lo, col.type == "int")] + [TOP]
    if col.type == "date":
        return ["month", "year", TOP]
    return [TOP]


def _range(col: ColumnPolicy, arr: pa.ChunkedArray) -> tuple[float, float]:
    """The span the band widths are chosen from (not their origin: bands start at multiples of
    their width, never at a person's value); non-finite values are ignored."""
    b = col.numeric_bounds()
    if b is not None and all(math.isfinite(x) for x in b):
        return b
    x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False) if len(arr) else np.zeros(0)
    x = x[np.isfinite(x)]
    lo, hi = (float(x.min()), float(x.max())) if len(x) else (0.0, 1.0)
    return lo, max(hi, lo + 1)


def _finite(table: pa.Table) -> pa.Table:
    """Float columns with NaN and ±inf as missing (null): a failed import or an overflow is not a
    value, and an infinite span has no bands."""
    for i, f in enumerate(table.schema):
        if pa.types.is_floating(f.type):
            col = table.column(i)
            if pc.any(pc.invert(pc.fill_null(pc.is_finite(col), True))).as_py():
                table = table.set_column(i, f, pc.if_else(pc.is_finite(col), col, pa.scalar(None, f.type)))
    return table


def _band_labels(x: np.ndarray, w: float, integer: bool) -> pa.Array:
    """Band labels of numbers ``x`` (NaN → null): ``a-b`` for integers, ``[a, b)`` otherwise, with
    ``a`` a multiple of ``w``."""
    valid = np.isfinite(x)
    band = np.floor(np.where(valid, x, 0.0) / w + 1e-9)
    uniq, inverse = np.unique(band, return_inverse=True)
    labels = [f"{_fmt(b * w)}-{_fmt(b * w + w - 1)}" if integer else f"[{_fmt(b * w)}, {_fmt(b * w + w)})"
              for b in uniq]
    indices = pa.array(inverse.reshape(-1).astype(np.int32), mask=~valid)
    return pa.DictionaryArray.from_arrays(indices, pa.array(labels, pa.string())).cast(pa.string())


def _fmt(x: float) -> str:
    x = round(float(x), 9)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def generalise(col: ColumnPolicy, arr: pa.ChunkedArray, level: str) -> pa.Array:
    """One column at one level, as text (nulls stay null, except at ``*``, which hides them too).

    >>> from sandbox.governance.policy import ColumnPolicy
    >>> age = ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))
    >>> generalise(age, pa.chunked_array([[3, 27, 100]]), "band:10").to_pylist()
    ['0-9', '20-29', '100-109']
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if level == TOP:
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(len(arr), dtype=np.int32)),
                                              pa.array([TOP])).cast(pa.string())
    if level.startswith("band:"):
        x = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return _band_labels(x, float(level.split(":", 1)[1]), col.type == "int")
    if level in ("month", "year"):
        return pc.utf8_slice_codeunits(pc.cast(arr, pa.string()), 0, 7 if level == "month" else 4)
    raise ValueError(f"unknown generalisation level {level!r}")


# -- what each column is ---------------------------------------------------------------------------
def _flagged_columns(report: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in report.get("identifier_findings", []):
        out.setdefault(f["column"], f"the risk scan found {risk_scan.KIND_LABELS.get(f['kind'], f['kind'])} "
                                    f"(declared {f['declared']})")
    return out


def _text_values(arr: pa.ChunkedArray, limit: int = 20_000) -> list[str]:
    """Up to ``limit`` distinct non-null values as case-folded, NFKC-normalised text."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return []
    distinct = pc.unique(arr.drop_null())
    if isinstance(distinct, pa.ChunkedArray):
        distinct = distinct.combine_chunks()
    return [v.strip().casefold() for v in risk_scan.normalise_array(distinct.slice(0, limit)).to_pylist()]


def recognised_qi(name: str, col: ColumnPolicy | None, arr: pa.ChunkedArray) -> str | None:
    """Why a column is a quasi-identifier whatever its declaration, or None.

    >>> recognised_qi("出生日期", None, pa.chunked_array([["x"]]))
    'its header names a demographic or place (出生日期)'
    >>> recognised_qi("s", None, pa.chunked_array([["男", "女", "女"]]))
    'its values are sexes'
    """
    if (col is not None and col.type == "date") or pa.types.is_temporal(arr.type):
        return "a date"
    if QI_HEADER.search(name.strip()):
        return f"its header names a demographic or place ({name})"
    values = _text_values(arr)
    if values and len(values) <= 10 and all(v in SEX_VALUES for v in values):
        return "its values are sexes"
    if values and sum(1 for v in values if _AREA_VALUE.search(v)) >= 0.9 * len(values):
        return "its values are districts, streets or villages"
    if values and sum(1 for v in values if re.fullmatch(r"\d{6}", v)) >= 0.9 * len(values) and len(values) > 1:
        return "its values look like postcodes"
    return None


def _value_persons(arr: pa.ChunkedArray, person: pa.Array) -> pa.Table:
    """How many persons hold each value of ``arr`` (nulls are a value too)."""
    t = pa.table({"v": arr, "p": person}).group_by(["v", "p"]).aggregate([])
    return t.group_by(["v"]).aggregate([([], "count_all")])


def _category(arr: pa.ChunkedArray, person: pa.Array, persons: int, k: int,
              max_suppression: float) -> tuple[pa.ChunkedArray | None, str, int]:
    """The column recoded as a category (rare values → ``*``), or None and why not."""
    support = _value_persons(arr, person)
    distinct = support.num_rows
    if distinct > CATEGORY_MAX:
        return None, (f"free text or near-unique values ({distinct:,} distinct over {persons:,} persons; a kept "
                      f"category has at most {CATEGORY_MAX})"), 0
    counts = support.column("count_all").to_numpy()
    rare = support.column("v").filter(pa.array(counts < k))
    held = int(counts[counts < k].sum())
    if held > max_suppression * persons:
        return None, (f"{held:,} persons hold one of {len(rare):,} values shared by fewer than {k} persons "
                      "(a near-identifier, not a category)"), 0
    if len(rare) == 0:
        return arr, "", 0
    text = pc.cast(arr, pa.string())
    is_rare = pc.fill_null(pc.is_in(text, value_set=pc.cast(rare, pa.string())), False)
    if rare.null_count:
        is_rare = pc.or_(is_rare, pc.is_null(text))
    return pc.if_else(is_rare, TOP, text), "", held


def _classes(table: pa.Table, cols: list[str], person: str) -> pa.Table:
    per_person = table.select([*cols, person]).group_by([*cols, person]).aggregate([])
    return per_person.group_by(cols).aggregate([([], "count_all")])


def _k(table: pa.Table, cols: list[str], person: str) -> int:
    if not table.num_rows:
        return 0
    if not cols:
        return int(pc.count_distinct(table.column(person)).as_py())
    return int(pc.min(_classes(table, cols, person).column("count_all")).as_py())


def _fresh(table: pa.Table, base: str) -> str:
    name = base
    while name in table.column_names:
        name += "_"
    return name


# -- building it -----------------------------------------------------------------------------------
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
    unit = policy.privacy_unit
    sens = {c.name: c.sensitivity for c in policy.columns.values()}
    table = _finite(table)
    full_scan = risk_scan.scan(table, sens, privacy_unit=unit, dataset=policy.name, sample_rows=None)
    flagged = {**_flagged_columns(full_scan), **_flagged_columns(raw_report)}

    # 1. persons: the unit, linked through every identifier-bearing column
    findings = [*raw_report.get("identifier_findings", []), *full_scan["identifier_findings"]]
    qi_like = [n for n in table.column_names if n != unit and recognised_qi(n, policy.columns.get(n), table.column(n))]
    linking = risk_scan.linking_columns(table, unit, sens, findings, exclude=qi_like)
    person_name = _fresh(table, "_person")
    labels = person_labels(table, unit, linking) if table.num_rows else np.zeros(0, dtype=np.int64)
    person = pa.array(labels)
    persons = len(np.unique(labels))
    if persons < k_target:
        raise DeidentificationError(f"the dataset holds {persons} persons, fewer than the k-anonymity target "
                                    f"{k_target}: no row-level release can meet it")

    # 2. the allow-list: what each column is
    dropped: dict[str, str] = {}
    roles: dict[str, str] = {}  # name -> quasi_identifier | measure | category
    why_qi: dict[str, str] = {}
    recoded: dict[str, int] = {}
    base = {}
    for name in table.column_names:
        col = policy.columns.get(name) or ColumnPolicy(name, "text", "sensitive")
        arr = table.column(name)
        if name == unit:
            dropped[name] = "privacy unit: a persistent pseudonym linking a person's rows"
        elif col.sensitivity == "identifier":
            dropped[name] = "declared identifier"
        elif name in flagged:
            dropped[name] = flagged[name]
        elif ID_HEADER.search(name) or NAME_HEADER.search(name):
            dropped[name] = "its header names an identifier (a name, number, account, plate or address)"
        elif name in linking:
            dropped[name] = "a person's own number (a record number or code): it links that person's rows"
        elif col.sensitivity == "quasi_identifier" or (why := recognised_qi(name, col, arr)):
            roles[name] = "quasi_identifier"
            why_qi[name] = "declared" if col.sensitivity == "quasi_identifier" else f"recognised: {why}"
            base[name] = arr
        elif col.type in ("int", "float") and col.bounds is not None:
            roles[name] = "measure"
            base[name] = arr
        else:
            kept, why_not, held = _category(arr, person, persons, k_target, max_suppression)
            if kept is None:
                dropped[name] = why_not
            else:
                roles[name] = "category"
                base[name] = kept
                if held:
                    recoded[name] = held
    if not any(r == "quasi_identifier" for r in roles.values()):
        raise DeidentificationError(
            "no quasi-identifier is declared or recognised among the columns that would be published, so the "
            "k-anonymity target cannot be checked: declare the columns an outsider could know about a person "
            "(district, age, sex, dates …) sensitivity = \"quasi_identifier\" (第十二条)")
    kcols = list(roles)
    if previous is not None:
        # PRIVACY (第十二条): a column the previous signed release did not publish (added, or
        # renamed) cannot be compared with it, so it is held back: two downloads differenced over
        # a column only one of them has are not guarded.
        prev_columns = set(previous.table.column_names)
        for q in [q for q in kcols if q not in prev_columns]:
            dropped[q] = ("not in the previous signed release of this dataset: a later release publishes the same or "
                          "fewer columns, so two downloads can be compared class by class (第十二条)")
        kcols = [q for q in kcols if q in prev_columns]
        if not any(roles[q] == "quasi_identifier" for q in kcols):
            raise DeidentificationError(
                "successive releases must publish the same or fewer columns than the previous signed release "
                f"({', '.join(sorted(prev_columns)) or 'none'}), so that two downloads can be compared class by class; "
                "no quasi-identifier of this version is among them (renamed columns count as new) (第十二条)")
    cols_policy = {n: policy.columns.get(n) or ColumnPolicy(n, "text", "sensitive") for n in kcols}
    levels = {q: _levels(cols_policy[q], table.column(q), roles[q]) for q in kcols}
    at = dict.fromkeys(kcols, 0)  # 0 = raw; i = levels[q][i - 1]
    before = _level_names(previous.recipe, previous.table.column_names) if previous is not None else {}
    shown: dict[str, set[str]] = {}  # categories: the values this release shows (not recoded *)
    for q in [q for q in kcols if roles[q] == "category"]:
        if previous is not None and before.get(q) == "raw":
            # PRIVACY: a value the previous release hid (recoded *) stays hidden, so the classes of
            # the two releases nest (a value moving out of * would let the difference show it)
            was = _shown_values(previous.table.column(q))
            text = pc.cast(base[q], pa.string())
            keep = pc.or_kleene(pc.is_null(text),
                                pc.fill_null(pc.is_in(text, value_set=pa.array(sorted(was), pa.string())), False))
            base[q] = pc.if_else(keep, text, TOP)
        shown[q] = _shown_values(base[q])
    if previous is not None:  # the floor: the finest level of each column that nests the previous one
        at.update(_previous_levels(previous, before, cols_policy, kcols, levels, shown))
    source = pa.table({**base, person_name: person})
    suppressed = 0
    scan: dict[str, Any] = {}
    work = source
    for _round in range(64):
        work, suppressed = _datafly(source, cols_policy, kcols, at, levels, person_name, persons, k_target,
                                    max_suppression)
        # the re-scan may flag more columns (values found only after a change)
        scan = risk_scan.scan(work, dict.fromkeys(kcols, "quasi_identifier"), privacy_unit=person_name,
                              dataset=policy.name, sample_rows=None)
        newly = {n: w for n, w in _flagged_columns(scan).items() if n not in dropped}
        if newly:
            dropped.update(newly)
            kcols = [q for q in kcols if q not in newly]
            source = source.drop_columns(list(newly))
            if not any(roles[q] == "quasi_identifier" for q in kcols):
                raise DeidentificationError("every quasi-identifier was dropped by the re-scan of the derivative")
            continue
        # Datafly may have coarsened a column past a level that nests the previous release's
        # (bands of a release signed with another origin): coarsen until it nests (``*`` always does)
        loose = [q for q in kcols if previous is not None and _map_level(
            previous.table.column(q), before[q], _level_name(levels, at, q), cols_policy[q], shown.get(q)) is None]
        if not loose:
            break
        for q in loose:
            at[q] += 1
    else:
        raise DeidentificationError("the derivative's columns could not be settled: re-scans kept flagging columns or levels "
                                    "kept failing to nest the previous signed release's (第十二条)")
    differencing = None
    if previous is not None:
        now = {q: _level_name(levels, at, q) for q in kcols}
        work, differencing = _guard_differencing(work, previous, kcols, before, now, cols_policy, person_name,
                                                 k_target, shown)
        work, late = _suppress_small(work, kcols, person_name, k_target)
        differencing["suppressed_rows"] = late
        suppressed += late
        if late > max_suppression * persons:
            raise DeidentificationError(
                f"after holding back changes of fewer than {k_target} rows against the previous signed release, "
                f"{late} rows are in combinations smaller than {k_target} (more than {max_suppression:.0%} of the "
                "persons); publish with the previous release's k or wait for more data (第十二条)")
        scan = risk_scan.scan(work, dict.fromkeys(kcols, "quasi_identifier"), privacy_unit=person_name,
                              dataset=policy.name, sample_rows=None)
    # l-diversity (distinct, l = 2; Machanavajjhala et al. 2007): a category that is the same for
    # everyone sharing the quasi-identifiers and measures says it of each of them; hidden there
    work, homogeneous = _diversify(work, kcols, [q for q in kcols if roles[q] != "category"], roles)
    # PRIVACY (第十二条): every combination a multiple of g ≥ k times, anchored to what is public,
    # so no sum or difference of open files — other datasets, older versions, other headers —
    # singles out fewer than 5 rows (round 3 of the red team; granular_counts' module doc)
    now = {q: _level_name(levels, at, q) for q in kcols}
    priors, exact, compared_with = _anchor_counts(work, kcols, now, cols_policy, shown, previous, published)
    own = (priors[0] if previous is not None and compared_with[:1] == [_PREVIOUS] and priors
           and _granular_of(previous.recipe) else None)
    work, counts = granular_counts.make_granular(work, kcols, person_name, granular_counts.granularity(k_target),
                                                 priors, exact, predecessor=own)
    counts["compared_with"] = compared_with
    counts["aligned"] = "multiples" if exact is None and counts["granularity"] > 1 else "previous exact counts"
    work, late = _suppress_small(work, kcols, person_name, k_target)
    counts["suppressed_rows"] = late
    suppressed += late
    k = _k(work, kcols, person_name)
    if scan["identifier_findings"] or not scan["passed"] or k < k_target:
        raise DeidentificationError(f"the de-identified derivative still fails its risk scan: "
                                    f"{'; '.join(scan['problems']) or f'k = {k} < {k_target}'}")
    # PRIVACY: a secure random permutation; the stored order (sorted by ID number, or the same
    # person at the same row in every release) must not survive.
    order = list(range(work.num_rows))
    random.SystemRandom().shuffle(order)
    work = work.take(pa.array(order, pa.int64())) if order else work
    recipe = {
        "format": RECIPE_FORMAT,
        "k_target": k_target,
        "k_achieved": k,
        "persons": persons,
        "persons_linked_by": [unit, *linking],
        "max_suppression": max_suppression,
        "dropped": [{"column": n, "reason": why} for n, why in dropped.items()],
        "quasi_identifiers": [{"column": q, "why": why_qi[q]} for q in kcols if roles[q] == "quasi_identifier"],
        "generalised": [{"column": q, "level": (levels[q][at[q] - 1] if at[q] else "raw"), "role": roles[q]}
                        for q in kcols if roles[q] != "category"],
        "kept": [q for q in kcols if roles[q] == "category"],
        "categories": [{"column": q, "level": (levels[q][at[q] - 1] if at[q] else "raw"),
                        "rare_values_recoded_persons": recoded.get(q, 0)} for q in kcols if roles[q] == "category"],
        "suppressed_rows": suppressed,
        "homogeneous_classes_hidden": homogeneous,
        "differencing": differencing,
        "counts": counts,
        "row_order": "shuffled (secure random permutation)",
        "rows": work.num_rows,
    }
    return Derivative(work.drop_columns([person_name]), scan, recipe)


def _diversify(work: pa.Table, kcols: list[str], qcols: list[str],
               roles: Mapping[str, str]) -> tuple[pa.Table, dict[str, int]]:
    """Recode a category to ``*`` in every class of ``qcols`` (what an outsider knows) where it
    shows fewer than two distinct values other than ``*``: all 6 residents of 钢城区 with 艾滋病
    would tell it of any one of them. Classes keep their size, so k is unchanged. Returns the
    table and, per column, the number of classes hidden."""
    hidden: dict[str, int] = {}
    if not qcols or not work.num_rows:
        return work, hidden
    key = [f"q{i}" for i in range(len(qcols))]
    keyed = pa.table([pc.fill_null(pc.cast(work.column(c), pa.string()), "\x00") for c in qcols], names=key)
    rows = _row_index(keyed, key)
    for q in [q for q in kcols if roles.get(q) == "category"]:
        text = pc.cast(work.column(q), pa.string()).to_pylist()
        mask = np.zeros(work.num_rows, dtype=bool)
        n = 0
        for idx in rows.values():
            values = {text[i] for i in idx} - {TOP}
            if len(values) < 2 and values != set():
                mask[idx] = True
                n += 1
        if n:
            hidden[q] = n
            col = pc.cast(work.column(q), pa.string())
            work = work.set_column(work.column_names.index(q), pa.field(q, pa.string()),
                                   pc.if_else(pa.array(mask), pa.scalar(TOP, pa.string()), col))
    return work, hidden


def _apply(source: pa.Table, cols: Mapping[str, ColumnPolicy], kcols: list[str], at: Mapping[str, int],
           levels: Mapping[str, list[str]], person: str, cache: dict | None = None) -> pa.Table:
    cache = {} if cache is None else cache
    out = []
    for n in kcols:
        arr = source.column(n)
        if at.get(n):
            lv = levels[n][at[n] - 1]
            if (n, lv) not in cache:
                cache[(n, lv)] = generalise(cols[n], arr, lv)
            arr = cache[(n, lv)]
        out.append(arr)
    return pa.table([*out, source.column(person)], names=[*kcols, person])


def _datafly(source: pa.Table, cols: Mapping[str, ColumnPolicy], kcols: list[str], at: dict[str, int],
             levels: Mapping[str, list[str]], person: str, persons: int, k_target: int,
             max_suppression: float) -> tuple[pa.Table, int]:
    """Generalise (in ``at``, in place) until every class holds ``k_target`` persons; then suppress."""
    cache: dict = {}
    while True:
        work = _apply(source, cols, kcols, at, levels, person, cache)
        if not kcols:
            return work, 0
        classes = _classes(work, kcols, person)
        sizes = classes.column("count_all").to_numpy()
        small = sizes < k_target
        if not small.any():
            return work, 0
        candidates = [q for q in kcols if at[q] < len(levels[q])]
        if sizes[small].sum() <= max_suppression * persons or not candidates:
            if sizes[small].sum() > max_suppression * persons:
                raise DeidentificationError(f"every column is fully generalised and {int(sizes[small].sum())} "
                                            f"persons are still in combinations smaller than {k_target}")
            keep_keys = classes.filter(pa.array(~small)).select(kcols)
            before = work.num_rows
            work = work.join(keep_keys, kcols, join_type="inner")
            return work, before - work.num_rows
        q = max(candidates, key=lambda c: (pc.count_distinct(work.column(c)).as_py(), c))
        at[q] += 1


# -- successive releases -----------------------------------------------------------------------------
def _level_name(levels: Mapping[str, list[str]], at: Mapping[str, int], q: str) -> str:
    return levels[q][at[q] - 1] if at[q] else "raw"


def _level_names(recipe: Mapping[str, Any], columns: list[str]) -> dict[str, str]:
    named = {g["column"]: g.get("level", "raw")
             for g in [*recipe.get("generalised", []), *recipe.get("categories", [])]}
    return {c: named.get(c, "raw") for c in columns}


def _previous_levels(previous: Previous, before: Mapping[str, str], cols: Mapping[str, ColumnPolicy],
                     kcols: list[str], levels: Mapping[str, list[str]],
                     shown: Mapping[str, set[str]]) -> dict[str, int]:
    """For each column, the finest of this release's levels into which the previous release's
    labels nest (the floor Datafly starts from; ``*`` always nests)."""
    out = {}
    for q in kcols:
        old = previous.table.column(q)
        for i in range(len(levels[q]) + 1):
            if _map_level(old, before[q], levels[q][i - 1] if i else "raw", cols[q], shown.get(q)) is not None:
                out[q] = i
                break
    return out


_INT_BAND: Final = re.compile(r"^(-?\d+)-(-?\d+)$")
_FLOAT_BAND: Final = re.compile(r"^\[(\S+), (\S+)\)$")


def _shown_values(arr: pa.ChunkedArray | pa.Array) -> set[str]:
    """A category column's values other than ``*`` (as text)."""
    return {v for v in pc.unique(pc.cast(arr, pa.string())).to_pylist() if v is not None and v != TOP}


def _map_level(old: pa.ChunkedArray | pa.Array, old_level: str, new_level: str,
               col: ColumnPolicy, shown: set[str] | None = None) -> pa.Array | None:
    """The previous release's values of one column, relabelled at this release's level, or None
    when the previous level does not *nest* inside the new one — a previous band straddling a new
    band's edge (width 20 then 50), months asked of years, a raw value asked of ``*`` …: then the
    two downloads subtracted could isolate what neither shows (第十二条). ``shown``: for a
    category, the values this release shows; a previous value it hides is relabelled ``*`` (one
    the previous release hid and this one shows does not nest).

    >>> from sandbox.governance.policy import ColumnPolicy
    >>> age = ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))
    >>> _map_level(pa.array(["10-19", "20-29"]), "band:10", "band:50", age).to_pylist()
    ['0-49', '0-49']
    >>> _map_level(pa.array(["20-39", "40-59"]), "band:20", "band:50", age) is None
    True
    """
    if isinstance(old, pa.ChunkedArray):
        old = old.combine_chunks()
    text = pc.cast(old, pa.string())
    if new_level == old_level == "raw" and shown is not None:
        if not shown <= _shown_values(text):
            return None  # a value hidden (or absent) before is shown now: classes do not nest
        hidden = pc.invert(pc.fill_null(pc.is_in(text, value_set=pa.array(sorted(shown), pa.string())), False))
        return pc.if_else(pc.and_(hidden, pc.is_valid(text)), TOP, text)
    if new_level == old_level:
        return text
    if new_level == TOP:
        return pa.array([TOP] * len(text), pa.string())
    if old_level == TOP:
        return None
    if new_level in ("month", "year"):
        if old_level == "raw" or (old_level == "month" and new_level == "year"):
            return pc.utf8_slice_codeunits(text, 0, 7 if new_level == "month" else 4)
        return None
    if not new_level.startswith("band:"):
        return None
    w = float(new_level.split(":", 1)[1])
    integer = col.type == "int"
    if old_level == "raw":
        try:
            x = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return _band_labels(x, w, integer)
    if not old_level.startswith("band:"):
        return None
    enc = pc.dictionary_encode(text)
    starts = []
    for label in enc.dictionary.to_pylist():
        m = (_INT_BAND if integer else _FLOAT_BAND).match(label or "")
        if m is None:
            return None
        a, b = float(m.group(1)), float(m.group(2))
        first = math.floor(a / w + 1e-9)
        last = math.floor(b / w + 1e-9) if integer else math.ceil(b / w - 1e-9) - 1
        if first != last:
            return None  # the previous band straddles an edge of the new one: they do not nest
        starts.append(first * w)
    if not starts:
        return pa.nulls(len(text), pa.string())
    labels = _band_labels(np.asarray(starts, dtype=np.float64), w, integer)
    return pa.DictionaryArray.from_arrays(enc.indices, labels).cast(pa.string())


def _guard_differencing(work: pa.Table, previous: Previous, kcols: list[str], before: Mapping[str, str],
                        now: Mapping[str, str], cols: Mapping[str, ColumnPolicy], person: str,
                        k: int, shown: Mapping[str, set[str]]) -> tuple[pa.Table, dict[str, Any]]:
    """Hide changes of fewer than ``k`` rows in any class, compared class by class under the
    coarser of the two releases.

    This release publishes a subset of the previous release's columns at the same or coarser,
    *nesting* levels (the caller makes sure), so every previous row falls in exactly one class of
    this release (:func:`_map_level`): an attacker subtracting the two downloads learns, per class,
    the change in its count and nothing finer. A class that gained 1 … k − 1 rows keeps its
    previous count (the newcomers are held back for a later release); one that lost 1 … k − 1
    rows keeps the previous rows (already public, relabelled at this release's levels).
    ``departures_unmasked`` is always 0 (kept for older readers of the recipe).
    """
    mapped = {q: _map_level(previous.table.column(q), before[q], now[q], cols[q], shown.get(q)) for q in kcols}
    if any(v is None for v in mapped.values()):  # the caller coarsens until every column nests
        raise DeidentificationError("a column's level does not nest the previous signed release's (第十二条)")
    report: dict[str, Any] = {"compared_on": list(kcols), "rule": "same or fewer columns, same or coarser nesting "
                              "levels; changes of fewer than k rows per class held back or retained (第十二条)",
                              "levels": {q: {"previous": before[q], "now": now[q]} for q in kcols},
                              "held_back_rows": 0, "retained_rows": 0, "departures_unmasked": 0}
    if not kcols or previous.table.num_rows == 0:
        return work, report
    key = [f"c{i}" for i in range(len(kcols))]
    new_rows = _row_index(pa.table([pc.cast(work.column(c), pa.string()) for c in kcols], names=key), key)
    old_rows = _row_index(pa.table([mapped[c] for c in kcols], names=key), key)
    drop: list[int] = []
    add: list[int] = []
    for kv in set(old_rows) | set(new_rows):
        delta = len(new_rows.get(kv, ())) - len(old_rows.get(kv, ()))
        if 0 < delta < k:
            drop += new_rows[kv][:delta]
            report["held_back_rows"] += delta
        elif -k < delta < 0:
            add += old_rows[kv][:-delta]
            report["retained_rows"] += -delta
    if drop:
        keep = np.ones(work.num_rows, dtype=bool)
        keep[drop] = False
        work = work.filter(pa.array(keep))
    if add:
        take = pa.array(add, pa.int64())
        fresh = pa.array(np.arange(len(add), dtype=np.int64) - len(add) - 1)  # persons of their own
        extra = pa.table([*(pc.cast(mapped[c].take(take), work.schema.field(c).type) for c in kcols), fresh],
                         names=[*kcols, person])
        work = pa.concat_tables([work, extra.cast(work.schema)])
    return work, report


_PREVIOUS: Final = "the previous signed release of this dataset"


def _granular_of(recipe: Mapping[str, Any]) -> int | None:
    """The granularity of a release whose counts are multiples of it, or None (a release signed
    before that rule, or aligned to one: exact counts)."""
    c = recipe.get("counts") or {}
    g = c.get("granularity")
    return g if c.get("aligned") == "multiples" and isinstance(g, int) and g > 0 else None


def _anchor_counts(work: pa.Table, kcols: list[str], now: Mapping[str, str], cols: Mapping[str, ColumnPolicy],
                   shown: Mapping[str, set[str]], previous: Previous | None, published: Sequence[Previous]
                   ) -> tuple[list[dict], dict | None, list[str]]:
    """Each public file that maps onto this release's combinations, as its count of each: the
    granular ones (anchors), and this dataset's previous release when it predates granular counts
    (exact). Files whose columns or levels do not map are still covered by the granularity."""
    sources = [] if previous is None else [previous]
    sources += [p for p in published if previous is None or not p.table.equals(previous.table)]
    priors: list[dict] = []
    exact = None
    names: list[str] = []
    for src in sources:
        try:
            mapped = _mapped_onto(work, kcols, now, cols, shown, src)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, KeyError):
            mapped = None  # a file of another shape: the granularity alone covers it
        if mapped is None:
            continue
        counts: dict = {}
        for kv in granular_counts.class_keys(mapped, kcols):
            counts[kv] = counts.get(kv, 0) + 1
        if _granular_of(src.recipe) is not None:
            priors.append(counts)
        elif src is previous:
            exact = counts
        else:
            continue
        if src is previous:
            names.append(_PREVIOUS)
        elif src.public:  # a file awaiting the regulator is not named (it may never be public)
            names.append(src.name)
    return priors, exact, names


def _mapped_onto(work: pa.Table, kcols: list[str], now: Mapping[str, str], cols: Mapping[str, ColumnPolicy],
                 shown: Mapping[str, set[str]], src: Previous) -> pa.Table | None:
    """``src``'s rows relabelled onto this release's columns and levels, or None when one of our
    columns has no counterpart there or its level does not nest. A column is matched by its name,
    else (renamed: 区县 for district) by its values: the other file's column whose labels, at our
    level, share the most with ours (Jaccard ≥ 0.5) — an outsider matches columns by content too."""
    names = src.table.column_names
    before = _level_names(src.recipe, names)
    out: dict[str, pa.Array] = {}
    for q in [q for q in kcols if q in names]:
        m = _map_level(src.table.column(q), before[q], now[q], cols[q], shown.get(q))
        if m is None:
            return None
        out[q] = m
    used = set(out)
    for q in [q for q in kcols if q not in out]:
        mine = _shown_values(work.column(q))
        best: tuple[float, str, pa.Array | None] = (0.0, "", None)
        for c in [c for c in names if c not in used and c not in kcols]:
            m = _map_level(src.table.column(c), before[c], now[q], cols[q], shown.get(q))
            if m is None:
                continue
            theirs = _shown_values(m)
            score = len(mine & theirs) / len(mine | theirs) if mine | theirs else 0.0
            if score > best[0]:
                best = (score, c, m)
        if best[0] < 0.5 or best[2] is None:
            return None
        out[q] = best[2]
        used.add(best[1])
    return pa.table([out[q] for q in kcols], names=list(kcols))


def _suppress_small(work: pa.Table, kcols: list[str], person: str, k: int) -> tuple[pa.Table, int]:
    """Remove the rows of classes held by fewer than ``k`` persons (after the guard: a class whose
    newcomers were held back may stay below a raised k); a class that vanishes shows nothing
    about whoever is in it."""
    if not kcols or not work.num_rows:
        return work, 0
    key = [f"c{i}" for i in range(len(kcols))]
    keyed = pa.table([pc.fill_null(pc.cast(work.column(c), pa.string()), "\x00") for c in kcols]
                     + [work.column(person)], names=[*key, person])  # nulls are a class too
    classes = _classes(keyed, key, person)
    small = classes.column("count_all").to_numpy() < k
    if not small.any():
        return work, 0
    rows = _row_index(keyed.select(key), key)
    drop = [i for kv in classes.filter(pa.array(small)).select(key).to_pylist() for i in rows[tuple(kv.values())]]
    keep = np.ones(work.num_rows, dtype=bool)
    keep[drop] = False
    return work.filter(pa.array(keep)), len(drop)


def _row_index(t: pa.Table, key: list[str]) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = {}
    for i, r in enumerate(zip(*(t.column(c).to_pylist() for c in key), strict=True)):
        out.setdefault(r, []).append(i)
    return out
