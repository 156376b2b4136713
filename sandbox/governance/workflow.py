"""Applications, approvals and suspensions in the store (第十五、二十二、二十六条).

An approval fixes the scenario (datasets, columns, operations), the privacy budget and
the expiry. Every query first passes :func:`active_approval`, which refuses a suspended
researcher, a suspended or expired approval, or somebody else's approval — with the same
"not found" for an approval that is not yours as for one that does not exist.

This module holds the store-level steps, each run inside the caller's transaction; the
service functions that check rights, validate requests and write the audit entry live in
``sandbox.governance.applications`` and ``sandbox.governance.suspensions``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from audit_log.actions import Action
from query_guard import Scenario
from sandbox.clock import Clock, end_of_day, iso, parse_iso
from sandbox.errors import BadRequest, NotFound, Suspended
from sandbox.governance import (
    organisations,  # a district regulator: their jurisdiction only (第五条)
)
from sandbox.store import fields
from sandbox.store.context import Context
from sandbox.store.settings import Setting, SettingGroup
from sandbox.store.users import User

AuditFn = Callable[[sqlite3.Connection, "User | None", str, str, dict[str, Any]], Any]


@dataclass(frozen=True)
class Approval:
    id: int
    application_id: int
    researcher_id: int
    owner_id: int
    scope: dict[str, Any]
    epsilon_total: float
    delta_total: float
    epsilon_per_query: float
    expires_at: str | None
    created_at: str
    reason: str = ""
    signature: str = ""
    signature_key: str = ""
    signature_key_id: str = ""
    #: The owner requires pure ε-DP (no δ, no Gaussian, no zCDP route): the ``pure_dp`` column,
    #: ``"pure_dp": true`` in the scope, or δ_total = 0.
    pure_dp: bool = False

    @property
    def datasets(self) -> list[str]:
        return scope_datasets(self.scope)

    @property
    def scenario(self) -> Scenario:
        s = self.scope
        return Scenario(
            datasets=frozenset(d.lower() for d in s.get("datasets", [])),
            columns={k.lower(): frozenset(c.lower() for c in v) for k, v in (s.get("columns") or {}).items()},
            aggregates=frozenset(s.get("aggregates") or ()),
            group_by={k.lower(): frozenset(c.lower() for c in v) for k, v in (s.get("group_by") or {}).items()},
            bounds={
                (k.split(".", 1)[0], k.split(".", 1)[1]): (float(v[0]), float(v[1]))
                for k, v in (s.get("bounds") or {}).items()
            },
        )


def _approval(row: sqlite3.Row) -> Approval:
    scope = json.loads(row["scope_json"])
    pure = (bool(row["pure_dp"]) or row["delta_total"] == 0
            or (isinstance(scope, dict) and scope.get("pure_dp") is True))
    return Approval(row["id"], row["application_id"], row["researcher_id"], row["owner_id"],
                    scope, row["epsilon_total"], row["delta_total"],
                    row["epsilon_per_query"], row["expires_at"], row["created_at"], row["reason"],
                    row["signature"], row["signature_key"], row["signature_key_id"], pure)


def get_approval(conn: sqlite3.Connection, approval_id: int) -> Approval | None:
    if not 0 <= approval_id < 2**63:  # SQLite integers; larger ids cannot exist
        return None
    row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    return _approval(row) if row else None


def all_approvals(conn: sqlite3.Connection) -> list[Approval]:
    return [_approval(r) for r in conn.execute("SELECT * FROM approvals ORDER BY id").fetchall()]


def approvals_for(conn: sqlite3.Connection, user: User) -> list[Approval]:
    """The approvals ``user`` may see: own (researcher), own datasets' (owner), all (regulator)."""
    if user.role == "regulator":
        return [a for a in map(_approval, conn.execute("SELECT * FROM approvals ORDER BY id").fetchall())
                if organisations.in_jurisdiction(conn, user, a.datasets)]
    if user.role == "researcher":
        rows = conn.execute("SELECT * FROM approvals WHERE researcher_id = ? ORDER BY id", (user.id,)).fetchall()
    elif user.role == "owner":
        # issue 14: an approval spanning several owners' datasets concerns each of them
        own = {r[0] for r in conn.execute("SELECT name FROM datasets WHERE owner_id = ?", (user.id,))}
        return [a for a in map(_approval, conn.execute("SELECT * FROM approvals ORDER BY id").fetchall())
                if a.owner_id == user.id or own & set(a.datasets)]
    else:
        rows = []
    return [_approval(r) for r in rows]


