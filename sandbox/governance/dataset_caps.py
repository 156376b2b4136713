"""The collusion cap: one total privacy budget per dataset, across all researchers, all
approvals and all versions of the dataset (issue 12, finding 7; DESIGN.md "Accounting").

Why: each approval bounds what one project learns, but researchers can pool their answers,
and one researcher can hold several approvals. What all of them together learn about one
person of the dataset is bounded by the sum of every release on it; the owner caps that
sum here. A new version of the same dataset describes (mostly) the same people, so its
releases count against the same cap: *spent* is every ledger row linked (``ledger_datasets``)
to any version of the dataset's name.

Accounting: basic composition, Σε ≤ ε_cap and Σδ ≤ δ_cap over the (ε, δ) view of each
release (``privacy.accounting.Charge``). It is valid when each ε is chosen after seeing the
earlier answers and the stopping rule depends on them (Rogers, Roth, Ullman, Vadhan 2016,
"Privacy odometers and filters", basic composition is a valid filter), which is exactly how
many researchers' queries arrive. It is also the fixed route ``privacy.accounting.choose_route``
gives for a cap's terms (no per-query cap → basic). It is looser than an approval's zCDP
route for many small queries.

Where the cap in force comes from (the newest decision wins):

1. a version's policy file declaring ``[dataset] budget_cap = {epsilon = E, delta = D}``
   (:mod:`sandbox.governance.policy`); a version whose policy declares none changes nothing;
2. the owner, through ``PUT /api/v1/datasets/<name>/budget-cap``, the owner console or
   ``sandbox datasets cap``: a row in ``dataset_budget_cap_changes`` (append-only, with who,
   when, why and the audit entry ``dataset.budget_cap_set``); it holds until a later one,
   or until a version registered after it declares a cap in its policy;
3. otherwise :data:`DEFAULT_EPSILON`, :data:`DEFAULT_DELTA` — never unlimited.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from audit_log.actions import Action
from privacy.accounting import TOLERANCE, Charge
from sandbox.clock import iso
from sandbox.errors import BudgetExceeded, NotFound
from sandbox.governance import dataset_access
from sandbox.governance.policy import CAP_DELTA_MAX, CAP_EPSILON_MAX, parse_policy
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.ledger_sums import ledger_sums
from sandbox.store.users import User
from sandbox.store.workspace import transaction

if TYPE_CHECKING:
    from sandbox.governance.datasets import DatasetVersion

__all__ = ["DEFAULT_DELTA", "DEFAULT_EPSILON", "Cap", "CapStatus", "check", "ensure_within", "history",
           "log_policy_cap", "read", "set_cap", "status"]

#: The cap when neither a policy nor the owner has set one (docs/privacy.md, "The collusion
#: cap"): twice the demo approval's ε, about the total the 2020 US Census redistricting
#: release spent (ρ = 2.63 zCDP, ε ≈ 17 at δ = 10⁻¹⁰); δ = 100 releases at the largest
#: per-query δ (``privacy.accounting.per_query_delta``: 10⁻⁷).
DEFAULT_EPSILON: Final = 20.0
DEFAULT_DELTA: Final = 1e-5

Source = Literal["default", "policy", "owner", "migration"]


@dataclass(frozen=True)
class Cap:
    """One decision on a dataset's cap (or the default, when there is none)."""

    epsilon_total: float
    delta_total: float
    source: Source
    set_by: str | None = None
    set_at: str | None = None
    reason: str = ""
    version: int | None = None  # source "policy": the version whose policy file declared it
    audit_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"epsilon_total": self.epsilon_total, "delta_total": self.delta_total, "source": self.source,
                "set_by": self.set_by, "set_at": self.set_at, "reason": self.reason, "version": self.version,
                "audit_seq": self.audit_seq}


DEFAULT_CAP: Final = Cap(DEFAULT_EPSILON, DEFAULT_DELTA, "default")


@dataclass(frozen=True)
class CapStatus:
    """The cap in force on one dataset and what every release on any version has spent."""

    dataset: str
    cap: Cap
    epsilon_spent: float
    delta_spent: float
    releases: int

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.cap.epsilon_total - self.epsilon_spent)

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.cap.delta_total - self.delta_spent)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "epsilon": {"total": self.cap.epsilon_total, "spent": self.epsilon_spent,
                        "remaining": self.epsilon_remaining},
            "delta": {"total": self.cap.delta_total, "spent": self.delta_spent, "remaining": self.delta_remaining},
            "releases": self.releases,
            "accounting": "basic",
            "cap": self.cap.as_dict(),
        }


