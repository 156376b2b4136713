"""How many of the project's files and functions one warm query walks through (issue 19).

    python bench/trace_query_walk.py
    git worktree add /tmp/before f9efd82 && python bench/trace_query_walk.py --code /tmp/before

A demo workspace (``--rows`` residents), one ``POST /api/v1/queries`` to warm every cache
that a researcher's second query finds warm (plans, calibration, engine files), then a
second query with another ε (so the release cache does not answer) traced with
``sys.setprofile``: every Python function of the project's packages that runs is counted,
with its file. Prints the counts and the files, and writes bench/results/query-walk.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

PACKAGES = ("sandbox", "query_guard", "privacy", "audit_log", "keys")
SQL = "SELECT department, COUNT(*) FROM clinic_visits WHERE cost > 100 GROUP BY department"


def _setup(data_dir: str, rows: int):
    try:  # the layered code (issue 19)
        from sandbox.demo.setup import setup_demo
    except ImportError:  # the code before it
        from sandbox.demo import setup_demo  # type: ignore[no-redef]
    from sandbox.web import create_app

    sb, creds = setup_demo(data_dir, rows=rows, url="http://127.0.0.1:0", say=lambda _m: None)
    return sb, creds, create_app(sb, {"TESTING": True}).test_client()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--code", type=Path, default=ROOT, help="import the project from this checkout")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "query-walk.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sb, creds, client = _setup(tmp, args.rows)
        token = creds["researcher"]["token"]
        body = {"approval_id": creds["researcher"]["approval_id"], "sql": SQL, "epsilon": 0.1}
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/api/v1/queries", json=body, headers=headers).status_code == 200
        files: Counter[str] = Counter()
        functions: set[tuple[str, str]] = set()
        code_root = str(args.code.resolve())

        def profile(frame, event, _arg):
            if event != "call":
                return
            path = frame.f_code.co_filename
            if not path.startswith(code_root):
                return
            rel = str(Path(path).relative_to(code_root))
            if rel.split("/")[0] in PACKAGES:
                files[rel] += 1
                functions.add((rel, frame.f_code.co_qualname))

        body["epsilon"] = 0.11
        sys.setprofile(profile)
        try:
            status = client.post("/api/v1/queries", json=body, headers=headers).status_code
        finally:
            sys.setprofile(None)
        sb.close()
    assert status == 200, status
    result = {"files": len(files), "functions": len(functions), "sql": SQL,
              "by_file": dict(sorted(files.items()))}
    print(f"one warm POST /api/v1/queries: {len(files)} files, {len(functions)} functions")
    for path, calls in sorted(files.items()):
        print(f"  {calls:6d}  {path}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
