"""Time limits: due dates of applications, objections and rectification orders (issue 14;
第十五、十七、二十五条).

The measures set no number of days; the operator does, in the settings table
(``time_limits.<name>``, editable by an admin in the console or with ``sandbox settings set``,
every change logged as ``setting.changed``). An item gets its due date when it is created, from
the setting then in force (a later change does not move existing due dates). An item still open
after its due date is *overdue*: it is listed on the owner's and the regulator's dashboards
(:func:`overdue`) and raises one ``overdue`` alert (:func:`raise_overdue_alerts`), which the
regulator or the owner can acknowledge or resolve like any other alert.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any, Final

from sandbox.clock import iso, parse_iso
from sandbox.errors import BadRequest
from sandbox.governance import alert_records, jurisdiction
from sandbox.governance.policy import parse_policy
from sandbox.store import authz
from sandbox.store.context import Context
from sandbox.store.settings import Setting, SettingGroup
from sandbox.store.users import User

SETTING_GROUP: Final = SettingGroup(
    "time_limits",
    Setting("application_days", 15,
            "days an owner has to decide an application (第十五条); overdue afterwards", minimum=1),
    Setting("objection_days", 15,
            "days the regulator has to answer an objection (第十七条); overdue afterwards", minimum=1),
    Setting("rectification_days", 30,
            "default days a rectification order gives the owner (第二十五条) when the regulator "
            "names no date", minimum=1),
    Setting("reassessment_days", 365,
            "days after its last co-signed review (or first publication) when a published dataset's "
            "tier is due for reassessment (第十一条); owner and regulator are reminded", minimum=1),
    Setting("update_grace_days", 3,
            "days a published dataset may run past its declared update frequency before a late-update "
            "alert (第十四条: 按照承诺的频率对数据进行更新)", minimum=0),
)
#: Declared update frequencies (policy ``update_frequency``) that are monitored, in days.
FREQUENCY_DAYS: Final = {"daily": 1, "每日": 1, "weekly": 7, "每周": 7, "monthly": 31, "每月": 31,
                         "quarterly": 92, "每季度": 92, "yearly": 366, "annually": 366, "每年": 366}
SETTINGS: Final[dict[str, Setting]] = SETTING_GROUP.settings
KINDS: Final = {"application": "application_days", "objection": "objection_days",
                "rectification": "rectification_days"}


def due_at(conn: sqlite3.Connection, kind: str, now: dt.datetime) -> str:
    """The due date of an item of ``kind`` created ``now`` (ISO, UTC)."""
    return iso(now + dt.timedelta(days=SETTING_GROUP.get(conn, KINDS[kind])))


def parse_due(value: Any, now: dt.datetime) -> str | None:
    """An explicit due date (``YYYY-MM-DD``, end of that day UTC), which must be in the future."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise BadRequest("due must be a date YYYY-MM-DD", code="bad_due")
    try:
        day = dt.date.fromisoformat(value[:10])
    except ValueError:
        raise BadRequest("due must be a date YYYY-MM-DD", code="bad_due") from None
    moment = dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=dt.UTC)
    if moment <= now:
        raise BadRequest("due must be a date in the future", code="bad_due")
    return iso(moment)


#: Per kind of open item with a due date: the query for those past it (``who`` answers for the
#: item) and how the item is described. Declarative, so each kind is read the same way.
_OVERDUE_ITEMS: Final = (
    ("application", "SELECT id, owner_id AS who, due_at, status FROM applications WHERE status = 'pending' "
                    "AND due_at IS NOT NULL AND due_at < ? ORDER BY due_at", "application {id} awaits a decision"),
    ("objection", "SELECT id, respondent_id AS who, due_at, status FROM objections WHERE status = 'open' "
                  "AND due_at IS NOT NULL AND due_at < ? ORDER BY due_at", "objection {id} awaits an answer"),
    ("rectification", "SELECT id, owner_id AS who, due_at, status FROM rectification_orders WHERE status != 'closed' "
                      "AND due_at < ? ORDER BY due_at", "rectification order {id} is {status}, not signed off"),
    ("public_objection", "SELECT id, respondent_id AS who, due_at, status FROM public_objections "
                         "WHERE status = 'open' AND due_at IS NOT NULL AND due_at < ? ORDER BY due_at",
     "public objection {id} awaits an answer"),
)


def overdue(conn: sqlite3.Connection, user: User, now: dt.datetime) -> list[dict[str, Any]]:
    """Open items past their due date that ``user`` answers for or supervises: pending
    applications (their owner; regulators), open objections (regulators; the respondent),
    rectification orders not closed (their owner; regulators)."""
    moment = iso(now)
    out: list[dict[str, Any]] = []
    reg = user.role == "regulator"
    for kind, sql, what in _OVERDUE_ITEMS:
        for r in conn.execute(sql, (moment,)):
            if reg or r["who"] == user.id:
                out.append({"kind": kind, "id": r["id"], "due_at": r["due_at"], "owner_id": r["who"],
                            "what": what.format(id=r["id"], status=r["status"])})
    out += [d for d in dataset_schedule(conn, now) if d["overdue"] and (reg or d["owner_id"] == user.id)]
    return out


