"""Two versions of audit_log.group_commit side by side on the 16-writer bench (issue 18).

    git show 649e8e4:audit_log/group_commit.py > /tmp/group_commit_old.py
    python bench/compare_group_commit.py /tmp/group_commit_old.py --rounds 3

Alternates the old file and this checkout's module, round by round, on fresh logs, so both
meet the same disk and load; prints appends/s, appends per commit and CPU per append.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import bench_audit  # noqa: E402

import audit_log.group_commit as current  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", type=Path, help="the other version's group_commit.py")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--appends", type=int, default=4000)
    ap.add_argument("--writers", type=int, default=16)
    args = ap.parse_args()
    spec = importlib.util.spec_from_file_location("group_commit_old", args.old)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    scratch = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    for rnd in range(args.rounds):
        for name, module in (("old", old), ("current", current)):
            bench_audit.GroupCommitter = module.GroupCommitter
            for stale in scratch.glob("g.db*"):
                stale.unlink()
            r = bench_audit.bench_group(scratch / "g.db", args.appends, args.writers)
            print(f"round {rnd} {name:>8}: {r['per_s']:>6}/s, {r['appends_per_commit']} per commit, "
                  f"{r['cpu_us_per_append']} µs CPU per append")


if __name__ == "__main__":
    main()
