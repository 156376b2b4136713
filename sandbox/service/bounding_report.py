"""The owner's bounding report: what each candidate contribution bound and clamp range
would cut from the data, and the bounds that cut little (issue 13, "Honest accuracy").

PRIVACY: the figures are *exact* statistics of the data (shares, percentiles, the maximum),
so the report is for the dataset's owner, who may see the data, and the regulator
(authz rule ``dataset.bounding.read``); researchers never see it. It is stored in the
version's risk report under ``"bounding"`` and is never written to the audit log.

What the report measures, computed with DuckDB over the registered table:

- **L0** (``max_partitions``), per candidate group key (every column with declared public
  values): the share of persons with rows in more than L0 groups, and the share of rows
  dropped, as an *expectation* under the bounding pass's per-person pseudo-random choice
  (decision 0004): a person with rows in ``k > L0`` groups keeps each group with
  probability ``L0 / k``, so ``(1 - L0/k)`` of their rows are expected to go.
- **L∞** (``max_rows_per_partition``), per group key and without GROUP BY (a person's
  rows all in one group): the share of persons with more than L∞ rows in some group, and
  the share of rows dropped, ``Σ max(0, n - L∞)`` over (person, group) pairs.
- **Clamp ranges**, per int/float column: the declared bounds, ``[0, P90]``, ``[0, P95]``,
  ``[0, P99]``, ``[0, P99.9]`` and ``[0, max]`` (when the column holds negative values the
  lower end is the mirrored percentile ``P10`` … ``P0.1`` / ``min``): the share of rows
  clamped and the share of value mass removed, ``Σ|x - clamp(x)| / Σ|x|``.

The suggestion rule (documented in docs/privacy.md and shown with the report): **the
smallest candidate that keeps at least 99 % of the rows (L0, L∞) or of the value mass
(clamp ranges)**. L0 takes the largest of its per-key suggestions, L∞ the largest over the
group keys and "no GROUP BY", since one bound serves every query. A clamp suggestion's
upper end (and a negative lower end) is rounded away from zero to two significant digits,
which only widens it. When no candidate keeps 99 %, the largest is suggested and
``meets_target`` is false. The owner chooses; nothing is changed automatically.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from sandbox.engine.embedded import ROWID, Engine, EngineLimits
from sandbox.errors import NotFound, SandboxError
from sandbox.governance import dataset_access, datasets, organisations
from sandbox.governance.datasets import DatasetVersion
from sandbox.store import authz

if TYPE_CHECKING:
    from sandbox.governance.policy import DatasetPolicy
    from sandbox.service.query_service import Sandbox
    from sandbox.store.users import User

L0_CANDIDATES: Final = (1, 2, 3, 5, 10)
LINF_CANDIDATES: Final = (1, 2, 5, 10, 20, 50)
PERCENTILES: Final = (90.0, 95.0, 99.0, 99.9)
#: The share of rows (bounds) or value mass (clamps) a suggestion keeps at least.
TARGET: Final = 0.99
NO_GROUP_BY: Final = ""
TABLE: Final = "__data"

log = logging.getLogger(__name__)


def _q(name: str) -> str:
    """A quoted DuckDB identifier (column names may be Chinese or reserved words)."""
    return '"' + name.replace('"', '""') + '"'


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


def _run(engine: Engine, sql: str, table: pa.Table) -> list[tuple[Any, ...]]:
    out = engine.execute(sql, {TABLE: table}, timeout_seconds=600)
    return list(zip(*(c.to_pylist() for c in out.columns), strict=True)) if out.num_columns else []


# -- L0 and L∞ -----------------------------------------------------------------------------------
def _per_group_sql(unit: str, key: str | None) -> str:
    """One row per (person, group): the person's total rows, their group count and ``n``."""
    key_sql = _q(key) if key else "0"
    return (
        f"WITH g AS (SELECT {_q(unit)} AS u, {key_sql} AS k, COUNT(*) AS n FROM {TABLE} "
        f"WHERE {_q(unit)} IS NOT NULL GROUP BY 1, 2), "
        "p AS (SELECT u, COUNT(*) AS groups, SUM(n) AS rows FROM g GROUP BY u) "
    )


def _l0_rows(engine: Engine, table: pa.Table, unit: str, key: str, candidates: Sequence[int],
             persons: int, rows: int) -> list[dict[str, Any]]:
    cols = ", ".join(
        f"SUM(CASE WHEN groups > {b} THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN groups > {b} THEN rows * (1.0 - {b}.0 / groups) ELSE 0 END)"
        for b in candidates
    )
    (res,) = _run(engine, _per_group_sql(unit, key) + f"SELECT {cols} FROM p", table)
    return [{"bound": b, "persons_affected": int(res[2 * i] or 0),
             "persons_share": _share(res[2 * i] or 0, persons),
             "rows_dropped_share": _share(res[2 * i + 1] or 0, rows)} for i, b in enumerate(candidates)]


