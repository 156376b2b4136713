"""Accuracy and latency of our releases vs SmartNoise SQL, at equal total privacy loss.

    python bench/bench_accuracy.py                          # 100k persons, 50 runs, 1M latency
    python bench/bench_accuracy.py --rows 20000 --runs 10 --latency-rows 0   # quick look

Both systems answer the same seven queries on the same synthetic data (the demo's
generator, read back from the workspace) with the same bounds: income in [0, 500000],
age in [0, 100], one row per resident, at most 10 visits per person counted. SmartNoise
is given ε = 1 (δ = 1e-6) per query; it reports what each query really costs (AVG spends
twice: a sum and a count) and we run ours at *that* cost, so the total privacy loss is
equal. SmartNoise pins an older OpenDP, so it runs in its own virtual environment
(bench/.venv-smartnoise, created here on first use) through a small runner script fed
the same Parquet files.

Error is measured against the exact answer on the bounded data (values clamped to the
policy bounds, visits capped at 10 per person): the error both systems add. Keys are
public (districts, sexes, education levels), so SmartNoise runs with ``censor_dims``
off — it would otherwise spend δ to hide keys that are public anyway.

Reader: SmartNoise runs with its **pandas** reader (each table in memory as a DataFrame),
which is not its fastest setup; SmartNoise on DuckDB is several times faster. The latency
ratio printed here is against SmartNoise-on-pandas only; the honest yardstick for speed is
``/work/shared/peers/bench/bench_sandbox.py`` (SmartNoise on DuckDB, exact DuckDB, and the
sandbox over HTTP in one run; docs/benchmarks.md, issue 18).

Latency: median wall time of one query at --latency-rows persons. Ours is measured twice:
"core" (guard + DuckDB + OpenDP noise) and "service" (``Sandbox.run_query``: also the
budget charge and the signed, fsynced audit entry).

Prints a table and writes bench/results/accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import query_guard  # noqa: E402
from privacy import release  # noqa: E402
from sandbox.demo.setup import setup_demo  # noqa: E402
from sandbox.engine.execution import engine_request  # noqa: E402
from sandbox.governance import datasets  # noqa: E402
from sandbox.governance.workflow import get_approval  # noqa: E402
from sandbox.service.pipeline import QueryRequest  # noqa: E402
from sandbox.store.users import find_user  # noqa: E402

VENV = ROOT / "bench" / ".venv-smartnoise"
RESULTS = ROOT / "bench" / "results" / "accuracy.json"
EPSILON, DELTA = 1.0, 1e-6
OUR_DELTA = 1e-7  # what one query of a δ = 1e-6 approval may use (privacy.per_query_delta)

# name, our SQL, SmartNoise SQL, exact SQL on bounded data (DuckDB), combines aggregates?
QUERIES: list[tuple[str, str, str, str, bool]] = [
    ("COUNT(*)",
     "SELECT COUNT(*) AS v FROM residents",
     "SELECT COUNT(*) AS v FROM public.residents",
     "SELECT COUNT(*) AS v FROM residents", False),
    ("COUNT by district",
     "SELECT district, COUNT(*) AS v FROM residents GROUP BY district",
     "SELECT district, COUNT(*) AS v FROM public.residents GROUP BY district",
     "SELECT district, COUNT(*) AS v FROM residents GROUP BY district", False),
    ("SUM(income)",
     "SELECT SUM(income) AS v FROM residents",
     "SELECT SUM(income) AS v FROM public.residents",
     "SELECT SUM(LEAST(GREATEST(income, 0), 500000)) AS v FROM residents", False),
    ("AVG(income) by district",
     "SELECT district, AVG(income) AS v FROM residents GROUP BY district",
     "SELECT district, AVG(income) AS v FROM public.residents GROUP BY district",
     "SELECT district, AVG(LEAST(GREATEST(income, 0), 500000)) AS v FROM residents GROUP BY district", True),
    ("AVG(age) by sex, education",
     "SELECT sex, education, AVG(age) AS v FROM residents GROUP BY sex, education",
     "SELECT sex, education, AVG(age) AS v FROM public.residents GROUP BY sex, education",
     "SELECT sex, education, AVG(LEAST(GREATEST(age, 0), 100)) AS v FROM residents GROUP BY sex, education",
     True),
    ("visits: COUNT(*)",
     "SELECT COUNT(*) AS v FROM clinic_visits",
     "SELECT COUNT(*) AS v FROM public.clinic_visits",
     "SELECT SUM(LEAST(n, 10)) AS v FROM (SELECT person_id, COUNT(*) AS n FROM clinic_visits GROUP BY person_id)",
     False),
    ("MEDIAN(income)",
     "SELECT MEDIAN(income) AS v FROM residents",
     "SELECT MEDIAN(income) AS v FROM public.residents",  # not in its grammar: reported unsupported
     "SELECT QUANTILE_CONT(LEAST(GREATEST(income, 0), 500000), 0.5) AS v FROM residents", False),
]

SMARTNOISE_METADATA = {
    "Database": {
        "public": {
            "residents": {
                "row_privacy": False, "max_ids": 1, "sample_max_ids": True, "censor_dims": False,
                "person_id": {"type": "int", "private_id": True},
                "district": {"type": "string"}, "sex": {"type": "string"},
                "education": {"type": "string"},
                "age": {"type": "int", "lower": 0, "upper": 100},
                "income": {"type": "float", "lower": 0, "upper": 500000},
            },
            "clinic_visits": {
                "row_privacy": False, "max_ids": 10, "sample_max_ids": True, "censor_dims": False,
                "person_id": {"type": "int", "private_id": True},
                "department": {"type": "string"},
                "cost": {"type": "float", "lower": 0, "upper": 5000},
            },
        }
    }
}

# Runs inside bench/.venv-smartnoise: python -c RUNNER config.json out.json
RUNNER = r'''
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import snsql
from snsql import Privacy

cfg = json.load(open(sys.argv[1]))
frames = {name: pd.read_parquet(path) for name, path in cfg["tables"].items()}
privacy = Privacy(epsilon=cfg["epsilon"], delta=cfg["delta"])
def only(name):  # the pandas reader takes one table: give it that table's metadata
    db = cfg["metadata"]["Database"]
    return {"Database": {"public": {name: db["public"][name]}}}
readers = {name: snsql.from_df(df, privacy=privacy, metadata=only(name)) for name, df in frames.items()}
out = {}
for q in cfg["queries"]:
    table = "clinic_visits" if "clinic_visits" in q["sql"] else "residents"
    reader = readers[table]
    entry = {"runs": [], "latency_ms": []}
    try:
        eps, delta = reader.get_privacy_cost(q["sql"])
        entry["cost"] = [float(eps), float(delta)]
        for _ in range(cfg["runs"]):
            t = time.perf_counter()
            rows = reader.execute(q["sql"])
            entry["latency_ms"].append((time.perf_counter() - t) * 1000)
            entry["runs"].append([[None if v is None else (float(v) if isinstance(v, (int, float)) else str(v))
                                   for v in row] for row in rows[1:]])
    except Exception as err:
        entry["error"] = f"{type(err).__name__}: {err}"[:300]
    out[q["name"]] = entry
json.dump(out, open(sys.argv[2], "w"))
'''


def ensure_smartnoise_venv() -> Path:
    """Create bench/.venv-smartnoise with smartnoise-sql on first use; return its python."""
    python = VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import snsql"], capture_output=True).returncode == 0:
        return python
    print("creating bench/.venv-smartnoise (smartnoise-sql pins an older OpenDP) …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    (VENV / ".gitignore").write_text("*\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "smartnoise-sql", "pyarrow"], check=True)
    return python


def workspace(rows: int, root: Path):
    """A demo workspace with ``rows`` residents: (Sandbox, approval, tables)."""
    sb, creds = setup_demo(root, rows=rows, url="http://127.0.0.1:0", say=lambda _m: None)
    conn = sb.conn()
    approval = get_approval(conn, creds["researcher"]["approval_id"])
    versions = datasets.latest_versions(conn)
    tables = {v.name: sb.tables.get(v) for v in versions}
    return sb, approval, versions, tables


def ours_once(sql: str, scenario, catalog, sb, versions, epsilon: float) -> tuple[list[list[Any]], float]:
    """Guard + engine (with the per-version bounded materialisation) + OpenDP noise: the
    service's core path without the ledger and the audit append; rows and wall ms."""
    t = time.perf_counter()
    plan = query_guard.plan(sql, scenario, catalog)
    exact = sb.executor.run(engine_request(plan, versions)).to_pydict()
    rel = release(plan, exact, epsilon=epsilon, delta=OUR_DELTA)
    return rel.rows, (time.perf_counter() - t) * 1000


