"""Workflow operations over the store, each logged in one transaction with its audit entry.

Datasets (第十四条), users, applications and approvals (第十五条). Views and the CLI call
these; they hold no logic of their own.
"""

from __future__ import annotations

from typing import Any

from sandbox import datasets, workflow
from sandbox.service import Sandbox
from sandbox.users import User
from sandbox.workspace import transaction


class SandboxAdmin:
    """Workflow operations (datasets, users, applications), each logged in one transaction."""

    def __init__(self, sb: Sandbox):
        self.sb = sb

    def create_user(self, username: str, role: str, password: str, *, display_name: str = "") -> tuple[User, str]:
        from sandbox import users

        conn = self.sb.conn()
        with transaction(conn):
            user = users.create_user(conn, username, role, password, now=self.sb.now, display_name=display_name)
            token = users.issue_token(conn, user, now=self.sb.now, label="default")
            self.sb.audit(conn, None, "user.created", f"user/{username}", {"username": username, "role": role})
        return user, token

    def add_dataset(self, name: str, table, policy_text: str, *, policy_path: str = "<policy>",
                    actor: User | None = None, progress=None) -> datasets.DatasetVersion:
        conn = self.sb.conn()
        with transaction(conn):
            version = datasets.register_dataset(
                conn, self.sb.ws.data_dir, name, table, policy_text, policy_path=policy_path,
                now=self.sb.now, encryptor=self.sb.encryptor(), progress=progress,
            )
            self.sb.audit(conn, actor, "dataset.registered", f"dataset/{name}", {
                "name": name, "version": version.version, "content_hash": version.content_hash,
                "tier": version.tier, "rows": version.row_count, "units": version.unit_count,
                "encrypted": version.encrypted,
            })
        return version

    def apply(self, researcher: User, request: dict[str, Any]) -> int:
        conn = self.sb.conn()
        with transaction(conn):
            app_id = workflow.create_application(
                conn, researcher, request, scenario=str(request.get("scenario", "")),
                purpose=str(request.get("purpose", "")),
                commitment_accepted=bool(request.get("commitment_accepted")), now=self.sb.now,
            )
            self.sb.audit(conn, researcher, "application.submitted", f"application/{app_id}", {
                "application_id": app_id, "datasets": request.get("datasets"), "scenario": request.get("scenario"),
            })
        return app_id

    def approve(self, owner: User, application_id: int, scope: dict[str, Any], *, epsilon_total: float,
                delta_total: float, epsilon_per_query: float, expires_at: str | None = None) -> int:
        conn = self.sb.conn()
        with transaction(conn):
            approval_id = workflow.approve(
                conn, application_id, owner, scope, epsilon_total=epsilon_total, delta_total=delta_total,
                epsilon_per_query=epsilon_per_query, expires_at=expires_at, now=self.sb.now,
            )
            self.sb.audit(conn, owner, "approval.granted", f"approval/{approval_id}", {
                "approval_id": approval_id, "application_id": application_id, "scope": scope,
                "epsilon_total": epsilon_total, "delta_total": delta_total,
                "epsilon_per_query": epsilon_per_query, "expires_at": expires_at,
            })
        return approval_id


def list_datasets(sb: Sandbox, user: User) -> list[dict[str, Any]]:
    """The catalog as this user may see it: not-open datasets only for owner and regulators."""
    out = []
    for v in datasets.latest_versions(sb.conn()):
        if v.tier == "not_open" and not (user.role == "regulator" or v.owner_id == user.id):
            continue
        out.append({
            "name": v.name, "title": v.title, "tier": v.tier, "version": v.version,
            "update_frequency": v.policy.update_frequency, "privacy_unit": v.policy.privacy_unit,
            "columns": [
                {"name": c.name, "type": c.type, "sensitivity": c.sensitivity,
                 "bounds": [str(b) for b in c.bounds] if c.bounds else None,
                 "public_values": list(c.public_values) if c.public_values else None}
                for c in v.policy.columns.values()
            ],
        })
    return out
