"""The code's shape per package: files, folders, lines, modules over 400 lines, functions over
60 lines and function-level imports (issue 19's before/after table).

    python bench/code_size.py
    git worktree add /tmp/before f9efd82 && python bench/code_size.py --code /tmp/before

Read from the source with ``ast`` (nothing is imported). Prints a table and writes
bench/results/code-size.json.
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sandbox", "query_guard", "privacy", "audit_log", "keys")


def measure(code: Path, package: str) -> dict:
    files = sorted((code / package).rglob("*.py"))
    sizes, long_functions, nested_imports = [], [], 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        rel = str(path.relative_to(code))
        sizes.append((len(text.splitlines()), rel))
        for fn in ast.walk(ast.parse(text)):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                length = fn.end_lineno - fn.lineno + 1
                if length > 60:
                    long_functions.append((length, f"{rel}:{fn.name}"))
                nested_imports += sum(isinstance(n, ast.Import | ast.ImportFrom) for n in ast.walk(fn))
    return {
        "files": len(files),
        "folders": len({p.parent for p in files}),
        "lines": sum(n for n, _ in sizes),
        "over_400_lines": sorted((s for s in sizes if s[0] > 400), reverse=True),
        "functions_over_60_lines": sorted(long_functions, reverse=True),
        "function_level_imports": nested_imports,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--code", type=Path, default=ROOT, help="measure this checkout (default: this one)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "code-size.json")
    args = ap.parse_args()
    result = {p: measure(args.code.resolve(), p) for p in PACKAGES}
    print(f"{'package':12} {'files':>6} {'folders':>8} {'lines':>7} {'>400 lines':>11} {'fns >60':>8} {'nested imports':>15}")
    for name, m in result.items():
        print(f"{name:12} {m['files']:6d} {m['folders']:8d} {m['lines']:7d} {len(m['over_400_lines']):11d} "
              f"{len(m['functions_over_60_lines']):8d} {m['function_level_imports']:15d}")
    for m in result.values():
        for size, path in m["over_400_lines"]:
            print(f"  module   {size:5d}  {path}")
        for size, where in m["functions_over_60_lines"]:
            print(f"  function {size:5d}  {where}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
