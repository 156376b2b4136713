"""``sandbox demo``: a workspace with synthetic Jinan data, three users, one approval.

Idempotent: running it again reuses the workspace, its users, datasets and approval, and
re-reads the tokens from ``demo-credentials.json`` (the store keeps only token hashes).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from sandbox.demo.data import write_demo_files
from sandbox.governance import datasets
from sandbox.service.operations import SandboxAdmin
from sandbox.service.query_service import Sandbox
from sandbox.store.users import find_user, get_user, issue_token
from sandbox.store.workspace import Workspace, transaction

PASSWORDS = {"researcher": "researcher-demo", "owner": "owner-demo", "regulator": "regulator-demo"}
APPROVAL = {"epsilon_total": 10.0, "delta_total": 1e-6, "epsilon_per_query": 1.0}
SCENARIO = "Healthcare access by district (demo) · 各区县就医可及性研究（演示）"
CREDENTIALS = "demo-credentials.json"


def policy_text(name: str) -> str:
    return resources.files("sandbox.demo.policies").joinpath(f"{name}.toml").read_text(encoding="utf-8")


def setup_demo(
    data_dir: str | os.PathLike[str] | None,
    *,
    rows: int,
    url: str,
    say: Callable[[str], None] = print,
    progress_factory: Callable[[int, str], Any] | None = None,
    crypto: str | None = None,
) -> tuple[Sandbox, dict[str, Any]]:
    """The demo workspace at ``data_dir``, made or brought up to date, and its credentials."""
    ws = Workspace.init(data_dir, crypto)
    sb = Sandbox(ws)
    admin = SandboxAdmin(sb)
    cred_path = ws.root / CREDENTIALS
    old = json.loads(cred_path.read_text()) if cred_path.exists() else {}
    tokens = _users(sb, admin, old)
    _datasets(sb, admin, rows, say, progress_factory)
    approval_id = _approval(sb, admin)
    creds: dict[str, Any] = {"url": url}
    conn = sb.conn()
    for role in ("researcher", "owner", "regulator"):
        user = find_user(conn, role)
        assert user is not None and get_user(conn, user.id)
        creds[role] = {"username": role, "password": PASSWORDS[role], "token": tokens[role]}
    creds["researcher"]["approval_id"] = approval_id
    tmp_path = cred_path.with_suffix(".tmp")
    tmp_path.write_text(json.dumps(creds, indent=2, ensure_ascii=False))
    os.chmod(tmp_path, 0o600)
    tmp_path.replace(cred_path)
    return sb, creds


def _users(sb: Sandbox, admin: SandboxAdmin, old: dict[str, Any]) -> dict[str, str]:
    """The three demo users' tokens: a new user's, the one saved before, or a fresh one."""
    conn = sb.conn()
    tokens: dict[str, str] = {}
    for role in ("owner", "researcher", "regulator"):
        user = find_user(conn, role)
        if user is None:
            user, tokens[role] = admin.create_user(role, role, PASSWORDS[role], display_name=f"demo {role}")
        elif old.get(role, {}).get("token"):
            tokens[role] = old[role]["token"]
        else:
            with transaction(conn):
                tokens[role] = issue_token(conn, user, now=sb.now, label="demo")
    return tokens


def _datasets(sb: Sandbox, admin: SandboxAdmin, rows: int, say: Callable[[str], None],
              progress_factory: Callable[[int, str], Any] | None) -> None:
    """Generate, register and publish the two datasets, unless ``residents`` has ``rows``."""
    conn = sb.conn()
    existing = {v.name: v for v in datasets.latest_versions(conn)}
    if existing.get("residents") is not None and existing["residents"].row_count == rows:
        return
    say(f"Generating synthetic data for {rows:,} residents …")
    with tempfile.TemporaryDirectory(dir=sb.ws.root) as tmp:
        res_path, vis_path = Path(tmp) / "residents.parquet", Path(tmp) / "clinic_visits.parquet"
        if progress_factory:
            with progress_factory(rows, "generating") as bar:
                write_demo_files(rows, res_path, vis_path, bar.update)
        else:
            write_demo_files(rows, res_path, vis_path)
        owner, regulator = find_user(conn, "owner"), find_user(conn, "regulator")
        assert owner and regulator
        for name, path in (("residents", res_path), ("clinic_visits", vis_path)):
            say(f"Registering {name} …")
            admin.add_dataset(name, pq.read_table(path), policy_text(name),
                              policy_path=f"sandbox/demo/policies/{name}.toml", actor=owner, progress=say)
            # 第十二条: the owner submits, the regulator co-signs (issue 14)
            admin.publish(owner, name, "demo: identifiers are declared and never queryable (第十二条)",
                          regulator=regulator, reason="demo: reviewed; sandbox access only")


def _approval(sb: Sandbox, admin: SandboxAdmin) -> int:
    """The researcher's first approval, applied for and approved if there is none."""
    conn = sb.conn()
    researcher = find_user(conn, "researcher")
    owner = find_user(conn, "owner")
    assert researcher and owner
    row = conn.execute("SELECT id FROM approvals WHERE researcher_id = ? ORDER BY id LIMIT 1",
                       (researcher.id,)).fetchone()
    if row is not None:
        return int(row["id"])
    request = {
        "datasets": ["residents", "clinic_visits"],
        "scenario": SCENARIO,
        "purpose": "Compare clinic use and cost across Jinan's districts and age groups.",
        "commitment_accepted": True,
    }
    app_id = admin.apply(researcher, request)
    return admin.approve(owner, app_id, {"datasets": ["residents", "clinic_visits"]}, **APPROVAL)