def approval_owner_ids(conn: sqlite3.Connection, approval: Approval) -> set[int]:
    """Every owner of a dataset the approval reaches (several for a cross-organisation study)."""
    names = approval.datasets
    marks = ",".join("?" * len(names))
    found = {r[0] for r in conn.execute(f"SELECT owner_id FROM datasets WHERE name IN ({marks})", names)} if names else set()
    return found | {approval.owner_id}


def scope_datasets(scope: dict[str, Any]) -> list[str]:
    return [d.lower() for d in scope.get("datasets", [])]


# -- suspensions (第二十二条) -------------------------------------------------------------------
def active_suspension(conn: sqlite3.Connection, target_type: str, target_id: int) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT * FROM suspensions WHERE target_type = ? AND target_id = ? AND lifted_at IS NULL "
        "ORDER BY id DESC LIMIT 1",
        (target_type, target_id),
    ).fetchone()


def active_termination(conn: sqlite3.Connection, target_type: str, target_id: int) -> sqlite3.Row | None:
    """A termination in force (第二十六条): final unless a regulator reversed it on objection."""
    return conn.execute(
        "SELECT * FROM terminations WHERE target_type = ? AND target_id = ? AND reversed_at IS NULL "
        "ORDER BY id DESC LIMIT 1", (target_type, target_id),
    ).fetchone()


def active_approval(conn: sqlite3.Connection, user: User, approval_id: Any, *, now: Clock) -> Approval:
    """The caller's usable approval, or a refusal that says why (and leaks nothing).

    Checked before planning and again inside the release transaction, so a suspension or an
    expiry takes effect for requests already waiting (第二十二条).
    """
    try:
        ident = fields.ident(approval_id, "approval")
    except NotFound:
        raise NotFound("approval_id must be the number of one of your approvals") from None
    approval = get_approval(conn, ident)
    if approval is None or approval.researcher_id != user.id:
        # SECURITY: another user's approval looks exactly like a missing one.
        raise NotFound(f"you have no approval {ident}")
    ended = active_termination(conn, "user", user.id) or active_termination(conn, "approval", approval.id)
    if ended is not None:
        # 第二十六条: termination is final (unlike a suspension); only an upheld objection reverses it.
        what = "your access was" if ended["target_type"] == "user" else f"approval {approval.id} was"
        raise Suspended(f"{what} terminated (termination {ended['id']}): {ended['reason']}. You may object "
                        f"(POST /api/v1/objections, target_type termination, target_id {ended['id']})",
                        code="terminated")
    if active_suspension(conn, "user", user.id) is not None:
        raise Suspended("your access is suspended; contact the data owner or the regulator", code="suspended")
    if active_suspension(conn, "approval", approval.id) is not None:
        raise Suspended(f"approval {approval.id} is suspended", code="suspended")
    if approval.expires_at and parse_iso(approval.expires_at) <= now():
        raise Suspended(f"approval {approval.id} expired on {approval.expires_at[:10]}", code="expired")
    closed = closed_datasets(conn, approval)
    if closed:
        # 第八条: once a dataset is reclassified not-open, no approval reaches it any more.
        raise Suspended(f"dataset {closed[0]!r} is no longer open; approval {approval.id} cannot use it",
                        code="not_open")
    return approval


