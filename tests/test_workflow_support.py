"""Helpers shared by the workflow tests (no tests here): a second researcher and owner, an
admin, a second owner's dataset and, for each side, an application, an approval, a
suspension and an objection — built through the same service functions the API uses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sandbox.governance import enforcement, objections, suspensions
from sandbox.service.operations import SandboxAdmin
from sandbox.service.query_service import Sandbox
from sandbox.store.users import User, find_user

FIXTURES = Path(__file__).parent / "fixtures" / "workflow"
DISTRICTS = ["历下区", "市中区", "槐荫区", "天桥区"]


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def permits_table(rows: int = 300, seed: int = 6) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "person_id": pa.array(np.arange(1, rows + 1), pa.int64()),
        "district": pa.array([DISTRICTS[i] for i in rng.integers(0, len(DISTRICTS), rows)]),
        "fee": pa.array(rng.uniform(0, 1000, rows)),
    })


def audit_entries(sb: Sandbox, action: str, since: int = 0) -> list[dict[str, Any]]:
    import audit_log.store as store

    return store.entries(sb.conn(), since, action=action)


def audit_size(sb: Sandbox) -> int:
    import audit_log.store as store

    return store.size(sb.conn())


@dataclass
class Side:
    """One side's objects: ``researcher`` applied to ``owner``'s ``dataset``."""

    researcher: str
    owner: str
    dataset: str
    app_pending: int = 0
    app_decided: int = 0
    approval: int = 0
    suspended_approval: int = 0
    suspension: int = 0
    objection: int = 0
    review: int = 0  # the co-signed publication review of the dataset (issue 14)
    rectification: int = 0  # a rectification order to the owner (issue 14)


@dataclass
class World:
    sb: Sandbox
    tokens: dict[str, str]
    own: Side
    other: Side
    users: dict[str, User] = field(default_factory=dict)

    def token(self, username: str | None) -> str | None:
        return self.tokens.get(username) if username else None


def _side(sb: Sandbox, admin: SandboxAdmin, researcher: User, owner: User, dataset: str,
          existing_approval: int | None) -> Side:
    side = Side(researcher.username, owner.username, dataset)
    request = {"datasets": [dataset], "scenario": f"{dataset} by district", "purpose": "test of the workflow",
               "commitment_accepted": True}
    side.app_pending = admin.apply(researcher, request)
    side.app_decided = admin.apply(researcher, request)
    expires = (sb.now() + dt.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    side.approval = admin.approve(owner, side.app_decided, {"datasets": [dataset]}, epsilon_total=5.0,
                                  delta_total=1e-6, epsilon_per_query=1.0, expires_at=expires)
    if existing_approval is None:
        third = admin.apply(researcher, request)
        existing_approval = admin.approve(owner, third, {"datasets": [dataset]}, epsilon_total=1.0,
                                          delta_total=0.0, epsilon_per_query=0.5, expires_at=expires)
    side.suspended_approval = existing_approval
    side.suspension = suspensions.create(sb, owner, {"approval_id": existing_approval,
                                                     "reason": "test: suspended"})["suspension_id"]
    side.review = sb.conn().execute(
        "SELECT MAX(r.id) FROM publication_reviews r JOIN datasets d ON d.id = r.dataset_id WHERE d.name = ?",
        (dataset,)).fetchone()[0]
    regulator = find_user(sb.conn(), "regulator")
    assert regulator is not None
    side.rectification = enforcement.issue_order(sb, regulator, {"owner": owner.username,
                                                                 "what": "test: rectify"})["order_id"]
    side.objection = objections.file(sb, researcher, {"target_type": "application",
                                                      "target_id": side.app_decided,
                                                      "text": "test: I object"})["objection_id"]
    return side


def build_world(sb: Sandbox, creds: dict[str, Any]) -> World:
    admin = SandboxAdmin(sb)
    conn = sb.conn()
    tokens = {role: creds[role]["token"] for role in ("researcher", "owner", "regulator")}
    r2, tokens["researcher2"] = admin.create_user("researcher2", "researcher", "researcher2-pass")
    o2, tokens["owner2"] = admin.create_user("owner2", "owner", "owner2-password")
    _, tokens["admin"] = admin.create_user("admin", "admin", "admin-password")
    admin.add_dataset("permits", permits_table(), (FIXTURES / "permits.toml").read_text(encoding="utf-8"),
                      actor=o2)
    admin.publish(o2, "permits", "test data", regulator=find_user(conn, "regulator"))  # issue 14: co-signed
    r1, o1 = find_user(conn, "researcher"), find_user(conn, "owner")
    assert r1 and o1
    own = _side(sb, admin, r1, o1, "residents", creds["researcher"]["approval_id"])
    other = _side(sb, admin, r2, o2, "permits", None)
    return World(sb, tokens, own, other, {u.username: u for u in (r1, o1, r2, o2)})


_TEMPLATE: dict[str, Any] = {}


def world_copy(demo_template: Path, tmp_path_factory, tmp_path: Path) -> World:
    """A fresh copy of one world built once per session (building one costs ~1.5 s of
    password hashing and durable commits; copying a folder costs milliseconds)."""
    import json
    import shutil

    from sandbox.store.workspace import Workspace

    if "root" not in _TEMPLATE:
        root = tmp_path_factory.mktemp("world-template") / "ws"
        shutil.copytree(demo_template, root)
        creds = json.loads((root / "demo-credentials.json").read_text())
        built = build_world(Sandbox(Workspace.open(root)), creds)
        _TEMPLATE.update(root=root, tokens=dict(built.tokens), own=built.own, other=built.other)
    target = tmp_path / "world"
    shutil.copytree(_TEMPLATE["root"], target)
    sb = Sandbox(Workspace.open(target))
    users = {name: find_user(sb.conn(), name) for name in ("researcher", "owner", "researcher2", "owner2")}
    return World(sb, dict(_TEMPLATE["tokens"]), _TEMPLATE["own"], _TEMPLATE["other"],
                 {k: v for k, v in users.items() if v is not None})


def demo_copy(demo_template: Path, tmp_path: Path, now=None) -> tuple[Sandbox, dict[str, Any]]:
    """(Sandbox, credentials) over a copy of the session's demo workspace, optionally on an
    injected clock; like conftest's ``demo`` without re-running the demo setup."""
    import json
    import shutil

    from sandbox.store.workspace import Workspace

    root = tmp_path / "ws"
    shutil.copytree(demo_template, root)
    ws = Workspace.open(root)
    sb = Sandbox(ws, now=now) if now is not None else Sandbox(ws)
    return sb, json.loads((root / "demo-credentials.json").read_text())
