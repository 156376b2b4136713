"""The de-identified derivative behind every unconditional download (第八、十一、十二条; issue 14).

No tier ever releases an identifier column raw. An unconditional (无条件开放) dataset is
downloaded as a *derivative* built here, never as its stored file:

1. **dropped**: every column the policy declares ``identifier``; every column in which the
   risk scan finds identifier-like values (whatever it is declared — a mis-declared column is
   the leak the scan exists to catch); and the privacy unit (a persistent pseudonym that
   links a person's rows across releases);
2. **generalised**: the ``quasi_identifier`` columns, one level at a time, the column with the
   most distinct values first (Datafly, Sweeney 2002), until every combination is shared by
   at least ``k_target`` persons — numbers into ever wider bands of the column's bounds,
   dates into months then years, text and booleans into ``*``;
3. **suppressed**: once at most ``max_suppression`` of the persons are in combinations
   smaller than ``k_target``, their rows are removed instead of generalising further.

The result is scanned again (:func:`sandbox.risk_scan.scan`) and the scan must pass with
``k ≥ k_target``; otherwise :class:`DeidentificationError` names what failed. The recipe —
what was dropped and why, each column's level, the suppressed rows — is returned so it can be
recorded and shown beside the download. Pure functions over Arrow tables; no I/O.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from sandbox import risk_scan
from sandbox.errors import SandboxError
from sandbox.policy import ColumnPolicy, DatasetPolicy

RECIPE_FORMAT: Final = "data-sandbox/deidentification/v1"
#: The share of persons whose rows may be suppressed rather than generalising further.
MAX_SUPPRESSION: Final = 0.05
#: Band widths tried for numbers, times powers of ten (1, 2, 5, 10, 20, 50 …).
_NICE: Final = (1, 2, 5)
TOP: Final = "*"


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


def _widths(span: float, integer: bool) -> list[float]:
    """Increasing band widths below ``span``.

    >>> _widths(100, True)
    [1, 2, 5, 10, 20, 50]
    """
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


def _levels(col: ColumnPolicy, arr: pa.ChunkedArray) -> list[str]:
    """Names of the generalisation levels of one column, level 0 (raw) excluded; last is ``*``."""
    if col.type in ("int", "float"):
        lo, hi = _range(col, arr)
        return [f"band:{w}" for w in _widths(hi - lo, col.type == "int")] + [TOP]
    if col.type == "date":
        return ["month", "year", TOP]
    return [TOP]


def _range(col: ColumnPolicy, arr: pa.ChunkedArray) -> tuple[float, float]:
    b = col.numeric_bounds()
    if b is not None:
        return b
    mm = pc.min_max(arr).as_py()
    lo, hi = float(mm["min"] or 0), float(mm["max"] or 0)
    return lo, max(hi, lo + 1)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def generalise(col: ColumnPolicy, arr: pa.ChunkedArray, level: str) -> pa.Array:
    """One column at one level, as text (nulls stay null).

    >>> from sandbox.policy import ColumnPolicy
    >>> age = ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))
    >>> generalise(age, pa.chunked_array([[3, 27, 100]]), "band:10").to_pylist()
    ['0-9', '20-29', '100-109']
    """
    values = arr.to_pylist()
    if level == TOP:
        return pa.array([None if v is None else TOP for v in values], pa.string())
    if level.startswith("band:"):
        w = float(level.split(":", 1)[1])
        lo, _hi = _range(col, arr)
        step = 1 if col.type == "int" else 0
        out = []
        for v in values:
            if v is None:
                out.append(None)
                continue
            start = lo + math.floor((float(v) - lo) / w) * w
            end = start + w - step
            out.append(f"{_fmt(start)}-{_fmt(end)}" if col.type == "int" else f"[{_fmt(start)}, {_fmt(start + w)})")
        return pa.array(out, pa.string())
    if level in ("month", "year"):
        cut = 7 if level == "month" else 4
        return pa.array([None if v is None else (v.isoformat() if isinstance(v, dt.date) else str(v))[:cut]
                         for v in values], pa.string())
    raise ValueError(f"unknown generalisation level {level!r}")


def _flagged_columns(report: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in report.get("identifier_findings", []):
        out.setdefault(f["column"], f"the risk scan found {risk_scan.KIND_LABELS.get(f['kind'], f['kind'])} "
                                    f"(declared {f['declared']})")
    return out


def _classes(table: pa.Table, qis: list[str], unit: str) -> pa.Table:
    per_person = table.select([*qis, unit]).group_by([*qis, unit]).aggregate([])
    return per_person.group_by(qis).aggregate([([], "count_all")])


def make_derivative(table: pa.Table, policy: DatasetPolicy, raw_report: dict[str, Any], *, k_target: int,
                    max_suppression: float = MAX_SUPPRESSION) -> Derivative:
    """Build, check and describe the unconditional derivative of ``table`` (see the module doc).

    ``raw_report`` is the risk scan of ``table`` itself: its findings name columns to drop.
    """
    if k_target < risk_scan.K_MIN:
        raise DeidentificationError(f"the k-anonymity target must be at least {risk_scan.K_MIN} "
                                    f"(the risk scan's threshold), not {k_target}")
    unit = policy.privacy_unit
    dropped: dict[str, str] = {}
    for col in policy.columns.values():
        if col.name == unit:
            dropped[col.name] = "privacy unit: a persistent pseudonym linking a person's rows"
        elif col.sensitivity == "identifier":
            dropped[col.name] = "declared identifier"
    for name, why in _flagged_columns(raw_report).items():
        dropped.setdefault(name, why)
    qis = [c.name for c in policy.columns.values() if c.sensitivity == "quasi_identifier" and c.name not in dropped]
    levels = {q: _levels(policy.columns[q], table.column(q)) for q in qis}
    at = dict.fromkeys(qis, 0)  # 0 = raw; i = levels[q][i - 1]
    suppressed = 0
    persons = int(pc.count_distinct(table.column(unit)).as_py()) if table.num_rows else 0
    if persons < k_target:
        raise DeidentificationError(f"the dataset holds {persons} persons, fewer than the k-anonymity target "
                                    f"{k_target}: no row-level release can meet it")
    for _round in range(8):  # the re-scan may flag more columns (values found only after a change)
        work = _apply(table, policy, [c for c in table.column_names if c not in dropped or c == unit], at, levels)
        while qis:
            classes = _classes(work, qis, unit)
            sizes = classes.column("count_all").to_numpy()
            small = sizes < k_target
            if not small.any():
                break
            if sizes[small].sum() <= max_suppression * persons:
                keep_keys = classes.filter(pa.array(~small)).select(qis)
                before = work.num_rows
                work = work.join(keep_keys, qis, join_type="inner")
                suppressed += before - work.num_rows
                break
            candidates = [q for q in qis if at[q] < len(levels[q])]
            q = max(candidates, key=lambda c: (pc.count_distinct(work.column(c)).as_py(), c))
            at[q] += 1
            work = _apply(table, policy, work.column_names, at, levels)
            suppressed = 0
        sens = {c.name: c.sensitivity for c in policy.columns.values()}
        scan = risk_scan.scan(work, sens, privacy_unit=unit, dataset=policy.name)
        newly = {n: w for n, w in _flagged_columns(scan).items() if n not in dropped}
        if not newly:
            break
        dropped.update(newly)
        qis = [q for q in qis if q not in dropped]
    k = scan["quasi_identifiers"].get("k") if qis else None
    if scan["identifier_findings"] or not scan["passed"] or (qis and (k is None or k < k_target)):
        raise DeidentificationError(f"the de-identified derivative still fails its risk scan: "
                                    f"{'; '.join(scan['problems']) or f'k = {k} < {k_target}'}")
    recipe = {
        "format": RECIPE_FORMAT,
        "k_target": k_target,
        "k_achieved": k,
        "max_suppression": max_suppression,
        "dropped": [{"column": n, "reason": why} for n, why in dropped.items()],
        "generalised": [{"column": q, "level": (levels[q][at[q] - 1] if at[q] else "raw")} for q in qis],
        "kept": [c for c in work.column_names if c != unit and c not in qis],
        "suppressed_rows": suppressed,
        "rows": work.num_rows,
    }
    return Derivative(work.drop_columns([unit]), scan, recipe)


def _apply(table: pa.Table, policy: DatasetPolicy, names: list[str], at: dict[str, int],
           levels: dict[str, list[str]]) -> pa.Table:
    cols = []
    for n in names:
        arr = table.column(n)
        if at.get(n):
            arr = generalise(policy.columns[n], arr, levels[n][at[n] - 1])
        cols.append(arr)
    return pa.table(cols, names=names)