def _linf_rows(engine: Engine, table: pa.Table, unit: str, key: str | None, candidates: Sequence[int],
               persons: int, rows: int) -> tuple[list[dict[str, Any]], int]:
    cols = ", ".join(
        f"COUNT(DISTINCT CASE WHEN n > {b} THEN u END), SUM(GREATEST(n - {b}, 0))" for b in candidates
    )
    (res,) = _run(engine, _per_group_sql(unit, key) + f"SELECT MAX(n), {cols} FROM g", table)
    out = [{"bound": b, "persons_affected": int(res[1 + 2 * i] or 0),
            "persons_share": _share(res[1 + 2 * i] or 0, persons),
            "rows_dropped_share": _share(res[2 + 2 * i] or 0, rows)} for i, b in enumerate(candidates)]
    return out, int(res[0] or 0)


def _declared_rows_kept(engine: Engine, table: pa.Table, unit: str, key: str | None, l0: int,
                        linf: int, rows: int) -> float:
    """Expected share of rows kept by the declared L0 and L∞ together, for this key."""
    sql = _per_group_sql(unit, key) + (
        f", c AS (SELECT u, SUM(LEAST(n, {linf})) AS kept FROM g GROUP BY u) "
        f"SELECT SUM(c.kept * LEAST(1.0, {l0}.0 / p.groups)) FROM c JOIN p USING (u)"
    )
    (res,) = _run(engine, sql, table)
    return _share(res[0] or 0, rows)


def _smallest(rows: Sequence[Mapping[str, Any]], field: str) -> tuple[Any, bool]:
    """The first candidate (they ascend) losing at most 1 - TARGET; else the last one."""
    for r in rows:
        if r[field] <= 1.0 - TARGET + 1e-12:
            return r["bound"], True
    return rows[-1]["bound"], False


# -- clamp ranges --------------------------------------------------------------------------------
def round_away(x: float, digits: int = 2) -> float:
    """``x`` rounded away from zero to ``digits`` significant digits (a bound only widens).

    >>> round_away(4873.2), round_away(-0.01234), round_away(0.0), round_away(100.0)
    (4900.0, -0.013, 0.0, 100.0)
    """
    if x == 0 or not math.isfinite(x):
        return x
    scale = 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1)
    steps = math.ceil(round(abs(x) / scale, 9))
    return math.copysign(float(f"{steps * scale:.12g}"), x)


def _clamp_candidates(stats: Mapping[str, float | None], declared: tuple[float, float] | None,
                      ) -> list[tuple[str, float, float]]:
    lo_min, hi_max = stats["min"], stats["max"]
    assert lo_min is not None and hi_max is not None
    negative = lo_min < 0
    out = []
    if declared is not None:
        out.append(("declared", float(declared[0]), float(declared[1])))
    for p in PERCENTILES:
        lo = min(float(stats[f"lo{p}"] or 0.0), 0.0) if negative else 0.0
        out.append((f"p{p:g}", lo, max(float(stats[f"hi{p}"] or 0.0), lo)))
    out.append(("max", float(min(lo_min, 0.0)), float(hi_max)))
    return out


def _clamp_column(engine: Engine, table: pa.Table, column: str, declared: tuple[float, float] | None,
                  is_int: bool) -> dict[str, Any] | None:
    x = f"CAST({_q(column)} AS DOUBLE)"
    pct = ", ".join(f"QUANTILE_CONT({x}, {p / 100!r}), QUANTILE_CONT({x}, {1 - p / 100!r})" for p in PERCENTILES)
    (res,) = _run(engine, f"SELECT COUNT({x}), MIN({x}), MAX({x}), SUM(ABS({x})), {pct} FROM {TABLE} "
                          f"WHERE {x} IS NOT NULL AND isfinite({x})", table)
    count, lo, hi, mass = res[:4]
    if not count:
        return None
    stats: dict[str, float | None] = {"min": lo, "max": hi}
    for i, p in enumerate(PERCENTILES):
        stats[f"hi{p}"], stats[f"lo{p}"] = res[4 + 2 * i], res[5 + 2 * i]
    candidates = _clamp_candidates(stats, declared)
    cols = ", ".join(
        f"SUM(CASE WHEN {x} < {a!r} OR {x} > {b!r} THEN 1 ELSE 0 END), "
        f"SUM(ABS({x} - LEAST(GREATEST({x}, {a!r}), {b!r})))"
        for _, a, b in candidates
    )
    (cut,) = _run(engine, f"SELECT {cols} FROM {TABLE} WHERE {x} IS NOT NULL AND isfinite({x})", table)
    ranges = [{"candidate": name, "lower": a, "upper": b,
               "rows_clamped_share": _share(cut[2 * i] or 0, count),
               "mass_removed_share": _share(cut[2 * i + 1] or 0, mass) if mass else 0.0}
              for i, (name, a, b) in enumerate(candidates)]
    ordered = sorted((r for r in ranges if r["candidate"] != "declared"), key=lambda r: r["upper"] - r["lower"])
    pick = next((r for r in ordered if r["mass_removed_share"] <= 1.0 - TARGET + 1e-12), ordered[-1])
    low, up = round_away(pick["lower"]), round_away(pick["upper"])
    if is_int:
        low, up = math.floor(low), math.ceil(up)
    return {
        "column": column, "rows": int(count), "min": lo, "max": hi,
        "declared": list(declared) if declared is not None else None,
        "ranges": ranges,
        "suggested": {"lower": low, "upper": up, "from": pick["candidate"],
                      "meets_target": pick["mass_removed_share"] <= 1.0 - TARGET + 1e-12},
    }