# -- the pure check --------------------------------------------------------------------------------
def check(st: CapStatus, charge: Charge) -> None:
    """Refuse ``charge`` if, with it, the releases on the dataset would exceed its cap.

    >>> st = CapStatus("residents", Cap(2.0, 1e-6, "owner"), 1.5, 0.0, 3)
    >>> check(st, Charge(0.5))
    >>> check(st, Charge(0.6))
    Traceback (most recent call last):
    ...
    sandbox.errors.BudgetExceeded: dataset 'residents' has a collusion cap of ε = 2, δ = 1e-06 across all researchers, approvals and versions; ε = 1.5, δ = 0 is spent and this query needs ε = 0.6, δ = 0; the data owner can raise the cap
    """
    # PRIVACY: basic composition, valid for adaptively chosen ε (module docstring).
    cap = st.cap
    if (st.epsilon_spent + charge.epsilon <= cap.epsilon_total + TOLERANCE
            and st.delta_spent + charge.delta <= cap.delta_total + TOLERANCE):
        return
    raise BudgetExceeded(
        f"dataset {st.dataset!r} has a collusion cap of ε = {cap.epsilon_total:g}, δ = {cap.delta_total:g} "
        f"across all researchers, approvals and versions; ε = {st.epsilon_spent:g}, δ = {st.delta_spent:g} "
        f"is spent and this query needs ε = {charge.epsilon:g}, δ = {charge.delta:g}; "
        "the data owner can raise the cap",
        code="dataset_budget_exceeded",
    )


