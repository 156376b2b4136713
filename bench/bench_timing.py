"""Timing side channel: can one person's row change a release's latency measurably?

    python bench/bench_timing.py --rows 200000 --runs 300

The attacker's query applies the costliest row-level expression the guard accepts only
where quasi-identifiers match one person (``CASE WHEN <that person> THEN <costly> ELSE
false END``). We time the whole service walk (guard, charge, engine, noise, audit) in
process, which is more precise than anything a caller sees over HTTP, for two forms of
the same query, interleaved run by run, and a third that matches a whole district (to
measure one row's cost over many rows):

* **match**: the condition matches exactly one row (D′: the person is there);
* **no match**: the same condition with a value nobody has (D: the person is not).

It prints medians, p90s, the shift, the accuracy of the best single-threshold guess from
one observation (50 % = no information), and how many charged queries an attacker would
need to see the median shift at two standard errors. Writes bench/results/timing.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.demo.setup import setup_demo  # noqa: E402
from sandbox.governance import ledger  # noqa: E402
from sandbox.governance.datasets import latest_versions  # noqa: E402
from sandbox.service.operations import SandboxAdmin  # noqa: E402
from sandbox.service.pipeline import QueryRequest  # noqa: E402
from sandbox.store.users import find_user  # noqa: E402
from sandbox.store.workspace import transaction  # noqa: E402

#: The costliest row-level work the guard accepts on text (docs/guard.md, "Total
#: expressions"): LIKE over 2,000 characters (a 1,000-character literal and a text column of
#: up to 1,000) with a 25-character backtracking pattern: 50,000 steps (``MAX_LIKE_STEPS``).
COSTLY = "'{filler}' || {t} LIKE '{pattern}'"


def best_threshold_accuracy(a: list[float], b: list[float]) -> float:
    """The best accuracy of guessing 'a' vs 'b' from one time by a single threshold."""
    labelled = sorted([(x, 0) for x in a] + [(x, 1) for x in b])
    n_a, n_b = len(a), len(b)
    best, below_a, below_b = 0.5, 0, 0
    for _x, label in labelled:
        below_a += label == 0
        below_b += label == 1
        # guess 'a' below the threshold, 'b' above (and the mirror)
        acc = (below_a / n_a + (n_b - below_b) / n_b) / 2
        best = max(best, acc, 1 - acc)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "timing.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        print(f"building a demo workspace with {args.rows:,} residents …", file=sys.stderr)
        sb, _creds = setup_demo(Path(tmp) / "ws", rows=args.rows, url="-", say=lambda _m: None)
        conn = sb.conn()
        researcher, owner = find_user(conn, "researcher"), find_user(conn, "owner")
        admin = SandboxAdmin(sb)
        app_id = admin.apply(researcher, {"datasets": ["residents"], "scenario": "timing", "purpose": "bench",
                                          "commitment_accepted": True})
        approval = admin.approve(owner, app_id, {"datasets": ["residents"]},
                                 epsilon_total=1000.0, delta_total=1e-6, epsilon_per_query=1.0)
        versions = {v.name: v for v in latest_versions(conn)}
        with transaction(conn):  # lift the collusion cap for the runs
            for v in versions.values():
                ledger.set_global_cap(conn, v.version_id, 1e9, 0.5, now=sb.now)
        table = sb.tables.get(versions["residents"]).to_pydict()
        # a person unique on (age, district, income): the target
        seen: dict[tuple, int] = {}
        for i, key in enumerate(zip(table["age"], table["district"], table["income"], strict=True)):
            seen[key] = -1 if key in seen else i
        target = next(i for i in seen.values() if i >= 0)
        age, district, income = table["age"][target], table["district"][target], table["income"][target]
        # 1,000 literal characters + the district (≤ 1,000) = 2,000, × a 25-character pattern =
        # MAX_LIKE_STEPS; the pattern backtracks over the literal's run of 'a's at every position
        pattern = "%" + "a_" * 11 + "b%"
        costly = COSTLY.format(filler="a" * 1000, t="district", pattern=pattern)
        template = ("SELECT COUNT(*) FROM residents WHERE CASE WHEN age = {age} AND district = '{d}' "
                    "AND income = {income!r} THEN {costly} ELSE false END")
        many = sum(1 for d in table["district"] if d == district)
        forms = {
            "match": template.format(age=age, d=district, income=income, costly=costly),
            "no match": template.format(age=age, d=district, income=income + 0.5, costly=costly),
            # every resident of the district: the per-row cost, measured over many rows
            "district": (f"SELECT COUNT(*) FROM residents WHERE CASE WHEN district = '{district}' "
                         f"THEN {costly} ELSE false END"),
        }
        times: dict[str, list[float]] = {k: [] for k in forms}
        counter = iter(range(10**9))
        for sql in forms.values():  # warm-up: table load, empty-table check, calibration
            sb.run_query(researcher, QueryRequest(approval, sql, 0.01, 0.95))
        print(f"timing {args.runs} interleaved runs of each form …", file=sys.stderr)
        order = list(forms.items())
        for run in range(args.runs):
            # alternate the order, so that neither form always follows the other (a write
            # or a checkpoint left by the previous query would otherwise bias one side)
            for name, sql in (order if run % 2 == 0 else order[::-1]):
                confidence = 0.9 - next(counter) * 1e-9  # a new cache key: a real, charged run
                t = time.perf_counter()
                sb.run_query(researcher, QueryRequest(approval, sql, 0.01, confidence))
                times[name].append((time.perf_counter() - t) * 1000)

    def q(xs: list[float], p: float) -> float:
        s = sorted(xs)
        return s[min(len(s) - 1, round(p * (len(s) - 1)))]

    match, none = times["match"], times["no match"]
    shift = statistics.median(match) - statistics.median(none)
    sd = statistics.pstdev(none)
    # one row's cost, from the district's rows (the single-row shift is below the noise)
    per_row = max(0.0, statistics.median(times["district"]) - statistics.median(none)) / max(1, many)
    # queries to see a one-row shift at two standard errors of a median (≈ 1.2533 σ/√n), per form
    needed = float("inf") if per_row <= 0 else (2 * 1.2533 * sd / per_row) ** 2
    result = {
        "rows": args.rows, "runs": args.runs, "machine": platform.platform(),
        "median_ms": {k: round(statistics.median(v), 3) for k, v in times.items()},
        "p90_ms": {k: round(q(v, 0.9), 3) for k, v in times.items()},
        "sd_ms": round(sd, 3),
        "median_shift_ms": round(shift, 4),
        "district_rows": many,
        "per_row_ms": round(per_row, 5),
        "one_observation_accuracy": round(best_threshold_accuracy(match, none), 3),
        "queries_to_see_the_shift": None if needed == float("inf") else round(needed),
    }
    print(f"\n{'form':<10}{'median ms':>11}{'p90 ms':>9}")
    for name in forms:
        print(f"{name:<10}{result['median_ms'][name]:>11.3f}{result['p90_ms'][name]:>9.3f}")
    print(f"one-row median shift {result['median_shift_ms']:+.4f} ms (sd {result['sd_ms']:.3f} ms); best "
          f"one-observation guess {result['one_observation_accuracy']:.1%}; one row costs "
          f"{result['per_row_ms'] * 1000:.2f} µs (over {many:,} rows), so ~{result['queries_to_see_the_shift']:,} "
          "charged queries of each form would show it at 2 s.e.")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
