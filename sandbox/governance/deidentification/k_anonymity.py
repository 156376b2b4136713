"""k-anonymity over persons: Datafly's search, the classes, suppression and distinct 2-diversity.

Datafly (Sweeney 2002) generalises one level at a time, the column with the most distinct
values first, until every combination of the kept columns is shared by ``k_target`` persons.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sandbox.errors import SandboxError
from sandbox.governance.deidentification.generalisation import TOP, generalise
from sandbox.governance.policy import ColumnPolicy


class DeidentificationError(SandboxError):
    """The derivative cannot reach its target (too few persons, or the scan still fails)."""

    code = "deidentification_failed"
    http_status = 409


def person_classes(table: pa.Table, cols: list[str], person: str) -> pa.Table:
    """Each combination of ``cols`` and how many persons hold it (``count_all``)."""
    per_person = table.select([*cols, person]).group_by([*cols, person]).aggregate([])
    return per_person.group_by(cols).aggregate([([], "count_all")])


def k_of(table: pa.Table, cols: list[str], person: str) -> int:
    """The table's k: the fewest persons sharing one combination of ``cols``."""
    if not table.num_rows:
        return 0
    if not cols:
        return int(pc.count_distinct(table.column(person)).as_py())
    return int(pc.min(person_classes(table, cols, person).column("count_all")).as_py())



def diversify(work: pa.Table, kcols: list[str], qcols: list[str],
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
    rows = row_index(keyed, key)
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


def datafly(source: pa.Table, cols: Mapping[str, ColumnPolicy], kcols: list[str], at: dict[str, int],
             levels: Mapping[str, list[str]], person: str, persons: int, k_target: int,
             max_suppression: float) -> tuple[pa.Table, int]:
    """Generalise (in ``at``, in place) until every class holds ``k_target`` persons; then suppress."""
    cache: dict = {}
    while True:
        work = _apply(source, cols, kcols, at, levels, person, cache)
        if not kcols:
            return work, 0
        classes = person_classes(work, kcols, person)
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



def suppress_small(work: pa.Table, kcols: list[str], person: str, k: int) -> tuple[pa.Table, int]:
    """Remove the rows of classes held by fewer than ``k`` persons (after the guard: a class whose
    newcomers were held back may stay below a raised k); a class that vanishes shows nothing
    about whoever is in it."""
    if not kcols or not work.num_rows:
        return work, 0
    key = [f"c{i}" for i in range(len(kcols))]
    keyed = pa.table([pc.fill_null(pc.cast(work.column(c), pa.string()), "\x00") for c in kcols]
                     + [work.column(person)], names=[*key, person])  # nulls are a class too
    classes = person_classes(keyed, key, person)
    small = classes.column("count_all").to_numpy() < k
    if not small.any():
        return work, 0
    rows = row_index(keyed.select(key), key)
    drop = [i for kv in classes.filter(pa.array(small)).select(key).to_pylist() for i in rows[tuple(kv.values())]]
    keep = np.ones(work.num_rows, dtype=bool)
    keep[drop] = False
    return work.filter(pa.array(keep)), len(drop)


def row_index(t: pa.Table, key: list[str]) -> dict[tuple, list[int]]:
    """The rows of each combination of ``key``."""
    out: dict[tuple, list[int]] = {}
    for i, r in enumerate(zip(*(t.column(c).to_pylist() for c in key), strict=True)):
        out.setdefault(r, []).append(i)
    return out
