"""Publication and tier reviews: the owner submits, the regulator co-signs (第十、十一、十二条; issue 14).

Nothing becomes more open on one person's word. *Raising* a dataset's tier (not-open →
conditional → unconditional) and *publishing* a version that needs review take, in this
order:

1. a **basis** (第十条) — and, from not-open, the de-identification step taken (第十一条);
2. a **fresh risk scan of what would be published** (第十二条), run at submission: for the
   unconditional tier that is the de-identified derivative (:mod:`sandbox.governance.deidentify`:
   identifiers dropped, quasi-identifiers generalised to the owner's k-anonymity target,
   the recipe recorded), which must pass — no acknowledgement can wave an identifier into a
   download; for the conditional tier it is the stored data, whose findings the owner must
   either clear or explicitly acknowledge (``acknowledge_findings``), since researchers see
   differentially private aggregates only and identifier columns are never queryable — but
   an identifier in a column *not* declared identifier is refused outright (it would be
   queryable);
3. the **regulator's co-signature** (第十二条: 审核): ``POST /api/v1/reviews/<id>/decision``.

Both parties sign the same RFC 8785 canonical terms (dataset, version and content hash,
old and new tier, basis, scan and recipe digests) with their own Ed25519 keys
(``owner:<name>``, ``regulator:<name>``); the audit entry that applies the change carries
both signatures, the old and new tier, the scan summary and the recipe. What would be
published and its scan: :mod:`sandbox.governance.publication_scan`; the signed terms and their
check: :mod:`sandbox.governance.review_signatures`.

Reviews are needed for: every tier raise; a version's first publication (tier conditional
or unconditional); every new version of an unconditional dataset (its derivative is rebuilt
and must be co-signed again); a new conditional version whose scan failed. Lowering a tier
stays immediate (it only closes access). A regulator who wants a dataset more open proposes
(第十条 修改意见); the owner accepts (and submits) or declines with reasons; a dispute is settled
by the city bureau (由市大数据主管部门确定), after an expert review when it is major or difficult.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.errors import BadRequest, NotFound
from sandbox.governance import (
    classification,
    datasets,
    legal_basis,
    organisations,  # a district regulator: their jurisdiction only (第五条)
    publication_scan,
    review_signatures,
    risk_scan,
)
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.users import User
from sandbox.store.workspace import transaction

TIER_RANK: Final = {"not_open": 0, "conditional": 1, "unconditional": 2}
STATUSES: Final = ("proposed", "declined", "expert_reviewed", "awaiting_regulator", "approved", "rejected")


def is_raise(from_tier: str, to_tier: str) -> bool:
    """>>> is_raise("conditional", "unconditional"), is_raise("unconditional", "conditional")
    (True, False)
    """
    return TIER_RANK[to_tier] > TIER_RANK[from_tier]


def review_reason(conn: sqlite3.Connection, dataset_id: int, tier: str, v: datasets.DatasetVersion) -> str | None:
    """Why publishing ``v`` needs the regulator's co-signature, or None (the owner alone may)."""
    if tier == "not_open":
        return None  # nothing leaves; moving it up later is a reviewed tier raise
    if not _has_published(conn, dataset_id):
        return "first publication (第十二条)"
    if tier == "unconditional":
        return "a new version of open data: its de-identified derivative is rebuilt and co-signed"
    if not v.risk_report.get("passed"):
        return "the risk scan of this version found problems (第十二条)"
    return None


def _has_published(conn: sqlite3.Connection, dataset_id: int) -> bool:
    return conn.execute("SELECT 1 FROM dataset_versions WHERE dataset_id = ? AND published_at IS NOT NULL",
                        (dataset_id,)).fetchone() is not None


