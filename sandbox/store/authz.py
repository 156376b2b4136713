"""Who may do what to which object: the permission table as data, and one pure decision.

Roles (第十五、十七、二十二条; issue 6):

- ``researcher`` (利用主体): their own applications, approvals, results and objections;
- ``owner`` (开放主体): applications, approvals, usage and suspensions of their own datasets;
- ``regulator`` (大数据主管部门): reads everything; writes only suspensions, tier decisions
  and objection answers;
- ``admin``: user accounts and nothing else;
- ``anonymous``: no login; the public catalog, transparency page and open downloads.

A grant names the *relations* to an object that suffice (``"any"``: every object). The
service layer computes the caller's relations to one object from the store (e.g.
``{"applicant"}`` for the researcher who submitted an application) and asks
:func:`decide`. The answer is ``allow``, ``forbidden`` or ``not_found``:

- a role with no grant at all for the action gets ``forbidden`` before any object is looked
  up, so the answer says nothing about the object;
- a role with a grant that does not cover this object gets ``forbidden`` only if it may
  *read* the object anyway (it already knows it exists), otherwise ``not_found`` — the same
  answer as for an object that does not exist (SECURITY: 403/404 never reveal whether
  another user's object exists).

>>> decide("application.read", "researcher", {"applicant"})
'allow'
>>> decide("application.read", "researcher", set())
'not_found'
>>> decide("application.decide", "researcher", {"applicant"})
'forbidden'
>>> decide("application.decide", "owner", set())
'not_found'
>>> decide("application.decide", "regulator", set())
'forbidden'
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from sandbox.errors import Forbidden, NotFound, Unauthorized

Role = Literal["researcher", "owner", "regulator", "admin", "anonymous"]
Decision = Literal["allow", "forbidden", "not_found"]

ROLES: Final[tuple[Role, ...]] = ("researcher", "owner", "regulator", "admin", "anonymous")
ANY: Final = "any"

#: Relations the service layer computes between a user and one object.
RELATIONS: Final[Mapping[str, str]] = {
    "any": "every object",
    "self": "the object is the caller's own account",
    "applicant": "the caller submitted the application / holds the approval / is the suspended researcher",
    "dataset_owner": "the caller owns the dataset(s) the object concerns",
    "creator": "the caller created the suspension",
    "automatic": "an automatic suspension (第二十六条) concerning the caller's datasets",
    "party": "the caller filed the objection or made the decision it contests",
    "public": "a published dataset of tier conditional or unconditional (第八、十四条)",
    "open": "a published dataset of tier unconditional (无条件开放)",
}


@dataclass(frozen=True)
class Rule:
    """``grants[role]``: relations that suffice; ``reads``: the action that makes it visible."""

    summary: str
    grants: Mapping[str, frozenset[str]] = field(default_factory=dict)
    reads: str | None = None


def _g(**grants: str) -> dict[str, frozenset[str]]:
    return {role: frozenset(rel.split()) for role, rel in grants.items()}


RULES: Final[Mapping[str, Rule]] = {
    # -- applications and approvals (第十五条) ---------------------------------------------
    "application.create": Rule("submit an application", _g(researcher=ANY)),
    "application.list": Rule("list applications (own / own datasets' / all)",
                             _g(researcher=ANY, owner=ANY, regulator=ANY)),
    "application.read": Rule("read one application",
                             _g(researcher="applicant", owner="dataset_owner", regulator=ANY)),
    "application.decide": Rule("approve or reject an application", _g(owner="dataset_owner"),
                               reads="application.read"),
    "approval.list": Rule("list approvals (own / own datasets' / all)",
                          _g(researcher=ANY, owner=ANY, regulator=ANY)),
    "approval.read": Rule("read one approval, its signature and its budget",
                          _g(researcher="applicant", owner="dataset_owner", regulator=ANY)),
    # -- suspensions (第二十二、二十六条) -------------------------------------------------------
    "approval.suspend": Rule("suspend an approval", _g(owner="dataset_owner", regulator=ANY),
                             reads="approval.read"),
    "researcher.suspend": Rule("suspend a researcher", _g(owner="dataset_owner", regulator=ANY)),
    "suspension.list": Rule("list suspensions (own / own datasets' / all)",
                            _g(researcher=ANY, owner=ANY, regulator=ANY)),
    "suspension.read": Rule("read one suspension",
                            _g(researcher="applicant", owner="dataset_owner", regulator=ANY)),
    "suspension.lift": Rule("lift a suspension", _g(owner="creator automatic", regulator=ANY),
                            reads="suspension.read"),
    # -- objections (第十七条) ------------------------------------------------------------------
    "objection.create": Rule("file an objection against a decision", _g(researcher=ANY, owner=ANY)),
    "objection.list": Rule("list objections (own / all)", _g(researcher=ANY, owner=ANY, regulator=ANY)),
    "objection.read": Rule("read one objection", _g(researcher="party", owner="party", regulator=ANY)),
    "objection.answer": Rule("answer an objection", _g(regulator=ANY), reads="objection.read"),
    # -- termination (第二十六条) and rectification orders (第二十五条); issue 14 ------------------
    "termination.create": Rule("terminate an approval or a researcher",
                               _g(owner="dataset_owner", regulator=ANY)),
    "termination.list": Rule("list terminations (own / own datasets' / all)",
                             _g(researcher=ANY, owner=ANY, regulator=ANY)),
    "termination.read": Rule("read one termination",
                             _g(researcher="applicant", owner="dataset_owner", regulator=ANY)),
    "termination.reverse": Rule("reverse a termination on an objection", _g(regulator=ANY)),
    "rectification.create": Rule("order a data owner to rectify by a date", _g(regulator=ANY)),
    "rectification.list": Rule("list rectification orders (own / all)", _g(owner=ANY, regulator=ANY)),
    "rectification.read": Rule("read a rectification order", _g(owner="dataset_owner", regulator=ANY)),
    "rectification.respond": Rule("report what was rectified", _g(owner="dataset_owner"),
                                  reads="rectification.read"),
    "rectification.close": Rule("sign off (close) a rectification order", _g(regulator=ANY),
                                reads="rectification.read"),
    "organisation.manage": Rule("create organisations and place users in them", _g(admin=ANY)),
    "organisation.list": Rule("list organisations", _g(researcher=ANY, owner=ANY, regulator=ANY, admin=ANY)),
    "public_objection.list": Rule("list objections from the public (own datasets' / all)",
                                  _g(owner=ANY, regulator=ANY)),
    "public_objection.answer": Rule("answer an objection from the public", _g(owner=ANY, regulator=ANY)),
    "opening_plan.publish": Rule("publish an annual opening plan (第十三条)", _g(owner=ANY)),
    "opening_plan.comments": Rule("read the public comments on an opening plan", _g(owner=ANY, regulator=ANY)),
    "dataset.legal_basis": Rule("record a dataset's legal basis or consent reference (第二十条)",
                                _g(owner="dataset_owner"), reads="dataset.read"),
    "dataset.classify": Rule("record a dataset's classification and grade (第六条)",
                             _g(owner="dataset_owner", regulator=ANY), reads="dataset.read"),
    "overdue.list": Rule("list overdue items (own / all)", _g(owner=ANY, regulator=ANY)),
    "setting.list": Rule("read the operator settings", _g(admin=ANY, regulator=ANY)),
    "setting.change": Rule("change an operator setting", _g(admin=ANY)),
    # -- alerts (第二十二条: anomalies surfaced to supervision) -----------------------------------
    "alert.list": Rule("list alerts (own approvals' / all)", _g(owner=ANY, regulator=ANY)),
    # -- datasets, catalog, tiers, risk (第八、十、十一、十二、十四条) ----------------------------------
    "catalog.read": Rule("read the public catalog",
                         _g(anonymous=ANY, researcher=ANY, owner=ANY, regulator=ANY, admin=ANY)),
    "dataset.read": Rule("see a catalog entry",
                         _g(anonymous="public", researcher="public", owner="public dataset_owner",
                            regulator=ANY, admin="public")),
    "dataset.download": Rule("download the data file",
                             _g(anonymous="open", researcher="open", owner="open", regulator="open",
                                admin="open"), reads="dataset.read"),
    "dataset.tier": Rule("change a dataset's tier", _g(owner="dataset_owner", regulator=ANY),
                         reads="dataset.read"),
    "dataset.risk.read": Rule("read a dataset's risk report", _g(owner="dataset_owner", regulator=ANY),
                              reads="dataset.read"),
    # issue 13: exact shares and percentiles of the data (PRIVACY: never researchers)
    "dataset.bounding.read": Rule("read a dataset's bounding report", _g(owner="dataset_owner", regulator=ANY),
                                  reads="dataset.read"),
    "dataset.risk.ack": Rule("acknowledge a risk report and publish", _g(owner="dataset_owner"),
                             reads="dataset.read"),
    # issue 14: raising a tier or publishing needs the regulator's co-signature (第十、十二条)
    "review.list": Rule("list publication and tier reviews (own datasets' / all)",
                        _g(owner=ANY, regulator=ANY)),
    "review.read": Rule("read a publication or tier review", _g(owner="dataset_owner", regulator=ANY)),
    "review.decide": Rule("co-sign or reject a publication or tier review", _g(regulator=ANY),
                          reads="review.read"),
    "review.answer": Rule("answer a regulator's tier proposal", _g(owner="dataset_owner"), reads="review.read"),
    "review.expert": Rule("record the expert review of a disputed tier proposal", _g(regulator=ANY),
                          reads="review.read"),
    # 第十条: a dispute is settled by the city bureau (its jurisdiction is checked by the service)
    "review.city_decide": Rule("settle a disputed tier proposal (city bureau)", _g(regulator=ANY),
                               reads="review.read"),
    # issue 12: the collusion cap is the owner's decision alone (the regulator may suspend)
    "dataset.budget_cap": Rule("set a dataset's total privacy budget (collusion cap)",
                               _g(owner="dataset_owner"), reads="dataset.read"),
    "transparency.read": Rule("read the transparency page",
                              _g(anonymous=ANY, researcher=ANY, owner=ANY, regulator=ANY, admin=ANY)),
    # -- accounts ---------------------------------------------------------------------------
    "user.create": Rule("create a user", _g(admin=ANY)),
    "user.token.rotate": Rule("replace a user's API tokens",
                              _g(admin=ANY, researcher="self", owner="self", regulator="self")),
    "key.rotate_master": Rule("rotate the workspace master key", _g(admin=ANY)),
}


def has_grant(action: str, role: str) -> bool:
    """Whether ``role`` may ever do ``action`` (on some object).

    >>> has_grant("objection.answer", "owner")
    False
    """
    return role in RULES[action].grants


def decide(action: str, role: str, relations: Set[str]) -> Decision:
    """The decision for a caller with ``relations`` to an object that exists.

    >>> decide("suspension.lift", "owner", {"dataset_owner"})
    'forbidden'
    >>> decide("dataset.download", "anonymous", {"public"})
    'forbidden'
    >>> decide("dataset.download", "anonymous", set())
    'not_found'
    """
    rule = RULES[action]
    grant = rule.grants.get(role)
    if grant is None:
        return "forbidden"
    if ANY in grant or grant & set(relations):
        return "allow"
    if rule.reads is not None and decide(rule.reads, role, relations) == "allow":
        return "forbidden"
    return "not_found"


class HasRole(Protocol):
    """What the checks need of a ``sandbox.store.users.User``."""

    @property
    def role(self) -> str: ...


def role_of(user: HasRole | None) -> str:
    """The role of a user (``anonymous`` for no login)."""
    return "anonymous" if user is None else user.role


def check_role(action: str, user: HasRole | None) -> None:
    """Refuse before any lookup when the caller's role never may do ``action``.

    No login → 401 (log in first); a logged-in role without a grant → 403. Neither depends
    on any object, so neither reveals one.
    """
    role = role_of(user)
    if has_grant(action, role):
        return
    if user is None:
        raise Unauthorized("this needs a login; send the header Authorization: Bearer <token>")
    raise Forbidden(f"the {role} role may not {RULES[action].summary}")


def check(action: str, user: HasRole | None, relations: Set[str], *, missing: str) -> None:
    """Raise unless :func:`decide` allows; ``missing`` is the message for a hidden object,
    the very one the caller uses for an object that does not exist."""
    check_role(action, user)
    outcome = decide(action, role_of(user), relations)
    if outcome == "not_found":
        raise NotFound(missing)
    if outcome == "forbidden":
        raise Forbidden(f"you may not {RULES[action].summary} here")
