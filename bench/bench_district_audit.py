"""Usage: python bench/bench_district_audit.py WORKSPACE N  (WORKSPACE: a fresh folder)

Time ``GET /api/v1/audit/entries?limit=100`` for the city regulator and for a district regulator
(第五条; issue 14) over the demo world's log padded with N entries about another district's
dataset — the district filter's worst case: it reads the whole log to fill one page.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.demo.setup import setup_demo  # noqa: E402
from sandbox.service.query_service import Sandbox  # noqa: E402
from sandbox.store.users import find_user  # noqa: E402
from sandbox.store.workspace import Workspace, transaction  # noqa: E402
from sandbox.web import create_app  # noqa: E402
from tests.test_workflow_support import bearer, build_world  # noqa: E402


def main(root: Path, padding: int) -> None:
    setup_demo(root, rows=2000, url="http://127.0.0.1:0", say=lambda _m: None)
    creds = json.loads((root / "demo-credentials.json").read_text())
    sb = Sandbox(Workspace.open(root))
    world = build_world(sb, creds)
    c = create_app(sb, {"TESTING": True}).test_client()
    tok = {k: bearer(t) for k, t in world.tokens.items()}
    admin = tok["admin"]
    for name, district in (("历下区卫生健康局", "历下区"), ("市中区市场监管局", "市中区"), ("历下区大数据局", "历下区")):
        c.post("/api/v1/organisations", headers=admin, json={"name": name, "kind": "district_bureau",
                                                             "district": district})
    c.put("/api/v1/users/owner/organisation", headers=admin, json={"organisation": "历下区卫生健康局"})
    c.put("/api/v1/users/owner2/organisation", headers=admin, json={"organisation": "市中区市场监管局"})
    r = c.post("/api/v1/users", headers=admin, json={"username": "reg_lixia", "role": "regulator",
                                                     "password": "reg_lixia-pw"})
    tok["district"] = bearer(r.json["token"])
    c.put("/api/v1/users/reg_lixia/organisation", headers=admin,
          json={"organisation": "历下区大数据局", "jurisdiction": "历下区"})
    conn = sb.conn()
    owner2 = find_user(conn, "owner2")
    with transaction(conn):
        for i in range(padding):
            sb.audit(conn, owner2, "dataset.legal_basis_set", "dataset/permits",
                     {"dataset": "permits", "old": None, "new": f"x{i}"})
    for who in ("regulator", "district"):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            resp = c.get("/api/v1/audit/entries?start=0&limit=100", headers=tok[who])
            times.append(time.perf_counter() - start)
        print(f"{who}: {len(resp.json['entries'])} entries of {resp.json['size']}, "
              f"median {sorted(times)[2] * 1000:.1f} ms")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