def closed_datasets(conn: sqlite3.Connection, approval: Approval) -> list[str]:
    names = approval.datasets
    if not names:
        return []
    marks = ",".join("?" * len(names))
    rows = conn.execute(f"SELECT name FROM datasets WHERE tier = 'not_open' AND name IN ({marks})", names)
    return [r["name"] for r in rows]


def approval_status(conn: sqlite3.Connection, approval: Approval, *, now: Clock) -> str:
    """``active``, ``terminated``, ``suspended`` (approval or researcher) or ``expired``."""
    if active_termination(conn, "approval", approval.id) or active_termination(conn, "user", approval.researcher_id):
        return "terminated"
    if active_suspension(conn, "approval", approval.id) or active_suspension(conn, "user", approval.researcher_id):
        return "suspended"
    if approval.expires_at and parse_iso(approval.expires_at) <= now():
        return "expired"
    return "active"


def suspend(conn: sqlite3.Connection, target_type: str, target_id: int, reason: str, *,
            by: User | None, now: Clock, automatic: bool = False) -> int:
    """Insert a suspension; for a researcher also revoke their console sessions at once."""
    cur = conn.execute(
        "INSERT INTO suspensions (target_type, target_id, reason, created_by, automatic, created_at) "
        "VALUES (?,?,?,?,?,?)",
        (target_type, target_id, reason, by.id if by else None, int(automatic), iso(now())),
    )
    if target_type == "user":
        # SECURITY: server-side sessions end now, not at their next expiry (第二十二条).
        conn.execute("UPDATE web_sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                     (iso(now()), target_id))
    return int(cur.lastrowid)  # type: ignore[arg-type]


def lift(conn: sqlite3.Connection, suspension_id: int, reason: str, *, by: User, now: Clock) -> None:
    conn.execute(
        "UPDATE suspensions SET lifted_at = ?, lifted_by = ?, lift_reason = ? WHERE id = ? AND lifted_at IS NULL",
        (iso(now()), by.id, reason, suspension_id),
    )


# -- applications and approvals (第十五条) ------------------------------------------------------
def create_application(
    conn: sqlite3.Connection, researcher: User, request: dict[str, Any], *, scenario: str, purpose: str,
    commitment_accepted: bool, now: Clock, commitment_text: str = "", provision_method: str = "sandbox",
    owner_id: int | None = None,
) -> int:
    cur = conn.execute(
        "INSERT INTO applications (researcher_id, request_json, scenario, purpose, commitment_accepted, "
        "commitment_text, provision_method, owner_id, status, created_at) VALUES (?,?,?,?,?,?,?,?, 'pending', ?)",
        (researcher.id, json.dumps(request, ensure_ascii=False), scenario, purpose, int(commitment_accepted),
         commitment_text, provision_method, owner_id, iso(now())),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def approve(
    conn: sqlite3.Connection, application_id: int, owner: User, scope: dict[str, Any], *,
    epsilon_total: float, delta_total: float, epsilon_per_query: float, expires_at: str | None,
    now: Clock, signature: str = "", reason: str = "",
) -> int:
    app = conn.execute("SELECT * FROM applications WHERE id = ?", (application_id,)).fetchone()
    conn.execute(
        "UPDATE applications SET status = 'approved', reason = ?, decided_by = ?, decided_at = ? WHERE id = ?",
        (reason, owner.id, iso(now()), application_id),
    )
    cur = conn.execute(
        "INSERT INTO approvals (application_id, researcher_id, owner_id, scope_json, epsilon_total, "
        "delta_total, epsilon_per_query, expires_at, reason, signature, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (application_id, app["researcher_id"], owner.id, json.dumps(scope, ensure_ascii=False),
         epsilon_total, delta_total, epsilon_per_query, expires_at, reason, signature, iso(now())),
    )
    return int(cur.lastrowid)  # type: ignore[arg-type]


def record_owner_decision(conn: sqlite3.Connection, application_id: int, owner: User, decision: str,
                          scope_json: str, terms: dict[str, Any], reason: str, decided_at: str) -> None:
    """One owner's decision on a pending application (an application or an amendment request),
    refused if it was already decided or this owner already answered. Inside the caller's
    transaction, so the check and the insert are one step."""
    status = conn.execute("SELECT status FROM applications WHERE id = ?", (application_id,)).fetchone()[0]
    if status != "pending":
        raise fields.conflict(f"application {application_id} was already decided")
    if conn.execute("SELECT 1 FROM application_decisions WHERE application_id = ? AND owner_id = ?",
                    (application_id, owner.id)).fetchone():
        raise fields.conflict(f"you already decided on application {application_id}")
    conn.execute(
        "INSERT INTO application_decisions (application_id, owner_id, decision, scope_json, epsilon_total, "
        "delta_total, epsilon_per_query, expires_at, reason, decided_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (application_id, owner.id, decision, scope_json, terms.get("epsilon_total"), terms.get("delta_total"),
         terms.get("epsilon_per_query"), terms.get("expires_at"), reason, decided_at))


