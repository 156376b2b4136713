"""Audit action names in the reader's language (issue 15: "codes such as ``query.refused``
are shown as they are"). The code stays beside the label (it is what the log, the API and
the filters use); unknown codes — actions added later — fall back to the code itself, and
``tests/test_console_labels.py`` fails when an action the service logs has no label.
"""

from __future__ import annotations

from typing import Final

from flask_babel import lazy_gettext as _l

ACTION_LABELS: Final = {
    "alert.handled": _l("Alert handled"),
    "alert.raised": _l("Alert raised"),
    "alert.repeated": _l("Alert repeated"),
    "application.owner_decided": _l("Application decided by an owner"),
    "application.rejected": _l("Application rejected"),
    "application.submitted": _l("Application submitted"),
    "approval.amended": _l("Approval amended"),
    "approval.granted": _l("Approval granted"),
    "dataset.budget_cap_set": _l("Dataset budget cap set"),
    "dataset.legal_basis_set": _l("Dataset legal basis set"),
    "dataset.classified": _l("Dataset classified"),
    "dataset.published": _l("Dataset published"),
    "dataset.registered": _l("Dataset registered"),
    "dataset.risk_acknowledged": _l("Risk scan acknowledged"),
    "dataset.tier_changed": _l("Dataset tier changed"),
    "key.master_rotated": _l("Master key rotated"),
    "objection.answered": _l("Objection answered"),
    "objection.filed": _l("Objection filed"),
    "opening_plan.commented": _l("Opening plan commented"),
    "opening_plan.published": _l("Opening plan published"),
    "organisation.created": _l("Organisation created"),
    "organisation.member_set": _l("Organisation member set"),
    "public_objection.answered": _l("Public objection answered"),
    "public_objection.filed": _l("Public objection filed"),
    "publication.city_decided": _l("Tier dispute decided by the city bureau"),
    "publication.declined": _l("Publication declined"),
    "publication.expert_reviewed": _l("Publication reviewed by experts"),
    "publication.proposed": _l("Publication proposed"),
    "publication.rejected": _l("Publication rejected"),
    "publication.submitted": _l("Publication submitted"),
    "query.dummy": _l("Dummy query"),
    "query.failed": _l("Query failed"),
    "query.refused": _l("Query refused"),
    "query.released": _l("Query released"),
    "query.started": _l("Query started"),
    "rectification.closed": _l("Rectification closed"),
    "rectification.ordered": _l("Rectification ordered"),
    "rectification.submitted": _l("Rectification submitted"),
    "setting.changed": _l("Setting changed"),
    "suspension.created": _l("Suspension created"),
    "suspension.lifted": _l("Suspension lifted"),
    "termination.created": _l("Termination"),
    "termination.reversed": _l("Termination reversed"),
    "user.created": _l("User created"),
    "user.registered": _l("User registered"),
    "user.token_created": _l("API token created"),
    "user.token_revoked": _l("API token revoked"),
    "user.token_rotated": _l("API token rotated"),
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
