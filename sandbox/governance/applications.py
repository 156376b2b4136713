"""Applications, decisions and signed approvals: the service functions (第十五、十六条).

A researcher applies through the portal stating the datasets (and columns and operations)
wanted, the scenario, the purpose, the provision method and their acceptance of the
security commitment (第十五条). The owner of the datasets approves — possibly narrowing
the columns and operations — and fixes the privacy budget and the expiry, or rejects with a
reason. Every decision is logged with its reason (第十六条: the same rules for everyone,
and a record that shows it).

An approval is signed with the owner's Ed25519 key over the canonical JSON of its terms
(``sandbox.governance.approvals``); ``get_approval`` and ``list_approvals`` are re-exported here.

Each function checks rights (``sandbox.store.authz``), validates, and changes the store and the
audit log in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from query_guard.scenario import AGGREGATE_KINDS
from sandbox.clock import iso
from sandbox.errors import BadRequest, NotFound, Suspended
from sandbox.governance import (
    amendments,
    approvals,
    attachments,
    datasets,
    deadlines,
    legal_basis,
    organisations,
    workflow,
)
from sandbox.governance.approvals import list_approvals, read_approval  # noqa: F401  (part of this API)
from sandbox.store import authz, fields, request_limits
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.users import User
from sandbox.store.workspace import transaction

PROVISION_METHODS: Final = ("sandbox",)  # 第十五条 提供方式: results through the sandbox only


# -- submitting -------------------------------------------------------------------------------
def _requested_columns(body: dict[str, Any], versions: dict[str, datasets.DatasetVersion]) -> dict[str, list[str]]:
    raw = body.get("columns")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest("columns must be an object {dataset: [column, ...]}")
    out = {}
    for ds, cols in raw.items():
        name = str(ds).lower()
        if name not in versions:
            raise BadRequest(f"columns names dataset {ds!r}, which is not in datasets")
        policy = versions[name].policy
        wanted = fields.names(cols, f"columns.{ds}")
        for col in wanted:
            if col not in policy.columns:
                raise BadRequest(f"dataset {name!r} has no column {col!r}")
            if policy.columns[col].sensitivity == "identifier":
                raise BadRequest(f"{name}.{col} is an identifier column; identifiers are never approved (第二十条)",
                                 code="identifier_column")
        out[name] = wanted
    return out


def _aggregates(value: Any) -> list[str]:
    if value is None:
        return []
    kinds = fields.names(value, "aggregates")
    unknown = [k for k in kinds if k not in AGGREGATE_KINDS]
    if unknown:
        raise BadRequest(f"unknown aggregates {unknown}; use some of {', '.join(sorted(AGGREGATE_KINDS))}")
    return kinds


def submit(sb: Context, user: User | None, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/applications`` (第十五条)."""
    authz.check_role("application.create", user)
    assert user is not None
    conn = sb.conn()
    if workflow.active_suspension(conn, "user", user.id) is not None:
        raise Suspended("your access is suspended; you cannot apply until it is lifted")
    wanted_names = fields.names(body.get("datasets"), "datasets")
    public = {v.name: v for v in datasets.latest_versions(conn) if v.tier in ("conditional", "unconditional")}
    for name in wanted_names:
        if name not in public:  # SECURITY: not-open, unpublished and missing read the same
            raise BadRequest(f"no dataset named {name!r} in the catalog", code="unknown_dataset")
    versions = {n: public[n] for n in wanted_names}
    # issue 14: an application may span several organisations' datasets; each owner decides on
    # its own, and the approval exists only once every owner has approved.
    owners = sorted({v.owner_id for v in versions.values()})
    columns = _requested_columns(body, versions)
    aggregates = _aggregates(body.get("aggregates"))
    scenario = fields.text(body, "scenario", limit=200)
    purpose = fields.text(body, "purpose")
    method = body.get("provision_method", "sandbox")
    if method not in PROVISION_METHODS:
        raise BadRequest(f"provision_method must be one of {', '.join(PROVISION_METHODS)}")
    if body.get("commitment_accepted") is not True:
        raise BadRequest("accept the security commitment: send \"commitment_accepted\": true "
                         "(GET /api/v1/commitment shows its text)", code="commitment_required")
    request = {"datasets": wanted_names, "columns": columns, "aggregates": aggregates, "provision_method": method}
    if len(owners) > 1:
        request["owner_ids"] = owners
    # issue 14: the applying organisation (default: the researcher's own) and the material attached
    org = conn.execute("SELECT o.name FROM users u JOIN organisations o ON o.id = u.org_id WHERE u.id = ?",
                       (user.id,)).fetchone()
    request["organisation"] = fields.text(body, "organisation", required=False, limit=200) or (org[0] if org else "")
    files = attachments.parse(body.get("attachments"))
    with transaction(conn):
        app_id = workflow.create_application(
            conn, user, request, scenario=scenario, purpose=purpose, commitment_accepted=True,
            commitment_text=workflow.COMMITMENT_TEXT, provision_method=method,
            owner_id=owners[0] if len(owners) == 1 else None, now=sb.now,
        )
        due = deadlines.due_at(conn, "application", sb.now())  # issue 14: time limits
        conn.execute("UPDATE applications SET due_at = ? WHERE id = ?", (due, app_id))
        stored = attachments.store(sb, conn, "application", app_id, user, files)
        sb.audit(conn, user, Action.APPLICATION_SUBMITTED, f"application/{app_id}", {
            "application_id": app_id, "researcher": user.username, **request, "scenario": scenario,
            "purpose": purpose, "commitment_sha256": workflow.COMMITMENT_SHA256,
            "attachments": attachments.summary(stored),  # names, types, sizes and SHA-256 (第十五条)
        })
    return {"application_id": app_id, "status": "pending", "due_at": due, "attachments": stored}


