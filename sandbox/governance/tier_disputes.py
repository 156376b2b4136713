"""A regulator's tier proposal the owner disputes (第十条; issue 14).

第十条: 市、区县大数据主管部门可以对数据开放属性提出修改意见,与开放主体意见不一致的,由市大数据
主管部门确定;重大、疑难的,由市大数据主管部门组织专家论证后确定. The owner answers a proposal
(:func:`answer`: accept and submit — scan and co-signature as any raise — or decline with
reasons); a declined proposal may get an expert review (:func:`expert_review`, advisory) and is
settled by the city bureau only (:func:`city_decision`). Split out of :mod:`sandbox.governance.publication`,
which re-exports these functions.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Final

from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.errors import BadRequest, SandboxError
from sandbox.governance import organisations, publication, publication_scan
from sandbox.store import fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict
from sandbox.store.users import User
from sandbox.store.workspace import transaction


def answer(sb: Context, user: User | None, review_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The owner accepts a proposal (and submits it, scan and all) or declines with reasons."""
    r = publication._checked(sb, user, "review.answer", review_id)
    assert user is not None
    if r["status"] != "proposed":
        raise conflict(f"review {r['id']} is {r['status'].replace('_', ' ')}, not a proposal awaiting an answer")
    accept = body.get("accept")
    if not isinstance(accept, bool):
        raise BadRequest("accept must be true or false", code="bad_answer")
    if not accept and _dispute_record(r).get("city_decision"):
        raise SandboxError(f"the city bureau decided review {r['id']} (第十条: 由市大数据主管部门确定): the tier "
                           "changes; submit it (the risk scan and the co-signature still apply)",
                           code="city_decided", status=409)
    reasons = fields.text(body, "reasons")
    conn = sb.conn()
    if not accept:
        with transaction(conn):
            conn.execute("UPDATE publication_reviews SET status = 'declined', owner_answer = ? WHERE id = ?",
                         (reasons, r["id"]))
            sb.audit(conn, user, Action.PUBLICATION_DECLINED, f"review/{r['id']}",
                     {"review_id": r["id"], "dataset": r["dataset"], "reasons": reasons})
        return {"review_id": r["id"], "status": "declined"}
    ds = conn.execute("SELECT * FROM datasets WHERE id = ?", (r["dataset_id"],)).fetchone()
    v = publication._newest_published(conn, ds)
    if ds["tier"] == "not_open" and not fields.text(body, "deidentification", required=False):
        raise BadRequest("moving not-open data to a more open tier needs the de-identification step "
                         "that was taken (field deidentification, 第十一条)", code="deidentification_required")
    prepared = publication_scan.prepare(sb, v, r["to_tier"], body)
    with transaction(conn):
        conn.execute("UPDATE publication_reviews SET owner_answer = ?, deidentification = ?, version_id = ? "
                     "WHERE id = ?", (reasons, fields.text(body, "deidentification", required=False),
                                      v.version_id, r["id"]))
        return publication._fill_submission(sb, conn, r["id"], user, v, r["to_tier"], prepared)


EXPERT_OUTCOMES: Final = ("change", "no_change")


def _dispute_record(r: sqlite3.Row) -> dict[str, Any]:
    return json.loads(r["expert_review"]) if r["expert_review"] else {}


def expert_review(sb: Context, user: User | None, review_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """第十条 重大、疑难的 … 组织专家论证: the experts' opinion on a declined proposal and the
    outcome they recommend. It settles nothing by itself: the city bureau decides
    (:func:`city_decision`), with this record before it.
    """
    r = publication._checked(sb, user, "review.expert", review_id)
    assert user is not None
    if r["status"] != "declined":
        raise conflict(f"review {r['id']} is {r['status'].replace('_', ' ')}; only a declined proposal "
                       "goes to expert review")
    outcome = body.get("outcome")
    if outcome not in EXPERT_OUTCOMES:
        raise BadRequest("outcome must be change or no_change", code="bad_outcome")
    record = {"experts": fields.text(body, "experts"), "opinion": fields.text(body, "opinion"),
              "outcome": outcome, "recorded_by": user.username, "at": iso(sb.now())}
    conn = sb.conn()
    with transaction(conn):
        conn.execute("UPDATE publication_reviews SET status = 'expert_reviewed', expert_review = ? WHERE id = ?",
                     (json.dumps(record, ensure_ascii=False), r["id"]))
        sb.audit(conn, user, Action.PUBLICATION_EXPERT_REVIEWED, f"review/{r['id']}",
                 {"review_id": r["id"], "dataset": r["dataset"], **record})
    return {"review_id": r["id"], "status": "expert_reviewed", "expert_review": record,
            "awaiting": "the city bureau's decision (第十条)"}


def city_decision(sb: Context, user: User | None, review_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/v1/reviews/<id>/city-decision`` ``{"outcome": "change"|"no_change", "reason"}``.

    第十条: 与开放主体意见不一致的,由市大数据主管部门确定 — when the owner declines a proposal,
    the *city* bureau decides (a district regulator may propose and record experts, not decide):
    ``change`` binds the owner to submit the raise (which still takes the scan and the
    co-signature: the decision is about the tier, not about letting identifiers out; the owner
    can no longer decline), ``no_change`` rejects the proposal.
    """
    r = publication._checked(sb, user, "review.city_decide", review_id)
    assert user is not None

    conn = sb.conn()
    if organisations.jurisdiction_of(conn, user) != organisations.CITY:
        raise SandboxError("only the city big-data bureau settles a dispute over a tier (第十条: 由市大数据主管部门"
                           "确定); a district regulator proposes and records the expert review",
                           code="city_bureau_only", status=403)
    if r["status"] not in ("declined", "expert_reviewed"):
        raise conflict(f"review {r['id']} is {r['status'].replace('_', ' ')}; the city bureau decides a "
                       "declined proposal (after expert review if needed)")
    outcome = body.get("outcome")
    if outcome not in EXPERT_OUTCOMES:
        raise BadRequest("outcome must be change or no_change", code="bad_outcome")
    reason = fields.text(body, "reason")
    now = iso(sb.now())
    decision = {"outcome": outcome, "reason": reason, "decided_by": user.username, "at": now}
    record = {**_dispute_record(r), "city_decision": decision}
    with transaction(conn):
        if conn.execute("SELECT status FROM publication_reviews WHERE id = ?", (r["id"],)).fetchone()[0] != r["status"]:
            raise conflict(f"review {r['id']} changed meanwhile")
        if outcome == "change":
            conn.execute("UPDATE publication_reviews SET status = 'proposed', expert_review = ? WHERE id = ?",
                         (json.dumps(record, ensure_ascii=False), r["id"]))
        else:
            conn.execute("UPDATE publication_reviews SET status = 'rejected', expert_review = ?, decided_by = ?, "
                         "decided_at = ?, decision_reason = ? WHERE id = ?",
                         (json.dumps(record, ensure_ascii=False), user.id, now, reason, r["id"]))
        sb.audit(conn, user, Action.PUBLICATION_CITY_DECIDED, f"review/{r['id']}", {
            "review_id": r["id"], "dataset": r["dataset"], "from": r["from_tier"], "to": r["to_tier"],
            "outcome": outcome, "reason": reason, "expert_review": _dispute_record(r) or None})
    status = "proposed" if outcome == "change" else "rejected"
    return {"review_id": r["id"], "status": status, "city_decision": decision}