# -- submitting ------------------------------------------------------------------------------------
def _insert(conn: sqlite3.Connection, *, dataset_id: int, version_id: int, kind: str, from_tier: str,
            to_tier: str, basis: str, deidentification: str, status: str, now: str,
            proposed_by: int | None = None) -> int:
    cur = conn.execute(
        "INSERT INTO publication_reviews (dataset_id, version_id, kind, from_tier, to_tier, basis, "
        "deidentification, status, proposed_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (dataset_id, version_id, kind, from_tier, to_tier, basis, deidentification, status, proposed_by, now))
    return int(cur.lastrowid)  # type: ignore[arg-type]


def _fill_submission(sb: Context, conn: sqlite3.Connection, review_id: int, owner: User,
                     v: datasets.DatasetVersion, to_tier: str, prepared: dict[str, Any]) -> dict[str, Any]:
    now = iso(sb.now())
    derivative_id = None
    written = None
    if prepared["derivative"] is not None:
        payload, recipe = prepared["derivative"]
        file_name = f"{v.name}-v{v.version}-open-r{review_id}.parquet"
        written = sb.ws.data_dir / file_name
        tmp = written.with_suffix(".tmp")
        tmp.write_bytes(payload)
        tmp.replace(written)
        cur = conn.execute(
            "INSERT INTO dataset_derivatives (version_id, review_id, file_name, content_hash, rows, recipe_json, "
            "scan_json, k_target, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (v.version_id, review_id, file_name, "sha256:" + hashlib.sha256(payload).hexdigest(), recipe["rows"],
             json.dumps(recipe, ensure_ascii=False), json.dumps(prepared["scan"], ensure_ascii=False),
             prepared["k_target"], now))
        derivative_id = cur.lastrowid
    conn.execute(
        "UPDATE publication_reviews SET status = 'awaiting_regulator', submitted_by = ?, submitted_at = ?, "
        "scan_json = ?, scan_passed = ?, acknowledged_findings = ?, k_target = ?, derivative_id = ? WHERE id = ?",
        (owner.id, now, json.dumps(prepared["scan"], ensure_ascii=False), int(bool(prepared["scan"]["passed"])),
         prepared["ack"], prepared["k_target"], derivative_id, review_id))
    signature = review_signatures.sign(sb, conn, review_id, owner)
    conn.execute("UPDATE publication_reviews SET owner_signature = ? WHERE id = ?",
                 (json.dumps(signature), review_id))
    r = conn.execute("SELECT * FROM publication_reviews WHERE id = ?", (review_id,)).fetchone()
    sb.audit(conn, owner, Action.PUBLICATION_SUBMITTED, f"review/{review_id}", {
        "review_id": review_id, "kind": r["kind"], "dataset": v.name, "version": v.version,
        "from": r["from_tier"], "to": r["to_tier"], "basis": r["basis"], "scan": risk_scan.summary(prepared["scan"]),
        "acknowledged_findings": prepared["ack"] or None, "k_target": prepared["k_target"],
        "owner_signature": signature,
    })
    return {"review_id": review_id, "status": "awaiting_regulator", "dataset": v.name, "version": v.version,
            "from": r["from_tier"], "to": r["to_tier"], "scan": risk_scan.summary(prepared["scan"]),
            "recipe": prepared["derivative"][1] if prepared["derivative"] else None}


def submit(sb: Context, owner: User, row: sqlite3.Row, v: datasets.DatasetVersion, *, kind: str,
           to_tier: str, body: dict[str, Any]) -> dict[str, Any]:
    """The owner's submission (caller checked rights): scan, derivative, owner's signature."""
    basis = fields.text(body, "basis", required=kind == "tier_change")
    if kind == "publication" and not basis:
        basis = fields.text(body, "note", required=False) or "publication of a new version"
    deidentification = fields.text(body, "deidentification", required=False)
    if kind == "tier_change" and row["tier"] == "not_open" and not deidentification:
        # 第十一条: not-open data may open only after de-identification; record the step.
        raise BadRequest("moving not-open data to a more open tier needs the de-identification step "
                         "that was taken (field deidentification, 第十一条)", code="deidentification_required")
    prepared = publication_scan.prepare(sb, v, to_tier, body)
    conn = sb.conn()
    with transaction(conn):
        _no_open_review(conn, row["id"])
        review_id = _insert(conn, dataset_id=row["id"], version_id=v.version_id, kind=kind, from_tier=row["tier"],
                            to_tier=to_tier, basis=basis, deidentification=deidentification,
                            status="awaiting_regulator", now=iso(sb.now()))
        return _fill_submission(sb, conn, review_id, owner, v, to_tier, prepared)