# -- the report ----------------------------------------------------------------------------------
def build_report(table: pa.Table, *, privacy_unit: str, group_keys: Sequence[str] = (),
                 numeric: Mapping[str, tuple[float, float] | None] | None = None,
                 integer_columns: Sequence[str] = (), declared_l0: int | None = None,
                 declared_linf: int | None = None, one_row_per_unit: bool = False,
                 engine: Engine | None = None) -> dict[str, Any]:
    """The bounding report of ``table`` (pure apart from the in-memory engine it runs on).

    ``numeric``: column → declared (lower, upper) or None; ``group_keys``: the columns a
    researcher may group by with a declared domain. Usable without a policy (``datasets
    draft``) as with one (:func:`report_for_policy`).
    """
    engine = engine or Engine(EngineLimits(timeout_seconds=600))
    if ROWID in table.column_names:
        table = table.drop_columns([ROWID])
    (res,) = _run(engine, f"SELECT COUNT(*), COUNT(DISTINCT {_q(privacy_unit)}) FROM {TABLE} "
                          f"WHERE {_q(privacy_unit)} IS NOT NULL", table)
    rows, persons = int(res[0]), int(res[1])
    keys: list[dict[str, Any]] = []
    for key in [NO_GROUP_BY, *group_keys]:
        linf, max_rows = _linf_rows(engine, table, privacy_unit, key or None, LINF_CANDIDATES, persons, rows)
        item: dict[str, Any] = {"key": key or None, "max_rows_per_group": max_rows, "l_inf": linf}
        if key:
            item["l0"] = _l0_rows(engine, table, privacy_unit, key, L0_CANDIDATES, persons, rows)
            (mg,) = _run(engine, f"SELECT MAX(c) FROM (SELECT COUNT(DISTINCT {_q(key)}) AS c FROM {TABLE} "
                                 f"GROUP BY {_q(privacy_unit)})", table)
            item["max_groups_per_person"] = int(mg[0] or 0)
        if declared_l0 is not None and declared_linf is not None:
            item["declared_rows_kept_share"] = _declared_rows_kept(
                engine, table, privacy_unit, key or None, declared_l0 if key else 1, declared_linf, rows)
        keys.append(item)
    l0_picks = [_smallest(k["l0"], "rows_dropped_share") for k in keys if "l0" in k]
    linf_picks = [_smallest(k["l_inf"], "rows_dropped_share") for k in keys]
    suggested: dict[str, Any] = {
        "max_partitions": max((b for b, _ in l0_picks), default=1),
        "max_rows_per_partition": max(b for b, _ in linf_picks),
        "meets_target": all(ok for _, ok in l0_picks + linf_picks),
    }
    if one_row_per_unit:
        suggested.update(max_partitions=1, max_rows_per_partition=1, meets_target=rows == persons)
    ints = set(integer_columns)
    columns = [c for name, bounds in (numeric or {}).items()
               if (c := _clamp_column(engine, table, name, bounds, name in ints)) is not None]
    return {
        "rule": f"smallest candidate keeping at least {TARGET:.0%} of rows (L0, L∞) or of value mass "
                "(clamp ranges); L0 and L∞ take the largest over the group keys",
        "target": TARGET, "rows": rows, "persons": persons, "privacy_unit": privacy_unit,
        "declared": {"max_partitions": declared_l0, "max_rows_per_partition": declared_linf,
                     "one_row_per_unit": one_row_per_unit},
        "group_keys": keys, "suggested": suggested, "columns": columns,
    }