# -- reading ----------------------------------------------------------------------------------
def _app_row(conn: sqlite3.Connection, application_id: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM applications WHERE id = ?", (application_id,)).fetchone()


def app_relations(user: User | None, row: sqlite3.Row) -> set[str]:
    rel = set()
    if user is not None and row["researcher_id"] == user.id:
        rel.add("applicant")
    if user is not None and user.id in workflow.app_owner_ids(row):
        rel.add("dataset_owner")
    return rel


def _app_view(conn: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
    request = json.loads(row["request_json"])
    approval = conn.execute("SELECT id FROM approvals WHERE application_id = ?", (row["id"],)).fetchone()
    owners = workflow.app_owner_ids(row)
    decided = {r["owner_id"]: r for r in conn.execute(
        "SELECT * FROM application_decisions WHERE application_id = ?", (row["id"],))}
    return {
        "application_id": row["id"], "status": row["status"],
        "researcher": username_of(conn, row["researcher_id"]), "owner": username_of(conn, owners[0]) if owners else None,
        "owners": [{"owner": username_of(conn, o), "decision": decided[o]["decision"] if o in decided else
                    ("approve" if row["status"] == "approved" else "reject" if row["status"] == "rejected"
                     and len(owners) == 1 else None),
                    "reason": decided[o]["reason"] if o in decided else None} for o in owners],
        "datasets": request.get("datasets", []), "columns": request.get("columns") or {},
        "aggregates": request.get("aggregates") or [], "scenario": row["scenario"], "purpose": row["purpose"],
        "provision_method": row["provision_method"],
        "commitment": {"accepted": bool(row["commitment_accepted"]),
                       "sha256": hashlib.sha256(row["commitment_text"].encode()).hexdigest()},
        "reason": row["reason"], "decided_by": username_of(conn, row["decided_by"]), "decided_at": row["decided_at"],
        "created_at": row["created_at"],
        "approval_id": approval["id"] if approval else (request["amends"]["approval_id"]
                                                        if request.get("amends") and row["status"] == "approved"
                                                        else None),
        "due_at": row["due_at"],
        # issue 14: a request on an approval amends it (more budget, a later expiry)
        "amends": request.get("amends"),
        "organisation": request.get("organisation") or None,
        "attachments": attachments.list_for(conn, "application", row["id"]),
    }


def list_applications(sb: Context, user: User | None) -> list[dict[str, Any]]:
    authz.check_role("application.list", user)
    conn = sb.conn()
    rows = conn.execute("SELECT * FROM applications ORDER BY id").fetchall()
    now = sb.now()
    return [deadlines.annotate(_app_view(conn, r), now) for r in rows
            if authz.decide("application.read", authz.role_of(user), app_relations(user, r)) == "allow"
            and organisations.in_jurisdiction(conn, user, json.loads(r["request_json"])["datasets"])]


def get_application(sb: Context, user: User | None, application_id: Any) -> dict[str, Any]:
    authz.check_role("application.read", user)
    conn = sb.conn()
    ident_ = fields.ident(application_id, "application")
    row = _app_row(conn, ident_)
    missing = f"no application {application_id}"
    if row is None or not organisations.in_jurisdiction(conn, user, json.loads(row["request_json"])["datasets"]):
        raise NotFound(missing)  # outside a district regulator's jurisdiction reads like missing
    authz.check("application.read", user, app_relations(user, row), missing=missing)
    return deadlines.annotate(_app_view(conn, row), sb.now())


def _narrowed_scope(body: dict[str, Any], request: dict[str, Any], conn: sqlite3.Connection) -> dict[str, Any]:
    scope: dict[str, Any] = {"datasets": request["datasets"]}
    columns = dict(request.get("columns") or {})
    if body.get("columns") is not None:
        raw = body["columns"]
        if not isinstance(raw, dict):
            raise BadRequest("columns must be an object {dataset: [column, ...]}")
        versions = {v.name: v for v in datasets.latest_versions(conn, include_unpublished=True)}
        for ds, cols in raw.items():
            name = str(ds).lower()
            if name not in request["datasets"]:
                raise BadRequest(f"columns names dataset {ds!r}, which the application does not ask for")
            allowed = columns.get(name) or [
                c.name for c in versions[name].policy.columns.values() if c.sensitivity != "identifier"
            ]
            wanted = fields.names(cols, f"columns.{ds}")
            extra = [c for c in wanted if c not in allowed]
            if extra:
                raise BadRequest(f"an approval may only narrow the request; {name} does not offer {extra}")
            columns[name] = wanted
    if columns:
        scope["columns"] = columns
    aggregates = list(request.get("aggregates") or [])
    if body.get("aggregates") is not None:
        wanted = _aggregates(body["aggregates"])
        extra = [a for a in wanted if aggregates and a not in aggregates]
        if extra:
            raise BadRequest(f"an approval may only narrow the request; it did not ask for {extra}")
        aggregates = wanted
    if aggregates:
        scope["aggregates"] = aggregates
    return scope


def _decidable(sb: Context, user: User | None, application_id: Any) -> sqlite3.Row:
    authz.check_role("application.decide", user)
    conn = sb.conn()
    row = _app_row(conn, fields.ident(application_id, "application"))
    missing = f"no application {application_id}"
    if row is None:
        raise NotFound(missing)
    authz.check("application.decide", user, app_relations(user, row), missing=missing)
    if row["status"] != "pending":
        raise conflict(f"application {row['id']} was already {row['status']}")
    return row


def decide(sb: Context, user: User | None, application_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/applications/<id>/decision`` by the owner of the datasets."""
    row = _decidable(sb, user, application_id)
    assert user is not None
    decision = body.get("decision")
    if decision not in ("approve", "reject"):
        raise BadRequest('decision must be "approve" or "reject"', code="bad_decision")
    conn = sb.conn()
    if json.loads(row["request_json"]).get("amends"):  # more budget or a later expiry (issue 14)

        return amendments.decide(sb, user, row, workflow.app_owner_ids(row), body)
    if len(workflow.app_owner_ids(row)) > 1:
        return _decide_part(sb, user, row, decision, body)
    if decision == "reject":
        reason = fields.text(body, "reason")
        with transaction(conn):
            workflow.reject(conn, row["id"], user, reason, now=sb.now)
            sb.audit(conn, user, Action.APPLICATION_REJECTED, f"application/{row['id']}", {
                "application_id": row["id"], "researcher": username_of(conn, row["researcher_id"]), "reason": reason,
            })
        return {"application_id": row["id"], "status": "rejected", "approval_id": None}
    epsilon_total = fields.number(body, "epsilon_total", low=0, high=1000)
    delta_total = fields.number(body, "delta_total", low=0, high=0.01, low_open=False)
    # a cap below the smallest ε a query may use would make an approval that can never run
    per_query = fields.number(body, "epsilon_per_query", low=request_limits.EPSILON_MIN, high=epsilon_total,
                              low_open=False)
    expires_at = workflow.parse_expiry(body.get("expires"), sb)
    scope = _narrowed_scope(body, json.loads(row["request_json"]), conn)
    approval_id = grant(sb, user, row["id"], scope, epsilon_total=epsilon_total, delta_total=delta_total,
                        epsilon_per_query=per_query, expires_at=expires_at, reason=fields.text(body, "reason", required=False))
    return {"application_id": row["id"], "status": "approved", "approval_id": approval_id}


def grant(sb: Context, owner: User, application_id: int, scope: dict[str, Any], *, epsilon_total: float,
          delta_total: float, epsilon_per_query: float, expires_at: str | None, reason: str = "") -> int:
    """Approve, sign and log in one transaction (also the trusted path of ``SandboxAdmin``)."""
    row = _decidable(sb, owner, application_id)
    requested = json.loads(row["request_json"])["datasets"]
    if not scope.get("datasets") or any(d.lower() not in requested for d in scope["datasets"]):
        raise BadRequest("the approved datasets must be among those the application asks for")
    conn = sb.conn()
    _require_legal_basis(conn, scope["datasets"])
    with transaction(conn):
        approval_id = workflow.approve(
            conn, application_id, owner, scope, epsilon_total=epsilon_total, delta_total=delta_total,
            epsilon_per_query=epsilon_per_query, expires_at=expires_at, now=sb.now, reason=reason,
        )
        signature = approvals.sign(sb, conn, approval_id, owner.username)
        sb.audit(conn, owner, Action.APPROVAL_GRANTED, f"approval/{approval_id}", {
            "approval_id": approval_id, "application_id": application_id,
            "researcher": username_of(conn, row["researcher_id"]), "scope": scope,
            "epsilon_total": epsilon_total, "delta_total": delta_total, "epsilon_per_query": epsilon_per_query,
            "expires_at": expires_at, "reason": reason,
            "signature": signature,
        })
    return approval_id


def _require_legal_basis(conn: sqlite3.Connection, names: list[str]) -> None:
    """第二十条: no approval reaches personal information without its recorded legal basis."""
    for name in names:
        ds = conn.execute("SELECT id, tier FROM datasets WHERE name = ?", (name.lower(),)).fetchone()
        published = [v for v in datasets.all_versions(conn, ds["id"]) if v.published] if ds else []
        if published:
            legal_basis.require(conn, published[-1], tier=ds["tier"], step="approved for use")


# -- applications spanning several owners (issue 14; 第五、十五条) ----------------------------------------
def _decide_part(sb: Context, owner: User, row: sqlite3.Row, decision: str, body: dict[str, Any]) -> dict[str, Any]:
    """One owner's decision on its own datasets of a cross-organisation application.

    A rejection by any owner rejects the application. An approval narrows only the owner's own
    datasets and sets the owner's budget; once every owner has approved, the approval is granted
    with the union of the narrowed scopes and the strictest of the budgets and expiries, so every
    owner's terms hold (the collusion cap of each dataset applies on top), signed by the last owner
    and logged with every owner's decision.
    """
    conn = sb.conn()
    request = json.loads(row["request_json"])
    mine = [d for d in request["datasets"] if organisations.owner_ids(conn, [d]) == {owner.id}]
    reason = fields.text(body, "reason", required=decision == "reject")
    record: dict[str, Any] = {"scope": {}, "epsilon_total": None, "delta_total": None, "epsilon_per_query": None,
                              "expires_at": None}
    if decision == "approve":
        record = _owner_terms(sb, conn, request, mine, body)
    with transaction(conn):
        workflow.record_owner_decision(conn, row["id"], owner, decision,
                                       json.dumps(record["scope"], ensure_ascii=False), record, reason,
                                       iso(sb.now()))
        sb.audit(conn, owner, Action.APPLICATION_OWNER_DECIDED, f"application/{row['id']}", {
            "application_id": row["id"], "owner": owner.username, "datasets": mine, "decision": decision,
            "reason": reason, "scope": record["scope"], "epsilon_total": record["epsilon_total"],
            "delta_total": record["delta_total"], "epsilon_per_query": record["epsilon_per_query"],
            "expires_at": record["expires_at"]})
        if decision == "reject":
            workflow.reject(conn, row["id"], owner, f"{owner.username}: {reason}", now=sb.now)
            sb.audit(conn, owner, Action.APPLICATION_REJECTED, f"application/{row['id']}", {
                "application_id": row["id"], "researcher": username_of(conn, row["researcher_id"]),
                "reason": reason})
            return {"application_id": row["id"], "status": "rejected", "approval_id": None}
        parts = conn.execute("SELECT * FROM application_decisions WHERE application_id = ? AND decision = 'approve'",
                             (row["id"],)).fetchall()
    if len(parts) < len(workflow.app_owner_ids(row)):
        waiting = [username_of(conn, o) for o in workflow.app_owner_ids(row) if o not in {p["owner_id"] for p in parts}]
        return {"application_id": row["id"], "status": "pending", "approval_id": None, "waiting_for": waiting}
    approval_id = grant(sb, owner, row["id"], _joint_scope(request, parts), epsilon_total=min(p["epsilon_total"] for p in parts),
                        delta_total=min(p["delta_total"] for p in parts),
                        epsilon_per_query=min(p["epsilon_per_query"] for p in parts),
                        expires_at=min(p["expires_at"] for p in parts),
                        reason="; ".join(f"{username_of(conn, p['owner_id'])}: {p['reason']}" for p in parts))
    return {"application_id": row["id"], "status": "approved", "approval_id": approval_id}


def _owner_terms(sb: Context, conn: sqlite3.Connection, request: dict[str, Any], mine: list[str],
                 body: dict[str, Any]) -> dict[str, Any]:
    """One owner's approval of a cross-organisation application: its budget and expiry, and
    the scope narrowed on its own datasets ``mine`` only (``not_your_dataset`` otherwise)."""
    _require_legal_basis(conn, mine)  # 第二十条
    eps = fields.number(body, "epsilon_total", low=0, high=1000)
    record: dict[str, Any] = {
        "epsilon_total": eps, "delta_total": fields.number(body, "delta_total", low=0, high=0.01, low_open=False),
        "epsilon_per_query": fields.number(body, "epsilon_per_query", low=request_limits.EPSILON_MIN, high=eps,
                                           low_open=False),
        "expires_at": workflow.parse_expiry(body.get("expires"), sb),
    }
    own_request = {**request, "datasets": mine,
                   "columns": {k: v for k, v in (request.get("columns") or {}).items() if k in mine}}
    narrowed = {k: v for k, v in body.items() if k in ("columns", "aggregates")}
    if isinstance(narrowed.get("columns"), dict):
        foreign = [d for d in narrowed["columns"] if str(d).lower() not in mine]
        if foreign:
            raise BadRequest(f"you decide only on your own datasets; {foreign} belong to other owners",
                             code="not_your_dataset")
    record["scope"] = _narrowed_scope(narrowed, own_request, conn)
    return record


def _joint_scope(request: dict[str, Any], parts: list[sqlite3.Row]) -> dict[str, Any]:
    """The union of the owners' narrowed scopes (the aggregates every owner allows), datasets
    in the application's order."""
    scope: dict[str, Any] = {"datasets": []}
    for p in parts:
        part = json.loads(p["scope_json"])
        scope["datasets"] += part.get("datasets", [])
        for key in ("columns",):
            if part.get(key):
                scope.setdefault(key, {}).update(part[key])
        if part.get("aggregates"):
            scope["aggregates"] = sorted(set(scope.get("aggregates") or part["aggregates"]) & set(part["aggregates"]))
    scope["datasets"] = [d for d in request["datasets"] if d in scope["datasets"]]
    return scope
