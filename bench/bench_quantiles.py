"""Median of a skewed income column: equal bins vs the equal + asinh grid vs OpenDP's own.

    python bench/bench_quantiles.py                      # 10,000 persons, 200 runs, ε 1 and 0.1
    python bench/bench_quantiles.py --runs 50 --epsilon 1   # quick look

Data: one row per person, income ~ lognormal(ln 50,000, 1), clamped to the owner bounds
[0, 1e8] (bounded truth = the exact median of the clamped values, QUANTILE_CONT).
Each method is given the same ε per release (one person changes one row):

* ``before``: our release over 1,024 equal bins of [0, 1e8] (the old layout);
* ``after``: our release over the merged equal + asinh grid (``query_guard.histogram``);
* ``opendp-equal`` / ``opendp-grid``: ``opendp.measurements.make_private_quantile``
  (exponential mechanism, Smith 2011) with 1,024 equally spaced candidates, or with the
  1,025 edges of our grid as candidates, its scale searched so its map at d_in = 1 is ε.

Both of ours go through ``privacy.release`` (OpenDP discrete Laplace on the histogram).
Prints a table and writes bench/results/quantiles.json.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlglot import exp  # noqa: E402

from privacy import release  # noqa: E402
from privacy.features import dp  # noqa: E402
from query_guard import histogram  # noqa: E402
from query_guard.plan import Measurement, OutputColumn, QueryPlan  # noqa: E402

LOWER, UPPER = 0.0, 1e8
BINS = histogram.HIST_BINS


def incomes(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [min(UPPER, max(LOWER, rng.lognormvariate(math.log(50_000), 1.0))) for _ in range(n)]


def median_cont(values: list[float]) -> float:
    s = sorted(values)
    pos = 0.5 * (len(s) - 1)
    i = math.floor(pos)
    return s[i] + (s[min(i + 1, len(s) - 1)] - s[i]) * (pos - i)


def plan_for(layout: str) -> QueryPlan:
    m = Measurement("m0", "quantile", {"hist": "h"}, max_partitions=1, max_rows_per_partition=1,
                    lower=LOWER, upper=UPPER, quantiles=(0.5,), bins=BINS, bin_layout=layout,
                    value_type="float")
    return QueryPlan(sql="", engine_query=exp.select("1"), datasets=("t",), group_keys=(),
                     measurements=(m,), outputs=(OutputColumn("median", "measure", "m0"),))


def exact_for(values: list[float], layout: str) -> dict:
    counts: dict[int, int] = {}
    for x in values:
        if layout == "linear":
            b = min(BINS - 1, max(0, math.floor((x - LOWER) / (UPPER - LOWER) * BINS)))
        else:
            b = histogram.bin_index(x, LOWER, UPPER)
        counts[b] = counts.get(b, 0) + 1
    return {"__rows": [len(values)], "h": [counts]}


def opendp_median(candidates: list[float], epsilon: float):
    space = (dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance())

    def build(scale: float):
        return dp.m.make_private_quantile(*space, dp.max_divergence(), candidates=candidates,
                                          alpha=0.5, scale=scale)

    scale = dp.binary_search_param(build, d_in=1, d_out=epsilon, T=float)
    return build(scale)


def summarise(errors: list[float], widths: list[float] | None, covered: list[bool] | None) -> dict:
    out = {"median_abs_error": statistics.median(errors), "mean_abs_error": statistics.fmean(errors),
           "p90_abs_error": sorted(errors)[int(0.9 * len(errors))]}
    if widths:
        out["median_interval_width"] = statistics.median(widths)
        out["coverage"] = sum(covered or []) / len(errors)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--epsilon", type=float, action="append")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "quantiles.json")
    args = ap.parse_args()
    epsilons = args.epsilon or [1.0, 0.1]
    values = incomes(args.rows, args.seed)
    truth = median_cont(values)
    grid = histogram.bin_edges(LOWER, UPPER)
    results: dict = {"rows": args.rows, "runs": args.runs, "bounds": [LOWER, UPPER],
                     "distribution": "lognormal(ln 50000, 1)", "bounded_truth": truth,
                     "results": {}}
    print(f"bounded true median {truth:,.0f} over {args.rows:,} persons; {args.runs} releases each")
    print(f"{'ε':>5}  {'method':<14}{'median |err|':>14}{'mean |err|':>14}{'p90 |err|':>14}"
          f"{'CI width':>14}{'coverage':>10}")
    for eps in epsilons:
        per: dict = {}
        for name, layout in (("before", "linear"), ("after", "linear_asinh")):
            plan, exact = plan_for(layout), exact_for(values, layout)
            errs, widths, cov = [], [], []
            for _ in range(args.runs):
                rel = release(plan, exact, epsilon=eps)
                v = float(rel.rows[0][0])
                lo, hi = rel.intervals["median"][0]
                errs.append(abs(v - truth))
                widths.append(hi - lo)
                cov.append(lo <= truth <= hi)
            per[name] = summarise(errs, widths, cov)
        for name, cands in (("opendp-equal", [LOWER + i * (UPPER - LOWER) / (BINS - 1) for i in range(BINS)]),
                            ("opendp-grid", grid)):
            meas = opendp_median(cands, eps)
            assert meas.map(1) <= eps + 1e-12
            errs = [abs(float(meas(values)) - truth) for _ in range(args.runs)]
            per[name] = summarise(errs, None, None)
        results["results"][str(eps)] = per
        for name, r in per.items():
            width = f"{r['median_interval_width']:>14,.0f}" if "coverage" in r else f"{'—':>14}"
            cover = f"{r['coverage']:>10.1%}" if "coverage" in r else f"{'—':>10}"
            print(f"{eps:>5g}  {name:<14}{r['median_abs_error']:>14,.0f}{r['mean_abs_error']:>14,.0f}"
                  f"{r['p90_abs_error']:>14,.0f}{width}{cover}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