def report_for_policy(table: pa.Table, policy: DatasetPolicy, engine: Engine | None = None) -> dict[str, Any]:
    """The report for a registered table: group keys are the columns with public values;
    clamp ranges for every int and float column with its declared bounds."""
    cols = [c for c in policy.columns.values() if c.name != policy.privacy_unit]
    numeric = {c.name: c.numeric_bounds() for c in cols if c.type in ("int", "float")}
    return build_report(
        table, privacy_unit=policy.privacy_unit,
        group_keys=[c.name for c in cols if c.public_values],
        numeric=numeric, integer_columns=[c.name for c in cols if c.type == "int"],
        declared_l0=policy.max_partitions, declared_linf=policy.max_rows_per_partition,
        one_row_per_unit=policy.one_row_per_unit, engine=engine,
    )


# -- the service function (GET /api/v1/datasets/<name>/bounding-report) ---------------------------
def read(sb: Sandbox, user: User | None, name: str) -> dict[str, Any]:
    """The newest version's report, as stored at registration (computed now for versions
    registered before the report existed). Owner and regulator only (PRIVACY)."""
    authz.check_role("dataset.bounding.read", user)
    conn = sb.conn()
    row = conn.execute("SELECT * FROM datasets WHERE name = ?", (str(name).lower(),)).fetchone()
    missing = f"no dataset named {name!r}"
    if row is None:
        raise NotFound(missing)
    authz.check("dataset.bounding.read", user, dataset_access.relations(conn, user, row), missing=missing)
    if user is not None and user.role == "regulator" and not organisations.in_jurisdiction(conn, user, [row["name"]]):
        raise NotFound(missing)  # 第五条: a district regulator reads its district's reports only
    v = datasets.all_versions(conn, row["id"])[-1]
    report = v.risk_report.get("bounding")
    stored = report is not None
    if report is None:
        report = report_for_policy(sb.tables.get(v), v.policy)
    return {"dataset": v.name, "version": v.version, "stored": stored, "report": report}


def store(conn: sqlite3.Connection, version: DatasetVersion, table: pa.Table, *,
          progress: Callable[[str], None] | None = None) -> DatasetVersion:
    """Compute the report at registration and keep it in the version's risk report JSON
    (inside the caller's transaction). A failure leaves it out: :func:`read` computes it
    on request instead, so registration never fails on the report."""
    if progress:
        progress("measuring what candidate contribution bounds and clamp ranges would cut")
    try:
        report = report_for_policy(table, version.policy)
    except SandboxError as err:
        log.warning("bounding report of %s v%s not computed: %s", version.name, version.version, err.code)
        return version
    risk = {**version.risk_report, "bounding": report}
    conn.execute("UPDATE dataset_versions SET risk_report = ? WHERE id = ?",
                 (json.dumps(risk, ensure_ascii=False), version.version_id))
    return datasets.get_version(conn, version.name, version_id=version.version_id)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def text_lines(result: Mapping[str, Any]) -> list[str]:
    """The report as plain text for ``sandbox datasets bounds``."""
    r = result["report"]
    d, s = r["declared"], r["suggested"]
    out = [f"{result['dataset']} version {result['version']}: {r['rows']:,} rows, {r['persons']:,} persons",
           f"declared: L0 = {d['max_partitions']}, L∞ = {d['max_rows_per_partition']}"
           + (" (one row per person)" if d["one_row_per_unit"] else ""),
           f"suggested: L0 = {s['max_partitions']}, L∞ = {s['max_rows_per_partition']}"
           + ("" if s["meets_target"] else "  (no candidate keeps 99 % of rows)"),
           f"rule: {r['rule']}"]
    for k in r["group_keys"]:
        out.append(f"\nGROUP BY {k['key'] or '(none)'}"
                   + (f": declared bounds keep {_pct(k['declared_rows_kept_share'])} of rows"
                      if "declared_rows_kept_share" in k else ""))
        for label, field in (("L0", "l0"), ("L∞", "l_inf")):
            for c in k.get(field, []):
                out.append(f"  {label} = {c['bound']:<3} persons above {_pct(c['persons_share']):>8}  "
                           f"rows dropped {_pct(c['rows_dropped_share']):>8}")
    for c in r["columns"]:
        sug = c["suggested"]
        out.append(f"\n{c['column']}: suggested clamp [{sug['lower']:g}, {sug['upper']:g}] (from {sug['from']})")
        for g in c["ranges"]:
            out.append(f"  {g['candidate']:<9} [{g['lower']:g}, {g['upper']:g}]  rows clamped "
                       f"{_pct(g['rows_clamped_share']):>8}  mass removed {_pct(g['mass_removed_share']):>8}")
    return out
