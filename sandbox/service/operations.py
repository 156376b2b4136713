"""Workflow operations over the store, each logged in one transaction with its audit entry.

``SandboxAdmin`` is the trusted entry point of the CLI and the demo (datasets, users,
applications, approvals); it goes through the same service functions as the API, so the
same checks apply. The account functions below back ``/api/v1/users``. Views and the CLI
call these; they hold no logic of their own.
"""

from __future__ import annotations

from typing import Any

from audit_log.actions import Action
from sandbox.errors import BadRequest, NotFound
from sandbox.governance import (
    applications,
    dataset_caps,
    datasets,
    open_catalog,
    publication,
    risk_scan,
)
from sandbox.service import bounding_report
from sandbox.service.query_service import Sandbox
from sandbox.store import authz, fields, users
from sandbox.store.at_rest import rotate_master_key
from sandbox.store.users import User
from sandbox.store.workspace import transaction

__all__ = ["SandboxAdmin", "create_user", "list_datasets", "rotate_master_key", "rotate_token"]


class SandboxAdmin:
    """Workflow operations (datasets, users, applications), each logged in one transaction."""

    def __init__(self, sb: Sandbox):
        self.sb = sb

    def create_user(self, username: str, role: str, password: str, *, display_name: str = "",
                    actor: User | None = None) -> tuple[User, str]:
        conn = self.sb.conn()
        with transaction(conn):
            user = users.create_user(conn, username, role, password, now=self.sb.now, display_name=display_name)
            token = users.issue_token(conn, user, now=self.sb.now, label="default")
            self.sb.audit(conn, actor, Action.USER_CREATED, f"user/{username}", {"username": username, "role": role})
        return user, token

    def add_dataset(self, name: str, table, policy_text: str, *, policy_path: str = "<policy>",
                    actor: User | None = None, progress=None) -> datasets.DatasetVersion:
        """Register a new version; it is published once its owner acknowledges the risk report."""
        conn = self.sb.conn()
        with transaction(conn):
            version = datasets.register_dataset(
                conn, self.sb.ws.data_dir, name, table, policy_text, policy_path=policy_path,
                now=self.sb.now, encryptor=self.sb.encryptor(), progress=progress,
            )
            version = bounding_report.store(conn, version, table, progress=progress)  # owner-only figures
            self.sb.audit(conn, actor, Action.DATASET_REGISTERED, f"dataset/{name}", {
                "name": name, "version": version.version, "content_hash": version.content_hash,
                "tier": version.tier, "rows": version.row_count, "units": version.unit_count,
                "encrypted": version.encrypted, "risk": risk_scan.summary(version.risk_report),
            })
            dataset_caps.log_policy_cap(self.sb, conn, actor, version)  # a cap the policy declares
        return version

    def acknowledge_risk(self, owner: User, name: str, note: str = "", *,
                         acknowledge_findings: str = "") -> dict[str, Any]:
        """The owner's acknowledgement of the risk report, which publishes the version, or submits
        it for the regulator's co-signature when it needs review (第十二条; issue 14)."""
        body = {"note": note}
        if acknowledge_findings:
            body["acknowledge_findings"] = acknowledge_findings
        return open_catalog.acknowledge_risk(self.sb, owner, name, body)

    def publish(self, owner: User, name: str, note: str, *, regulator: User, reason: str = "",
                acknowledge_findings: str = "") -> dict[str, Any]:
        """Publish the newest version: the owner's acknowledgement and, when it needs review,
        the regulator's co-signature (both logged under their own names)."""
        result = self.acknowledge_risk(owner, name, note, acknowledge_findings=acknowledge_findings or note)
        if result.get("status") == "awaiting_regulator":
            result = publication.decide(self.sb, regulator, result["review_id"],
                                        {"decision": "approve", "reason": reason or note})
        return result

    def apply(self, researcher: User, request: dict[str, Any]) -> int:
        return int(applications.submit(self.sb, researcher, request)["application_id"])

    def approve(self, owner: User, application_id: int, scope: dict[str, Any], *, epsilon_total: float,
                delta_total: float, epsilon_per_query: float, expires_at: str | None = None,
                reason: str = "") -> int:
        return applications.grant(
            self.sb, owner, application_id, scope, epsilon_total=epsilon_total, delta_total=delta_total,
            epsilon_per_query=epsilon_per_query, expires_at=expires_at, reason=reason,
        )


def list_datasets(sb: Sandbox, user: User | None) -> list[dict[str, Any]]:
    """The catalog as this user may see it: not-open datasets only for owner and regulators."""
    return open_catalog.list_entries(sb, user)


def create_user(sb: Sandbox, actor: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/users`` (admin): the new user's token is in the answer, and only there."""
    authz.check_role("user.create", actor)
    username, role = body.get("username"), body.get("role")
    password = body.get("password")
    if not isinstance(username, str) or not isinstance(role, str) or not isinstance(password, str):
        raise BadRequest("username, role and password are required strings")
    user, token = SandboxAdmin(sb).create_user(username, role, password, actor=actor,
                                               display_name=fields.text(body, "display_name", required=False, limit=100))
    return {"username": user.username, "role": user.role, "token": token}


def rotate_token(sb: Sandbox, actor: User | None, username: str) -> dict[str, Any]:
    """``POST /api/v1/users/<username>/tokens/rotate``: revoke every token, issue one new one."""
    authz.check_role("user.token.rotate", actor)
    conn = sb.conn()
    target = users.find_user(conn, username)
    missing = f"no user {username!r}"
    if target is None:
        raise NotFound(missing)
    authz.check("user.token.rotate", actor, {"self"} if actor and actor.id == target.id else set(), missing=missing)
    with transaction(conn):
        revoked, token = users.rotate_tokens(conn, target, now=sb.now)
        sb.audit(conn, actor, Action.USER_TOKEN_ROTATED, f"user/{target.username}",
                 {"username": target.username, "revoked": revoked})
    return {"username": target.username, "token": token, "revoked": revoked}
