"""Amending an approval: more budget or a later expiry (第十五条; issue 14).

A researcher asks on their approval (``POST /api/v1/approvals/<id>/requests``); the request is
an application that *amends* that approval instead of creating another one: it is listed and
due like every application, and decided by the same owner(s) (each owner of a study spanning
several organisations, the strictest of their answers applying). Only the owners' approval
changes the approval's terms — raising ``epsilon_total`` (and ``delta_total``) or moving
``expires_at`` later — in the transaction that re-signs the terms with the deciding owner's key
and logs ``approval.amended`` with the old and the new terms. Until then the ledger keeps
charging against the old total, so a request can never spend what was not granted.

PRIVACY: totals only grow (ε_T up, δ_T not down). The approval's accounting route
(:func:`privacy.accounting.choose_route`) can then only move from basic composition to zCDP,
whose accountant bounds every earlier pure release by ρ = ε²/2 — the spent figure stays a valid
bound on the releases already made. A terminated approval is never amended.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso, parse_iso
from sandbox.errors import BadRequest, NotFound
from sandbox.governance import approvals, deadlines, workflow
from sandbox.governance.workflow import COMMITMENT_SHA256, COMMITMENT_TEXT, parse_expiry
from sandbox.store import fields, request_limits
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.users import User
from sandbox.store.workspace import transaction

KINDS: Final = ("budget", "extension")
EPSILON_MAX: Final = 1000.0
DELTA_MAX: Final = 0.01


def _approval_row(conn: sqlite3.Connection, approval_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    if row is None:
        raise NotFound(f"no approval {approval_id}")
    return row


def _wanted(sb: Context, row: sqlite3.Row, kind: str, body: dict[str, Any], *, required: bool) -> dict[str, Any]:
    """The new terms asked for (researcher) or granted (owner): they only ever grow."""

    out: dict[str, Any] = {}
    if kind == "budget":
        if body.get("epsilon_total") in (None, "") and not required:
            return out
        eps = fields.number(body, "epsilon_total", low=0, high=EPSILON_MAX)
        if not eps > row["epsilon_total"]:
            raise BadRequest(f"epsilon_total must be above the approval's current total {row['epsilon_total']:g} "
                             "(an amendment only adds budget)", code="bad_epsilon")
        out["epsilon_total"] = eps
        if body.get("delta_total") not in (None, ""):
            delta = fields.number(body, "delta_total", low=0, high=DELTA_MAX, low_open=False)
            if delta < row["delta_total"]:
                raise BadRequest(f"delta_total must not be below the current {row['delta_total']:g}",
                                 code="bad_delta")
            out["delta_total"] = delta
        return out
    if body.get("expires") in (None, "") and not required:
        return out
    expires = parse_expiry(body.get("expires"), sb)
    if expires is None or (row["expires_at"] and parse_iso(expires) <= parse_iso(row["expires_at"])):
        raise BadRequest(f"expires must be after the approval's current expiry ({(row['expires_at'] or '')[:10]})",
                         code="bad_expires")
    out["expires_at"] = expires
    return out


def request(sb: Context, me: User, approval_id: int, kind: str, reason: str, body: dict[str, Any],
            terms: dict[str, Any]) -> dict[str, Any]:
    """The researcher's request (caller checked it is their approval): a pending application
    that names the approval it amends and the new terms wanted."""
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}", code="bad_kind")
    conn = sb.conn()
    row = _approval_row(conn, approval_id)
    if workflow.active_termination(conn, "approval", approval_id) is not None:
        raise conflict(f"approval {approval_id} was terminated (第二十六条); it cannot be amended")
    wanted = _wanted(sb, row, kind, body, required=False)  # else the owner names the new terms
    pending = conn.execute("SELECT id FROM applications WHERE status = 'pending' AND "
                           "json_extract(request_json, '$.amends.approval_id') = ?", (approval_id,)).fetchone()
    if pending is not None:
        raise conflict(f"application {pending['id']} already asks to amend approval {approval_id}; "
                       "it must be decided first")
    app = conn.execute("SELECT request_json, owner_id FROM applications WHERE id = ?",
                       (row["application_id"],)).fetchone()
    original = json.loads(app["request_json"])
    req = {"datasets": terms["datasets"], "columns": terms.get("columns") or {},
           "aggregates": terms.get("aggregates") or [], "provision_method": "sandbox",
           "amends": {"approval_id": approval_id, "kind": kind, **wanted}}
    if original.get("owner_ids"):
        req["owner_ids"] = original["owner_ids"]

    what = "more budget for" if kind == "budget" else "an extension of"
    purpose = f"Request for {what} approval {approval_id}: {reason}"
    with transaction(conn):
        app_id = workflow.create_application(
            conn, me, req, scenario=terms["scenario"], purpose=purpose, commitment_accepted=True,
            commitment_text=COMMITMENT_TEXT, provision_method="sandbox",
            owner_id=None if original.get("owner_ids") else app["owner_id"], now=sb.now)
        due = deadlines.due_at(conn, "application", sb.now())
        conn.execute("UPDATE applications SET due_at = ? WHERE id = ?", (due, app_id))
        sb.audit(conn, me, Action.APPLICATION_SUBMITTED, f"application/{app_id}", {
            "application_id": app_id, "researcher": me.username, **req, "scenario": terms["scenario"],
            "purpose": purpose, "commitment_sha256": COMMITMENT_SHA256})
    return {"application_id": app_id, "status": "pending", "due_at": due, "kind": kind, "approval_id": approval_id,
            "requested": wanted}


def decide(sb: Context, owner: User, app: sqlite3.Row, owners: list[int], body: dict[str, Any]) -> dict[str, Any]:
    """An owner's decision on an amendment request (caller checked rights and that it is pending)."""
    decision = body.get("decision")
    if decision not in ("approve", "reject"):
        raise BadRequest('decision must be "approve" or "reject"', code="bad_decision")
    reason = fields.text(body, "reason", required=decision == "reject")
    amends = json.loads(app["request_json"])["amends"]
    conn = sb.conn()
    row = _approval_row(conn, amends["approval_id"])
    granted: dict[str, Any] = {}
    if decision == "approve":
        # the owner may grant less than asked, never less than there is; default: what was asked
        granted = _wanted(sb, row, amends["kind"], body, required=False) or {
            k: v for k, v in amends.items() if k in ("epsilon_total", "delta_total", "expires_at")}
        if not granted:
            raise BadRequest("name the new terms: epsilon_total (more budget) or expires (an extension)",
                             code="missing_terms")
    with transaction(conn):
        workflow.record_owner_decision(conn, app["id"], owner, decision,
                                       json.dumps({"amends": amends["approval_id"]}),
                                       {k: v for k, v in granted.items() if k != "epsilon_per_query"}, reason,
                                       iso(sb.now()))
        sb.audit(conn, owner, Action.APPLICATION_OWNER_DECIDED, f"application/{app['id']}", {
            "application_id": app["id"], "owner": owner.username, "decision": decision, "reason": reason,
            "amends": amends["approval_id"], **granted})
        if decision == "reject":
            workflow.reject(conn, app["id"], owner, reason, now=sb.now)
            sb.audit(conn, owner, Action.APPLICATION_REJECTED, f"application/{app['id']}", {
                "application_id": app["id"], "researcher": username_of(conn, app["researcher_id"]),
                "reason": reason, "amends": amends["approval_id"]})
            return {"application_id": app["id"], "status": "rejected", "approval_id": None,
                    "amends": amends["approval_id"]}
        parts = conn.execute("SELECT * FROM application_decisions WHERE application_id = ? AND decision = 'approve'",
                             (app["id"],)).fetchall()
        waiting = [o for o in owners if o not in {p["owner_id"] for p in parts}]
        if waiting:
            return {"application_id": app["id"], "status": "pending", "approval_id": None,
                    "waiting_for": [username_of(conn, o) for o in waiting], "amends": amends["approval_id"]}
        return _amend(sb, conn, owner, app, row, parts, reason)