def _no_open_review(conn: sqlite3.Connection, dataset_id: int) -> None:
    open_ = conn.execute("SELECT id, status FROM publication_reviews WHERE dataset_id = ? AND status IN "
                         "('proposed', 'awaiting_regulator') ORDER BY id LIMIT 1", (dataset_id,)).fetchone()
    if open_ is not None:
        raise conflict(f"review {open_['id']} of this dataset is still {open_['status'].replace('_', ' ')}; "
                       "it must be decided first")


def propose(sb: Context, regulator: User, row: sqlite3.Row, to_tier: str, body: dict[str, Any]) -> dict[str, Any]:
    """第十条 修改意见: the regulator proposes a more open tier; the owner answers."""
    basis = fields.text(body, "basis")
    v = _newest_published(sb.conn(), row)
    conn = sb.conn()
    with transaction(conn):
        _no_open_review(conn, row["id"])
        review_id = _insert(conn, dataset_id=row["id"], version_id=v.version_id, kind="tier_change",
                            from_tier=row["tier"], to_tier=to_tier, basis=basis, deidentification="",
                            status="proposed", now=iso(sb.now()), proposed_by=regulator.id)
        sb.audit(conn, regulator, Action.PUBLICATION_PROPOSED, f"review/{review_id}", {
            "review_id": review_id, "dataset": row["name"], "from": row["tier"], "to": to_tier, "basis": basis})
    return {"review_id": review_id, "status": "proposed", "dataset": row["name"], "from": row["tier"], "to": to_tier}


def _newest_published(conn: sqlite3.Connection, row: sqlite3.Row) -> datasets.DatasetVersion:
    versions = [x for x in datasets.all_versions(conn, row["id"]) if x.published]
    if not versions:
        raise conflict(f"{row['name']!r} has no published version yet; publish one first (risk/ack)")
    return versions[-1]


# -- reading -----------------------------------------------------------------------------------------
def _review_row(conn: sqlite3.Connection, review_id: Any) -> sqlite3.Row | None:
    try:
        ident = fields.ident(review_id, "review")
    except NotFound:
        return None
    if not 0 <= ident < 2**63:
        return None
    return conn.execute("SELECT r.*, d.name AS dataset, d.owner_id FROM publication_reviews r "
                        "JOIN datasets d ON d.id = r.dataset_id WHERE r.id = ?", (ident,)).fetchone()


def view(conn: sqlite3.Connection, r: sqlite3.Row) -> dict[str, Any]:
    der = (conn.execute("SELECT * FROM dataset_derivatives WHERE id = ?", (r["derivative_id"],)).fetchone()
           if r["derivative_id"] else None)
    version = conn.execute("SELECT version FROM dataset_versions WHERE id = ?", (r["version_id"],)).fetchone()
    scan = json.loads(r["scan_json"]) if r["scan_json"] else None
    return {
        "review_id": r["id"], "kind": r["kind"], "dataset": r["dataset"], "version": version["version"],
        "from": r["from_tier"], "to": r["to_tier"], "status": r["status"], "basis": r["basis"],
        "deidentification": r["deidentification"] or None,
        "proposed_by": username_of(conn, r["proposed_by"]), "submitted_by": username_of(conn, r["submitted_by"]),
        "submitted_at": r["submitted_at"], "scan": risk_scan.summary(scan) if scan else None,
        "problems": scan["problems"] if scan else [], "acknowledged_findings": r["acknowledged_findings"] or None,
        "k_target": r["k_target"], "recipe": json.loads(der["recipe_json"]) if der else None,
        "derivative_sha256": der["content_hash"] if der else None,
        "owner_signature": json.loads(r["owner_signature"]) if r["owner_signature"] else None,
        "regulator_signature": json.loads(r["regulator_signature"]) if r["regulator_signature"] else None,
        "decided_by": username_of(conn, r["decided_by"]), "decided_at": r["decided_at"],
        "decision_reason": r["decision_reason"] or None, "owner_answer": r["owner_answer"] or None,
        "expert_review": ({k: v for k, v in json.loads(r["expert_review"]).items() if k != "city_decision"} or None)
        if r["expert_review"] else None,
        "city_decision": json.loads(r["expert_review"]).get("city_decision") if r["expert_review"] else None,
        "created_at": r["created_at"],
    }