def exact_answers(tables) -> dict[str, dict[tuple, float]]:
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    out = {}
    for name, _ours, _sn, truth_sql, _comb in QUERIES:
        rows = con.execute(truth_sql).fetchall()
        out[name] = {tuple(r[:-1]): float(r[-1]) for r in rows}
    return out


def errors(runs: list[list[list[Any]]], truth: dict[tuple, float]) -> dict[str, float]:
    """Mean absolute and relative error over runs × groups (a missing group counts as 0)."""
    abs_err, rel_err = [], []
    for rows in runs:
        got = {tuple(r[:-1]): r[-1] for r in rows}
        for key, true in truth.items():
            value = got.get(key)
            value = 0.0 if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
            abs_err.append(abs(value - true))
            rel_err.append(abs(value - true) / abs(true) if true else 0.0)
    se = statistics.stdev(abs_err) / math.sqrt(len(abs_err)) if len(abs_err) > 1 else 0.0
    return {"mae": statistics.fmean(abs_err), "mae_se": se, "mre": statistics.fmean(rel_err)}


def run_smartnoise(python: Path, tables, runs: int, tmp: Path, epsilon: float = EPSILON) -> dict[str, Any]:
    paths = {}
    for name, table in tables.items():
        path = tmp / f"{name}.parquet"
        pq.write_table(table.drop(["__rowid"]) if "__rowid" in table.column_names else table, path)
        paths[name] = str(path)
    cfg = {"tables": paths, "epsilon": epsilon, "delta": DELTA, "runs": runs, "metadata": SMARTNOISE_METADATA,
           "queries": [{"name": n, "sql": sn} for n, _o, sn, _t, _c in QUERIES]}
    cfg_path, out_path = tmp / "sn-config.json", tmp / "sn-out.json"
    cfg_path.write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(python), "-c", RUNNER, str(cfg_path), str(out_path)], check=True, env=env)
    return json.loads(out_path.read_text())