def _amend(sb: Context, conn: sqlite3.Connection, owner: User, app: sqlite3.Row, row: sqlite3.Row,
           parts: list[sqlite3.Row], reason: str) -> dict[str, Any]:
    """Every owner approved: the strictest of their grants, re-signed and logged (caller's transaction)."""
    if workflow.active_termination(conn, "approval", row["id"]) is not None:
        raise conflict(f"approval {row['id']} was terminated meanwhile (第二十六条); it cannot be amended")
    row = _approval_row(conn, row["id"])  # re-read inside the transaction
    new = {"epsilon_total": row["epsilon_total"], "delta_total": row["delta_total"], "expires_at": row["expires_at"]}
    for key in new:
        values = [p[key] for p in parts if p[key] is not None]
        if values:
            new[key] = min(values)
    if not (new["epsilon_total"] >= row["epsilon_total"] and new["delta_total"] >= row["delta_total"]):
        raise conflict("an amendment only adds budget")  # PRIVACY: see the module docstring
    if new["epsilon_total"] < row["epsilon_per_query"] or new["epsilon_total"] > EPSILON_MAX \
            or new["epsilon_total"] < request_limits.EPSILON_MIN:
        raise conflict("the amended total is out of range")
    old = {"epsilon_total": row["epsilon_total"], "delta_total": row["delta_total"], "expires_at": row["expires_at"]}
    conn.execute("UPDATE approvals SET epsilon_total = ?, delta_total = ?, expires_at = ? WHERE id = ?",
                 (new["epsilon_total"], new["delta_total"], new["expires_at"], row["id"]))
    conn.execute("UPDATE applications SET status = 'approved', reason = ?, decided_by = ?, decided_at = ? "
                 "WHERE id = ?", (reason, owner.id, iso(sb.now()), app["id"]))
    signature = approvals.sign(sb, conn, row["id"], owner.username)
    sb.audit(conn, owner, Action.APPROVAL_AMENDED, f"approval/{row['id']}", {
        "approval_id": row["id"], "application_id": app["id"], "researcher": username_of(conn, row["researcher_id"]),
        "old": old, "new": new, "reason": reason, "signature": signature})
    return {"application_id": app["id"], "status": "approved", "approval_id": row["id"], "amends": row["id"],
            "old": old, "new": new}