# -- reading ----------------------------------------------------------------------------------------
def _dataset_row(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no dataset named {name!r}")
    return row


def _username(conn: sqlite3.Connection, user_id: int | None) -> str | None:
    return fields.username_of(conn, user_id)


def _decisions(conn: sqlite3.Connection, row: sqlite3.Row, *, before_version_id: int | None = None) -> list[Cap]:
    """Every decision on the cap, oldest first (``before_version_id``: as it stood before that
    version was registered)."""
    dataset_id = row["id"]
    limit = before_version_id if before_version_id is not None else 2**63 - 1
    keyed: list[tuple[tuple[int, int, int], Cap]] = []
    owner = _username(conn, row["owner_id"])
    for v in conn.execute("SELECT id, version, policy_toml, created_at FROM dataset_versions "
                          "WHERE dataset_id = ? AND id < ? ORDER BY id", (dataset_id, limit)):
        declared = parse_policy(v["policy_toml"], row["name"]).budget_cap
        if declared is not None:
            keyed.append(((v["id"], 0, 0), Cap(declared[0], declared[1], "policy", owner, v["created_at"],
                                               f"policy of version {v['version']}", v["version"])))
    for c in conn.execute("SELECT * FROM dataset_budget_cap_changes WHERE dataset_id = ? "
                          "AND COALESCE(after_version_id, 0) < ? ORDER BY id", (dataset_id, limit)):
        # set after version ``after_version_id`` was registered: after that version's policy
        keyed.append(((c["after_version_id"] or 0, 1, c["id"]),
                      Cap(c["epsilon_total"], c["delta_total"], c["source"], _username(conn, c["set_by"]),
                          c["created_at"], c["reason"], None, c["audit_seq"])))
    return [cap for _key, cap in sorted(keyed, key=lambda kc: kc[0])]


def _spent(conn: sqlite3.Connection, dataset_id: int) -> tuple[float, float, int]:
    t = ledger_sums(conn, dataset_id=dataset_id)[()]
    return t.epsilon, t.delta, t.releases


def _status(conn: sqlite3.Connection, row: sqlite3.Row, *, before_version_id: int | None = None) -> CapStatus:
    decisions = _decisions(conn, row, before_version_id=before_version_id)
    eps, delta, releases = _spent(conn, row["id"])
    return CapStatus(row["name"], decisions[-1] if decisions else DEFAULT_CAP, eps, delta, releases)


def status(conn: sqlite3.Connection, name: str) -> CapStatus:
    """The cap in force on dataset ``name`` and what has been spent on all its versions."""
    return _status(conn, _dataset_row(conn, name))


def history(conn: sqlite3.Connection, name: str) -> list[Cap]:
    """Every decision on the cap of ``name``, newest first (empty: the default holds)."""
    return list(reversed(_decisions(conn, _dataset_row(conn, name))))


def ensure_within(conn: sqlite3.Connection, version_ids: Iterable[int], charge: Charge) -> None:
    """Refuse (``BudgetExceeded``, code ``dataset_budget_exceeded``) unless ``charge`` fits the
    cap of every dataset whose versions ``version_ids`` the query reads.

    SECURITY: call inside the write transaction that records the charge, so concurrent
    queries cannot both pass against the same spent total.
    """
    ids = sorted(set(version_ids))
    if not ids:
        return
    marks = ",".join("?" * len(ids))
    rows = conn.execute(
        f"SELECT DISTINCT d.* FROM datasets d JOIN dataset_versions v ON v.dataset_id = d.id "
        f"WHERE v.id IN ({marks}) ORDER BY d.name", ids).fetchall()
    for row in rows:
        check(_status(conn, row), charge)


# -- the owner's decisions (API, console, CLI) ----------------------------------------------------
def _visible(sb: Context, user: User | None, action: str, name: str) -> sqlite3.Row:
    authz.check_role(action, user)
    conn = sb.conn()
    missing = f"no dataset named {name!r}"
    row = conn.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(missing)
    authz.check(action, user, dataset_access.relations(conn, user, row), missing=missing)
    return row


def read(sb: Context, user: User | None, name: str) -> dict[str, Any]:
    """``GET /api/v1/datasets/<name>/budget-cap``: the cap, the spent total and the history
    (whoever may see the catalog entry; the transparency page shows the same figures)."""
    row = _visible(sb, user, "dataset.read", name)
    conn = sb.conn()
    return {**_status(conn, row).as_dict(),
            "history": [c.as_dict() for c in reversed(_decisions(conn, row))],
            "default": {"epsilon_total": DEFAULT_EPSILON, "delta_total": DEFAULT_DELTA}}


def set_cap(sb: Context, user: User | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PUT /api/v1/datasets/<name>/budget-cap`` ``{"epsilon_total", "delta_total", "reason"}``:
    only the dataset's owner; recorded and audit-logged (``dataset.budget_cap_set``) with the
    old and new values. A cap below what is already spent is allowed: it stops every query."""
    row = _visible(sb, user, "dataset.budget_cap", name)
    assert user is not None
    epsilon = fields.number(body, "epsilon_total", low=0, high=CAP_EPSILON_MAX)
    delta = fields.number(body, "delta_total", low=0, high=CAP_DELTA_MAX, low_open=False)
    reason = fields.text(body, "reason")
    conn = sb.conn()
    with transaction(conn):
        old = _status(conn, row)
        newest = conn.execute("SELECT MAX(id) FROM dataset_versions WHERE dataset_id = ?",
                              (row["id"],)).fetchone()[0]
        entry = sb.audit(conn, user, Action.DATASET_BUDGET_CAP_SET, f"dataset/{row['name']}", {
            "dataset": row["name"], "source": "owner", "reason": reason,
            "old": {"epsilon_total": old.cap.epsilon_total, "delta_total": old.cap.delta_total,
                    "source": old.cap.source},
            "new": {"epsilon_total": epsilon, "delta_total": delta},
            "spent": {"epsilon": old.epsilon_spent, "delta": old.delta_spent, "releases": old.releases},
        })
        conn.execute(
            "INSERT INTO dataset_budget_cap_changes (dataset_id, epsilon_total, delta_total, source, "
            "after_version_id, reason, set_by, audit_seq, created_at) VALUES (?,?,?, 'owner', ?,?,?,?,?)",
            (row["id"], epsilon, delta, newest, reason, user.id, entry.seq, iso(sb.now())),
        )
        new = _status(conn, row)
    return {**new.as_dict(), "audit_seq": entry.seq,
            "exhausted": new.epsilon_remaining <= 0 or new.delta_spent > new.cap.delta_total}


def log_policy_cap(sb: Context, conn: sqlite3.Connection, actor: User | None, version: DatasetVersion) -> None:
    """Audit-log the cap a newly registered version's policy declares (``dataset.budget_cap_set``,
    source ``policy``) when it changes the cap in force. Call in the registration transaction,
    after ``datasets.register_dataset``; the version's stored policy is the record itself."""
    declared = version.policy.budget_cap
    if declared is None:
        return
    row = _dataset_row(conn, version.name)
    old = _status(conn, row, before_version_id=version.version_id)
    if (old.cap.epsilon_total, old.cap.delta_total) == declared:
        return
    sb.audit(conn, actor, Action.DATASET_BUDGET_CAP_SET, f"dataset/{version.name}", {
        "dataset": version.name, "source": "policy", "version": version.version,
        "reason": f"policy of version {version.version}",
        "old": {"epsilon_total": old.cap.epsilon_total, "delta_total": old.cap.delta_total,
                "source": old.cap.source},
        "new": {"epsilon_total": declared[0], "delta_total": declared[1]},
        "spent": {"epsilon": old.epsilon_spent, "delta": old.delta_spent, "releases": old.releases},
    })
