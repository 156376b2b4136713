"""What granular counts cost: building a derivative against 0 … N signed derivatives of the
same shape (decision 0010, amendment 2), and how far the counts move.

    PYTHONPATH=. python bench/bench_granular.py --rows 20000 --priors 0 10 30
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter

import pyarrow as pa

from sandbox.governance import deidentify, risk_scan
from sandbox.governance.policy import ColumnPolicy, DatasetPolicy

DISTRICTS = ("历下区", "市中区", "槐荫区", "天桥区", "历城区")


def town(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    return pa.table({"pid": pa.array(range(1, n + 1), pa.int64()),
                     "district": [rng.choice(DISTRICTS) for _ in range(n)],
                     "sex": [rng.choice("男女") for _ in range(n)],
                     "age": pa.array([rng.randrange(0, 100) for _ in range(n)], pa.int64())})


POLICY = DatasetPolicy(name="t", title="t", owner="owner", tier="unconditional", privacy_unit="pid",
                       update_frequency="monthly", one_row_per_unit=True, max_partitions=1000,
                       max_rows_per_partition=1, columns={
                           "pid": ColumnPolicy("pid", "int", "sensitive"),
                           "district": ColumnPolicy("district", "text", "quasi_identifier"),
                           "sex": ColumnPolicy("sex", "text", "quasi_identifier"),
                           "age": ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))})


def build(t: pa.Table, published: list[deidentify.Previous]) -> tuple[deidentify.Derivative, float]:
    raw = risk_scan.scan(t, {c.name: c.sensitivity for c in POLICY.columns.values()}, privacy_unit="pid")
    start = time.perf_counter()
    der = deidentify.make_derivative(t, POLICY, raw, k_target=5, published=published)
    return der, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--priors", type=int, nargs="+", default=[0, 10, 30])
    a = ap.parse_args()
    pool: list[deidentify.Previous] = []
    for i in range(max(a.priors)):
        der, _ = build(town(a.rows, seed=100 + i), [])
        pool.append(deidentify.Previous(der.table, der.recipe, name=f"p{i}"))
    t = town(a.rows, seed=1)
    for m in a.priors:
        der, secs = build(t, pool[:m])
        cols = ["district", "sex", "age"]
        c = der.recipe["counts"]
        sizes = Counter(zip(*(der.table.column(x).to_pylist() for x in cols), strict=True))
        print(f"rows {a.rows:>7,}  priors {m:>3}  build {secs:6.2f} s  granularity {c['granularity']}  "
              f"added {c['added_rows']:>4}  removed {c['removed_rows']:>4}  classes {len(sizes)}  "
              f"compared with {len(c['compared_with'])}")
    # last year's file of the same people (1 % fewer): how many combinations differ between the two
    last, _ = build(t.slice(0, a.rows - a.rows // 100), [])
    prev = deidentify.Previous(last.table, last.recipe, name="last year")
    der, secs = build(t, [prev, *pool[:10]])
    cols = ["district", "sex", "age"]
    old = Counter(zip(*(last.table.column(x).to_pylist() for x in cols), strict=True))
    new = Counter(zip(*(der.table.column(x).to_pylist() for x in cols), strict=True))
    moved = sum(1 for kv in set(old) | set(new) if old[kv] != new[kv])
    print(f"next year's file, {a.rows // 100} newcomers, + 10 unrelated files: build {secs:.2f} s, "
          f"{moved} of {len(set(old) | set(new))} combinations changed (each by a multiple of 5)")


if __name__ == "__main__":
    main()