def _relations(user: User | None, r: sqlite3.Row) -> set[str]:
    return {"dataset_owner"} if user is not None and r["owner_id"] == user.id else set()


def list_reviews(sb: Context, user: User | None) -> list[dict[str, Any]]:
    authz.check_role("review.list", user)
    assert user is not None
    conn = sb.conn()
    rows = conn.execute("SELECT r.*, d.name AS dataset, d.owner_id FROM publication_reviews r "
                        "JOIN datasets d ON d.id = r.dataset_id ORDER BY r.id DESC").fetchall()

    return [view(conn, r) for r in rows if (user.role == "regulator" and organisations.in_jurisdiction(
        conn, user, [r["dataset"]])) or r["owner_id"] == user.id]


def get_review(sb: Context, user: User | None, review_id: Any) -> dict[str, Any]:
    r = _checked(sb, user, "review.read", review_id)
    return view(sb.conn(), r)


def _checked(sb: Context, user: User | None, action: str, review_id: Any) -> sqlite3.Row:
    authz.check_role(action, user)
    r = _review_row(sb.conn(), review_id)
    missing = f"no review {review_id}"
    if r is None:
        raise NotFound(missing)
    authz.check(action, user, _relations(user, r), missing=missing)

    if not organisations.in_jurisdiction(sb.conn(), user, [r["dataset"]]):
        raise NotFound(missing)  # a district regulator: its district's reviews only (第五条)
    return r


