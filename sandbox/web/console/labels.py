"""Audit action names in the reader's language (issue 15: "codes such as ``query.refused``
are shown as they are"). The code stays beside the label (it is what the log, the API and
the filters use); unknown codes — actions added later — fall back to the code itself, and
``tests/test_console_labels.py`` fails when an action of the catalogue
(``audit_log.actions.Action``) has no label.
"""

from __future__ import annotations

from typing import Final

from flask_babel import lazy_gettext as _l

from audit_log.actions import Action

ACTION_LABELS: Final = {
    Action.ALERT_HANDLED: _l("Alert handled"),
    Action.ALERT_RAISED: _l("Alert raised"),
    Action.ALERT_REPEATED: _l("Alert repeated"),
    Action.APPLICATION_OWNER_DECIDED: _l("Application decided by an owner"),
    Action.APPLICATION_REJECTED: _l("Application rejected"),
    Action.APPLICATION_SUBMITTED: _l("Application submitted"),
    Action.APPROVAL_AMENDED: _l("Approval amended"),
    Action.APPROVAL_GRANTED: _l("Approval granted"),
    Action.DATASET_BUDGET_CAP_SET: _l("Dataset budget cap set"),
    Action.DATASET_LEGAL_BASIS_SET: _l("Dataset legal basis set"),
    Action.DATASET_CLASSIFIED: _l("Dataset classified"),
    Action.DATASET_DOWNLOADED: _l("Dataset downloaded"),
    Action.DATASET_PUBLISHED: _l("Dataset published"),
    Action.DATASET_REGISTERED: _l("Dataset registered"),
    Action.DATASET_RISK_ACKNOWLEDGED: _l("Risk scan acknowledged"),
    Action.DATASET_TIER_CHANGED: _l("Dataset tier changed"),
    Action.KEY_MASTER_ROTATED: _l("Master key rotated"),
    Action.KEY_ROTATED: _l("Log signing key rotated"),
    Action.OBJECTION_ANSWERED: _l("Objection answered"),
    Action.OBJECTION_FILED: _l("Objection filed"),
    Action.OPENING_PLAN_COMMENTED: _l("Opening plan commented"),
    Action.OPENING_PLAN_PUBLISHED: _l("Opening plan published"),
    Action.ORGANISATION_CREATED: _l("Organisation created"),
    Action.ORGANISATION_MEMBER_SET: _l("Organisation member set"),
    Action.PUBLIC_OBJECTION_ANSWERED: _l("Public objection answered"),
    Action.PUBLIC_OBJECTION_FILED: _l("Public objection filed"),
    Action.PUBLICATION_CITY_DECIDED: _l("Tier dispute decided by the city bureau"),
    Action.PUBLICATION_DECLINED: _l("Publication declined"),
    Action.PUBLICATION_EXPERT_REVIEWED: _l("Publication reviewed by experts"),
    Action.PUBLICATION_PROPOSED: _l("Publication proposed"),
    Action.PUBLICATION_REJECTED: _l("Publication rejected"),
    Action.PUBLICATION_SUBMITTED: _l("Publication submitted"),
    Action.QUERY_DUMMY: _l("Dummy query"),
    Action.QUERY_FAILED: _l("Query failed"),
    Action.QUERY_REFUSED: _l("Query refused"),
    Action.QUERY_RELEASED: _l("Query released"),
    Action.QUERY_STARTED: _l("Query started"),
    Action.RECTIFICATION_CLOSED: _l("Rectification closed"),
    Action.RECTIFICATION_ORDERED: _l("Rectification ordered"),
    Action.RECTIFICATION_RETURNED: _l("Rectification returned"),
    Action.RECTIFICATION_SUBMITTED: _l("Rectification submitted"),
    Action.SETTING_CHANGED: _l("Setting changed"),
    Action.SUSPENSION_CREATED: _l("Suspension created"),
    Action.SUSPENSION_LIFTED: _l("Suspension lifted"),
    Action.TERMINATION_CREATED: _l("Termination"),
    Action.TERMINATION_REVERSED: _l("Termination reversed"),
    Action.USER_CREATED: _l("User created"),
    Action.USER_REGISTERED: _l("User registered"),
    Action.USER_TOKEN_CREATED: _l("API token created"),
    Action.USER_TOKEN_REVOKED: _l("API token revoked"),
    Action.USER_TOKEN_ROTATED: _l("API token rotated"),
}


def action_label(code: str | None) -> str:
    """The action's name in the reader's language, or the code when it has none yet."""
    label = ACTION_LABELS.get(code or "")
    return str(label) if label is not None else (code or "")


#: The three tiers (第十条) as the pages name them (the same words as the ``tier`` macro).
TIER_LABELS: Final = {
    "conditional": _l("Conditional"), "unconditional": _l("Open"), "not_open": _l("Not open"),
}


def tier_label(code: str | None) -> str:
    """The tier's name in the reader's language, or the code when it is not one of the three."""
    label = TIER_LABELS.get(code or "")
    return str(label) if label is not None else (code or "")


#: What the risk scan's findings look like (``risk_scan.KIND_LABELS``' keys), in the reader's
#: language: the owner's risk report words each finding from its fields, not the service's
#: English sentence (issue 15).
FINDING_KINDS: Final = {
    "resident_id": _l("resident ID numbers"), "mobile": _l("mobile numbers"), "chinese_name": _l("personal names"),
    "credit_code": _l("unified social credit codes"), "organization_code": _l("organization codes"),
    "company_name": _l("company names"), "legal_representative": _l("legal representatives' names"),
    "bank_card": _l("bank card numbers"), "licence_plate": _l("licence plates"),
    "address": _l("detailed addresses"), "email": _l("e-mail addresses"), "ip_address": _l("IP addresses"),
}


def finding_kind(code: str | None) -> str:
    """A finding's kind in the reader's language, or the code when it is a new kind."""
    label = FINDING_KINDS.get(code or "")
    return str(label) if label is not None else (code or "")