def dataset_schedule(conn: sqlite3.Connection, now: dt.datetime) -> list[dict[str, Any]]:
    """Per published dataset: when its tier is due for reassessment (第十一条) and, for a monitored
    update frequency, when its next update is due (第十四条). Items of kind ``reassessment`` and
    ``update`` with ``due_at`` and ``overdue``."""

    reassess = SETTING_GROUP.get(conn, "reassessment_days")
    grace = SETTING_GROUP.get(conn, "update_grace_days")
    out = []
    rows = conn.execute(
        "SELECT d.id, d.name, d.owner_id, d.tier, MIN(v.published_at) AS first_published, "
        "MAX(v.created_at) AS newest, (SELECT policy_toml FROM dataset_versions WHERE dataset_id = d.id "
        "AND published_at IS NOT NULL ORDER BY version DESC LIMIT 1) AS policy, "
        "(SELECT MAX(decided_at) FROM publication_reviews WHERE dataset_id = d.id AND status = 'approved') AS reviewed "
        "FROM datasets d JOIN dataset_versions v ON v.dataset_id = d.id AND v.published_at IS NOT NULL "
        "GROUP BY d.id ORDER BY d.name").fetchall()
    for r in rows:
        since = max(x for x in (r["first_published"], r["reviewed"]) if x)
        due = parse_iso(since) + dt.timedelta(days=reassess)
        out.append({"kind": "reassessment", "id": r["id"], "dataset": r["name"], "due_at": iso(due),
                    "owner_id": r["owner_id"], "overdue": due < now,
                    "what": f"the tier of {r['name']} ({r['tier']}) is due for reassessment"})
        freq = parse_policy(r["policy"], r["name"]).update_frequency.strip().lower()
        days = FREQUENCY_DAYS.get(freq)
        if days is not None:
            due = parse_iso(r["newest"]) + dt.timedelta(days=days + grace)
            out.append({"kind": "update", "id": r["id"], "dataset": r["name"], "due_at": iso(due),
                        "owner_id": r["owner_id"], "overdue": due < now,
                        "what": f"{r['name']} promises {freq} updates; no new version since {r['newest'][:10]}"})
    return out


def raise_overdue_alerts(sb: Context) -> list[dict[str, Any]]:
    """One ``overdue`` alert per overdue item (deduplicated by kind and id)."""

    conn = sb.conn()
    regulator = User(0, "system", "regulator", "")
    raised = []
    for item in overdue(conn, regulator, sb.now()):
        # a dataset's reminders recur: one per due date (a new review or version moves it)
        key = (f"overdue:{item['kind']}:{item['id']}" if item["kind"] not in ("reassessment", "update")
               else f"overdue:{item['kind']}:{item['id']}:{item['due_at'][:10]}")
        cand = alert_records.Candidate(
            kind="overdue", dedupe_key=key, severity="warning",
            researcher_id=None, approval_id=None,
            summary=f"overdue since {item['due_at'][:10]}: {item['what']}",
            details={"item": item["kind"], "id": item["id"], "due_at": item["due_at"],
                     **({"dataset": item["dataset"]} if "dataset" in item else {})},
        )
        subject = (f"dataset/{item['dataset']}" if "dataset" in item else f"{item['kind']}/{item['id']}")
        got = alert_records.raise_alert(sb, cand, owner_id=item["owner_id"], subject=subject)
        if got:
            raised.append(got)
    return raised


def annotate(row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Add ``overdue`` to a view holding ``due_at`` and ``status`` (open states only)."""
    due = row.get("due_at")
    row["overdue"] = bool(due) and row.get("status") in ("pending", "open", "submitted") and parse_iso(due) < now
    return row


def list_overdue(sb: Context, user: User | None) -> list[dict[str, Any]]:
    """``GET /api/v1/overdue``: the caller's overdue items (owner) or all (regulator)."""

    authz.check_role("overdue.list", user)
    assert user is not None
    conn = sb.conn()
    items = overdue(conn, user, sb.now())
    if jurisdiction.is_district(conn, user):  # 第五条: its district's items only
        items = [i for i in items if jurisdiction.covers(conn, user, [i["dataset"]] if i.get("dataset") else
                                                         jurisdiction.subject_datasets(conn, f"{i['kind']}/{i['id']}"))]
    return [{k: v for k, v in item.items() if k not in ("owner_id", "overdue")} for item in items]