# -- the regulator's decision --------------------------------------------------------------------------
def decide(sb: Context, user: User | None, review_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/reviews/<id>/decision`` (regulator): approve (co-sign, apply) or reject."""
    r = _checked(sb, user, "review.decide", review_id)
    assert user is not None
    decision = body.get("decision")
    if decision not in ("approve", "reject"):
        raise BadRequest("decision must be approve or reject", code="bad_decision")
    reason = fields.text(body, "reason")
    conn = sb.conn()
    with transaction(conn):
        r = _review_row(conn, r["id"])
        assert r is not None
        if r["status"] != "awaiting_regulator":
            raise conflict(f"review {r['id']} is {r['status'].replace('_', ' ')}, not awaiting the regulator")
        ds = conn.execute("SELECT * FROM datasets WHERE id = ?", (r["dataset_id"],)).fetchone()
        newest = datasets.all_versions(conn, ds["id"])[-1]
        if ds["tier"] != r["from_tier"] or newest.version_id != r["version_id"]:
            raise conflict(f"review {r['id']} is stale: {ds['name']} is now {ds['tier']} at version "
                           f"{newest.version}; the owner must submit again")
        if decision == "reject":
            conn.execute("UPDATE publication_reviews SET status = 'rejected', decided_by = ?, decided_at = ?, "
                         "decision_reason = ? WHERE id = ?", (user.id, iso(sb.now()), reason, r["id"]))
            sb.audit(conn, user, Action.PUBLICATION_REJECTED, f"review/{r['id']}", {
                "review_id": r["id"], "dataset": ds["name"], "from": r["from_tier"], "to": r["to_tier"],
                "reason": reason})
            return {"review_id": r["id"], "status": "rejected"}
        v = _approve(sb, conn, user, r, ds, reason)
    return {"review_id": r["id"], "status": "approved", "dataset": ds["name"], "tier": r["to_tier"],
            "version": v.version}


def _approve(sb: Context, conn: sqlite3.Connection, user: User, r: sqlite3.Row, ds: sqlite3.Row,
             reason: str) -> datasets.DatasetVersion:
    """Co-sign review ``r`` and apply it (the tier, the publication, the derivative) with its
    audit entry, inside :func:`decide`'s transaction; returns the version reviewed."""
    now = iso(sb.now())
    # 第二十条: re-checked at the co-signature (a review submitted before the rule, a new policy)
    reviewed = datasets.get_version(conn, ds["name"], version_id=r["version_id"])
    basis = legal_basis.require(conn, reviewed, tier=r["to_tier"], step="co-signed for publication")
    grade = classification.require(conn, ds["id"], ds["name"], r["to_tier"], reviewed)  # 第六条
    signature = review_signatures.sign(sb, conn, r["id"], user)
    conn.execute("UPDATE publication_reviews SET status = 'approved', decided_by = ?, decided_at = ?, "
                 "decision_reason = ?, regulator_signature = ? WHERE id = ?",
                 (user.id, now, reason, json.dumps(signature), r["id"]))
    v = datasets.get_version(conn, ds["name"], version_id=r["version_id"])
    tier_change_id = None
    if r["kind"] == "tier_change":
        conn.execute("UPDATE datasets SET tier = ? WHERE id = ?", (r["to_tier"], ds["id"]))
        cur = conn.execute(
            "INSERT INTO dataset_tier_changes (dataset_id, from_tier, to_tier, basis, deidentification, "
            "changed_by, created_at, review_id, signed_by) VALUES (?,?,?,?,?,?,?,?,?)",
            (ds["id"], r["from_tier"], r["to_tier"], r["basis"], r["deidentification"], r["submitted_by"],
             now, r["id"], user.id))
        tier_change_id = cur.lastrowid
    if not v.published:
        datasets.publish(conn, v.version_id, r["submitted_by"], r["acknowledged_findings"] or r["basis"],
                         now=sb.now)
    if r["derivative_id"]:
        conn.execute("UPDATE dataset_derivatives SET approved_at = ? WHERE id = ?", (now, r["derivative_id"]))
    der = (conn.execute("SELECT * FROM dataset_derivatives WHERE id = ?", (r["derivative_id"],)).fetchone()
           if r["derivative_id"] else None)
    details = {
        "dataset": ds["name"], "version": v.version, "content_hash": v.content_hash, "review_id": r["id"],
        "from": r["from_tier"], "to": r["to_tier"], "basis": r["basis"],
        "deidentification": r["deidentification"] or None,
        "scan": risk_scan.summary(json.loads(r["scan_json"])),
        "acknowledged_findings": r["acknowledged_findings"] or None,
        "k_target": r["k_target"],
        "recipe": json.loads(der["recipe_json"]) if der else None,
        "derivative_sha256": der["content_hash"] if der else None,
        "owner_signature": json.loads(r["owner_signature"]), "regulator_signature": signature,
        "reason": reason, "legal_basis": basis or None, "classification": grade,
    }
    if r["kind"] == "tier_change":
        details["tier_change_id"] = tier_change_id
        sb.audit(conn, user, Action.DATASET_TIER_CHANGED, f"dataset/{ds['name']}", details)
    else:
        sb.audit(conn, user, Action.DATASET_PUBLISHED, f"dataset/{ds['name']}", details)
    return v


# -- the open download -------------------------------------------------------------------------------------
def open_derivative(conn: sqlite3.Connection, version_id: int) -> sqlite3.Row | None:
    """The co-signed derivative of a published version (what an unconditional download serves)."""
    return conn.execute("SELECT * FROM dataset_derivatives WHERE version_id = ? AND approved_at IS NOT NULL "
                        "ORDER BY id DESC LIMIT 1", (version_id,)).fetchone()