def reject(conn: sqlite3.Connection, application_id: int, owner: User, reason: str, *, now: Clock) -> None:
    conn.execute(
        "UPDATE applications SET status = 'rejected', reason = ?, decided_by = ?, decided_at = ? WHERE id = ?",
        (reason, owner.id, iso(now()), application_id),
    )


# -- settings (a table that is also the documentation, as datasette does) -----------------------
SETTING_GROUP: Final = SettingGroup(
    "workflow",
    Setting("auto_suspend_refusals", 5,
            "out-of-scope or identifier refusals of one researcher within the window that "
            "suspend them automatically (第二十六条); 0 turns automatic suspension off"),
    Setting("auto_suspend_window_minutes", 60,
            "the sliding window, in minutes, over which those refusals are counted"),
)
SETTINGS: Final[dict[str, Setting]] = SETTING_GROUP.settings


# -- automatic suspension (第二十六条) -----------------------------------------------------------
#: Refusal codes that mean "tried to use data outside the approved scenario".
#: Refusals that count toward automatic suspension: attempts outside the scenario, and
#: SQL text that is not valid Unicode (no editor produces it; a probe of the server does).
OUT_OF_SCOPE_CODES: Final = ("out_of_scope", "identifier_column", "invalid_sql_text")


def _counted_refusals(conn: sqlite3.Connection, user_id: int, since: str) -> int:
    """The out-of-scope and identifier refusals of ``user_id`` since ``since`` and after their last
    reinstatement: the one count both the automatic suspension and its warning use."""
    last_lift = conn.execute(
        "SELECT MAX(lifted_at) FROM suspensions WHERE target_type = 'user' AND target_id = ?", (user_id,)
    ).fetchone()[0]
    placeholders = ",".join("?" * len(OUT_OF_SCOPE_CODES))
    return int(conn.execute(
        f"SELECT COUNT(*) FROM queries WHERE user_id = ? AND status = 'refused' AND error_code IN ({placeholders}) "
        "AND created_at >= ? AND created_at > ?",
        (user_id, *OUT_OF_SCOPE_CODES, since, last_lift or ""),
    ).fetchone()[0])


