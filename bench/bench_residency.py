"""The engine alone over one version in each form of decision 0013 (amended), interleaved.

    python bench/bench_residency.py /tmp/bench-memory/ws-1000000 --runs 9

Forms: read in place from the Parquet-encrypted engine file; held in memory as plain
Arrow; held as Arrow with the ``public_values`` text columns dictionary-encoded (what a
worker holds under its residency budget); a DuckDB in-memory table (option (b)'s decrypted
blocks, for comparison). Raw SQL, no guard or noise: the engine stage only. Each run
takes every form in turn, so load on the shared VM hits all forms alike.
Writes bench/results/residency-<rows>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

import keys
from sandbox.engine import tables as engine_tables
from sandbox.engine.embedded import Engine
from sandbox.governance import datasets
from sandbox.store.context import KeyringDecryptor
from sandbox.store.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    ("count", "SELECT COUNT(*) FROM residents"),
    ("count by district", "SELECT district, COUNT(*) FROM residents GROUP BY district"),
    ("avg income by district", "SELECT district, AVG(income) FROM residents GROUP BY district"),
    ("visits: count by dept", "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace", type=Path, help="a demo workspace (bench_memory.py's cache)")
    ap.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        shutil.copytree(args.workspace, root)
        ws = Workspace.open(root)
        conn = sqlite3.connect(ws.data_dir / "sandbox.db" if (ws.data_dir / "sandbox.db").exists()
                               else root / "sandbox.db")
        conn.row_factory = sqlite3.Row
        decryptor = KeyringDecryptor(keys.KeyRing.open_or_create(ws.keys_dir))
        versions = {n: datasets.get_version(conn, n) for n in ("residents", "clinic_visits")}
        engine = Engine(allowed_directory=datasets.engine_dir(ws.data_dir))
        in_place = engine_tables.TableCache(ws.data_dir, decryptor)
        held = engine_tables.TableCache(ws.data_dir, decryptor, resident_bytes=2**40)
        forms = {
            "in place": {n: in_place.source(v) for n, v in versions.items()},
            "Arrow": {n: held._load(v) for n, v in versions.items()},
            "Arrow, dictionaries": {n: held.source(v) for n, v in versions.items()},
        }
        native = duckdb.connect(":memory:", config={"threads": 2})
        for n, t in forms["Arrow"].items():
            native.register("x", t)
            native.execute(f"CREATE TABLE {n} AS SELECT * FROM x")
            native.unregister("x")
        times: dict[str, dict[str, list[float]]] = {f: {q: [] for q, _ in QUERIES} for f in [*forms, "DuckDB table"]}
        for _ in range(args.runs):
            for q, sql in QUERIES:
                for f, tables in forms.items():
                    t0 = time.perf_counter()
                    engine.execute(sql, tables)
                    times[f][q].append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                native.sql(sql).to_arrow_table()
                times["DuckDB table"][q].append((time.perf_counter() - t0) * 1000)
        sizes = {f: {n: t.nbytes for n, t in tables.items()} for f, tables in forms.items() if f != "in place"}
        sizes["estimate"] = {n: engine_tables.estimate_bytes(forms["in place"][n]) for n in versions}
    rows = versions["residents"].row_count
    report = {"rows": rows, "runs": args.runs, "sizes_bytes": sizes,
              "median_ms": {f: {q: statistics.median(v) for q, v in qs.items()} for f, qs in times.items()}}
    print(f"{'median ms':<24}" + "".join(f"{f:>22}" for f in times))
    for q, _ in QUERIES:
        print(f"{q:<24}" + "".join(f"{report['median_ms'][f][q]:>22.1f}" for f in times))
    print("sizes MiB", {f: {n: round(b / 2**20) for n, b in s.items()} for f, s in sizes.items()})
    out = ROOT / "bench" / "results" / f"residency-{rows}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