def accuracy(rows: int, runs: int, python: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sb, approval, versions, tables = workspace(rows, tmp / "ws")
        catalog = datasets.build_catalog(versions)
        truth = exact_answers(tables)
        sn = run_smartnoise(python, tables, runs, tmp) if python else {}
        out = {}
        for name, ours_sql, _sn_sql, _truth_sql, combined in QUERIES:
            entry = sn.get(name, {"error": "SmartNoise not run"})
            cost = entry.get("cost", [EPSILON, 0.0])
            epsilon = cost[0]  # equal total privacy loss: ours at SmartNoise's own cost
            our_runs = [ours_once(ours_sql, approval.scenario, catalog, sb, versions, epsilon)[0]
                        for _ in range(runs)]
            row: dict[str, Any] = {"epsilon": epsilon, "combined": combined,
                                   "ours": errors(our_runs, truth[name])}
            if "error" in entry:
                row["smartnoise"] = {"error": entry["error"]}
            else:
                row["smartnoise"] = {**errors(entry["runs"], truth[name]), "cost": cost}
                row["error_ratio"] = row["ours"]["mae"] / row["smartnoise"]["mae"] if row["smartnoise"]["mae"] else None
            out[name] = row
            print(f"  {name:28s} ε={epsilon:<4g} ours MAE {row['ours']['mae']:.4g}"
                  + (f"  SmartNoise MAE {row['smartnoise']['mae']:.4g}" if "mae" in row["smartnoise"] else
                     f"  SmartNoise: {row['smartnoise']['error'][:60]}"), flush=True)
        return out


def latency(rows: int, runs: int, python: Path | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sb, approval, versions, tables = workspace(rows, tmp / "ws")
        catalog = datasets.build_catalog(versions)
        user = find_user(sb.conn(), "researcher")
        sn = run_smartnoise(python, tables, runs, tmp) if python else {}
        out = {}
        for i, (name, ours_sql, _sn, _t, _c) in enumerate(QUERIES):
            ours_once(ours_sql, approval.scenario, catalog, sb, versions, EPSILON)  # warm-up
            core = [ours_once(ours_sql, approval.scenario, catalog, sb, versions, EPSILON)[1]
                    for _ in range(runs)]
            service = []
            for r in range(runs):  # ε varies in the 12th digit: the release cache never answers
                t = time.perf_counter()
                sb.run_query(user, QueryRequest(approval.id, ours_sql, 1e-3 * (1 - (i * runs + r) * 1e-9)))
                service.append((time.perf_counter() - t) * 1000)
            entry = sn.get(name, {})
            sn_ms = statistics.median(entry["latency_ms"]) if entry.get("latency_ms") else None
            out[name] = {"ours_core_ms": statistics.median(core), "ours_service_ms": statistics.median(service),
                         "smartnoise_ms": sn_ms,
                         "speedup_core": sn_ms / statistics.median(core) if sn_ms else None}
            print(f"  {name:28s} ours {out[name]['ours_core_ms']:.1f} ms (service "
                  f"{out[name]['ours_service_ms']:.1f} ms)  SmartNoise "
                  + (f"{sn_ms:.0f} ms" if sn_ms else "n/a"), flush=True)
        return out


def table(acc: dict[str, Any], lat: dict[str, Any]) -> str:
    head = ("| query | ε (total) | ours MAE ± se | SmartNoise MAE ± se | ours / SN | ours MRE | SN MRE "
            "| ours ms (core / service) | SN-on-pandas ms |")
    lines = [head, "|" + "---|" * 9]
    for name, *_ in QUERIES:
        a, lt = acc.get(name, {}), lat.get(name, {})
        sn = a.get("smartnoise", {})
        def f(x, spec=".4g"):
            return "n/a" if x is None else format(x, spec)
        ours = a.get("ours", {})
        lines.append(
            f"| {name} | {f(a.get('epsilon'), 'g')} | {f(ours.get('mae'))} ± {f(ours.get('mae_se'), '.2g')} | "
            + (f"{f(sn.get('mae'))} ± {f(sn.get('mae_se'), '.2g')}" if "mae" in sn else "unsupported")
            + f" | {f(a.get('error_ratio'), '.2f')} | "
            f"{f(a.get('ours', {}).get('mre'), '.2e')} | {f(sn.get('mre'), '.2e') if 'mre' in sn else '—'} | "
            f"{f(lt.get('ours_core_ms'), '.1f')} / {f(lt.get('ours_service_ms'), '.1f')} | "
            f"{f(lt.get('smartnoise_ms'), '.0f')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="persons for the accuracy runs")
    parser.add_argument("--runs", type=int, default=50, help="releases per query and system")
    parser.add_argument("--latency-rows", type=int, default=1_000_000, help="persons for latency (0: skip)")
    parser.add_argument("--latency-runs", type=int, default=7)
    parser.add_argument("--no-smartnoise", action="store_true", help="ours only")
    args = parser.parse_args()
    python = None if args.no_smartnoise else ensure_smartnoise_venv()
    print(f"accuracy at {args.rows:,} persons, {args.runs} runs per query", flush=True)
    acc = accuracy(args.rows, args.runs, python)
    lat: dict[str, Any] = {}
    if args.latency_rows:
        print(f"latency at {args.latency_rows:,} persons, median of {args.latency_runs}", flush=True)
        lat = latency(args.latency_rows, args.latency_runs, python)
    text = table(acc, lat)
    print()
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "rows": args.rows, "runs": args.runs, "latency_rows": args.latency_rows,
        "epsilon_given_to_smartnoise": EPSILON, "delta": DELTA,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "accuracy": acc, "latency": lat, "table": text,
    }, indent=2, ensure_ascii=False))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