def after_refusal(conn: sqlite3.Connection, user: User, code: str, *, now: Clock, audit: AuditFn) -> int | None:
    """Hook run inside the refusal's transaction (第二十六条: use outside the scenario ends service).

    Counts the researcher's out-of-scope and identifier refusals within the configured window
    (only those after their last reinstatement, so a lifted suspension is not re-imposed by
    the same old attempts) and suspends the researcher at the threshold. Returns the new
    suspension's id, if any. The suspension shows in the owners' and regulators' lists.
    """
    threshold = SETTING_GROUP.get(conn, "auto_suspend_refusals")
    if code not in OUT_OF_SCOPE_CODES or user.role != "researcher" or threshold <= 0:
        return None
    if active_suspension(conn, "user", user.id) is not None:
        return None
    moment = now()
    window = SETTING_GROUP.get(conn, "auto_suspend_window_minutes")
    since = iso(moment - dt.timedelta(minutes=window))
    count = _counted_refusals(conn, user.id, since)
    if count < threshold:
        return None
    reason = (f"automatic: {count} out-of-scope or identifier refusals within {window} minutes "
              f"(threshold {threshold}, 第二十六条)")
    suspension_id = suspend(conn, "user", user.id, reason, by=None, now=now, automatic=True)
    audit(conn, None, Action.SUSPENSION_CREATED, f"suspension/{suspension_id}", {
        "suspension_id": suspension_id, "target_type": "user", "user": user.username,
        "reason": reason, "automatic": True, "refusals": count, "window_minutes": window,
        "threshold": threshold,
    })
    return suspension_id


def refusal_notice(conn: sqlite3.Connection, user: User, code: str, *, now: Clock) -> str | None:
    """What a researcher must be told with a refusal that counts toward automatic suspension
    (第二十六条; issue 14): how many more such refusals suspend their access, or — if this one
    did — that access is suspended now, why, and how to object. None for other refusals."""
    threshold = SETTING_GROUP.get(conn, "auto_suspend_refusals")
    if code not in OUT_OF_SCOPE_CODES or user.role != "researcher" or threshold <= 0:
        return None
    suspended = active_suspension(conn, "user", user.id)
    if suspended is not None:
        if not suspended["automatic"]:
            return None
        return (f"Your access is now suspended automatically (suspension {suspended['id']}): {suspended['reason']}. "
                f"You may object: POST /api/v1/objections with target_type suspension, target_id {suspended['id']} "
                "(console: Objections).")
    window = SETTING_GROUP.get(conn, "auto_suspend_window_minutes")
    since = iso(now() - dt.timedelta(minutes=window))
    count = _counted_refusals(conn, user.id, since)
    left = threshold - count
    return (f"Warning: {left} more out-of-scope attempt{'s' if left != 1 else ''} within {window} minutes "
            "suspend your access automatically (第二十六条).")


COMMITMENT_TEXT: Final = (
    "安全承诺 Security commitment (第十五、二十、二十一条). I will use the data only for the "
    "approved scenario and purpose; I will not attempt to identify any person, to link results "
    "with other data to do so, or to reconstruct records; I will protect the results and my "
    "credentials; I accept that every query is recorded, and that use outside the scenario or a "
    "broken commitment suspends or ends my access (第二十六条)."
)


COMMITMENT_SHA256: Final = hashlib.sha256(COMMITMENT_TEXT.encode()).hexdigest()


def app_owner_ids(row: sqlite3.Row) -> list[int]:
    """Every owner who decides on the application (several for a cross-organisation study)."""
    ids = json.loads(row["request_json"]).get("owner_ids")
    return list(ids) if ids else ([row["owner_id"]] if row["owner_id"] is not None else [])


# -- deciding ---------------------------------------------------------------------------------
def parse_expiry(value: Any, sb: Context) -> str:
    """An RFC 3339 time or a date, strictly in the future. A date means the end of that day
    in the display zone (``clock.end_of_day``; Asia/Shanghai unless configured, issue 15): an
    approval "until 2027-06-30" holds through that whole day as people in Jinan read it."""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("expires is required: a date (YYYY-MM-DD) or an RFC 3339 time", code="bad_expires")
    text = value.strip()
    try:
        moment = end_of_day(text) if len(text) == 10 else parse_iso(text)
    except ValueError:
        raise BadRequest(f"expires {value!r} is not a date or an RFC 3339 time", code="bad_expires") from None
    if moment.tzinfo is None:
        raise BadRequest("expires needs a time zone (e.g. a trailing Z)", code="bad_expires")
    if moment <= sb.now():
        raise BadRequest("expires must be in the future", code="bad_expires")
    return iso(moment)
