"""The catalogue of audit actions the project writes: one name per kind of entry, with what
it means and the keys of its ``details``.

``Action`` is a ``StrEnum``, so a member *is* its name: ``Action.QUERY_RELEASED ==
"query.released"``, it can be passed wherever an action string goes (``store.append``
writes the same bytes), and ``Action("query.released")`` looks one up. ``details`` are
the keys every entry of the action carries, ``optional`` the keys only some carry (one
writer adds them, or a target is a user in one entry and an approval in another).

The log itself accepts any action name (old logs and replay stay readable); this is what
the sandbox writes today. ``tests/test_audit_actions.py`` checks it against the sandbox's
code and against the table in docs/audit.md ("Actions").
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """One audit action: its dotted name (the value), its meaning and its details' keys."""

    meaning: str
    details: tuple[str, ...]
    optional: tuple[str, ...]

    def __new__(cls, name: str, meaning: str, details: str, optional: str = "") -> Action:
        member = str.__new__(cls, name)
        member._value_ = name
        member.meaning = meaning
        member.details = tuple(details.split())
        member.optional = tuple(optional.split())
        return member

    # ------------------------------------------------------------------ the query walk
    QUERY_STARTED = (
        "query.started",
        "a query's privacy charge, committed before the engine reads any data",
        "query_id approval_id sql fingerprint datasets epsilon delta rho rho_delta noise"
        " budget_after",
    )
    QUERY_RELEASED = (
        "query.released",
        "a query's noisy result released; names its query.started entry by start_seq",
        "query_id approval_id start_seq sql mechanisms epsilon delta columns rows",
    )
    QUERY_REFUSED = (
        "query.refused",
        "a query refused, with the code: nothing read, nothing charged",
        "query_id approval_id sql code message position",
    )
    QUERY_FAILED = (
        "query.failed",
        "a started query failed after its charge; the charge stands",
        "query_id approval_id start_seq code",
    )
    QUERY_DUMMY = (
        "query.dummy",
        "a free dummy run on a synthetic stand-in of the data, never the data itself",
        "query_id approval_id sql fingerprint dummy epsilon delta datasets",
        "public_schema",
    )
    # ------------------------------------------------------------------ applications, approvals
    APPLICATION_SUBMITTED = (
        "application.submitted",
        "a researcher's application, or request to amend an approval, submitted",
        "application_id researcher datasets columns aggregates provision_method scenario"
        " purpose commitment_sha256",
        "owner_ids organisation attachments amends",
    )
    APPLICATION_OWNER_DECIDED = (
        "application.owner_decided",
        "one owner's decision on an application spanning several owners, or on an amendment",
        "application_id owner decision reason",
        "datasets scope epsilon_total delta_total epsilon_per_query expires_at amends",
    )
    APPLICATION_REJECTED = (
        "application.rejected",
        "an application or amendment request rejected, with the reason",
        "application_id researcher reason",
        "amends",
    )
    APPROVAL_GRANTED = (
        "approval.granted",
        "an approval granted: terms, scope, budget, expiry and the owner's signature",
        "approval_id application_id researcher scope epsilon_total delta_total"
        " epsilon_per_query expires_at reason signature",
    )
    APPROVAL_AMENDED = (
        "approval.amended",
        "more budget or a later expiry approved: old and new terms, re-signed",
        "approval_id application_id researcher old new reason signature",
    )
    # ------------------------------------------------------------------ oversight
    SUSPENSION_CREATED = (
        "suspension.created",
        "a researcher or an approval suspended, by a person or automatically",
        "suspension_id target_type reason automatic",
        "user approval_id refusals window_minutes threshold",
    )
    SUSPENSION_LIFTED = (
        "suspension.lifted",
        "a suspension lifted, with the reason",
        "suspension_id target_type reason",
        "user approval_id",
    )
    TERMINATION_CREATED = (
        "termination.created",
        "the final end of an approval or of a researcher's access",
        "termination_id target_type reason",
        "user approval_id",
    )
    TERMINATION_REVERSED = (
        "termination.reversed",
        "a termination reversed on an objection against it",
        "termination_id objection_id reason",
    )
    RECTIFICATION_ORDERED = (
        "rectification.ordered",
        "an owner ordered to fix something by a date",
        "order_id owner dataset what due_at",
    )
    RECTIFICATION_SUBMITTED = (
        "rectification.submitted",
        "the owner's report on a rectification order",
        "order_id response",
    )
    RECTIFICATION_CLOSED = (
        "rectification.closed",
        "a rectification accepted by the regulator",
        "order_id note",
    )
    RECTIFICATION_RETURNED = (
        "rectification.returned",
        "a rectification report returned to the owner",
        "order_id note",
    )
    OBJECTION_FILED = (
        "objection.filed",
        "a user's objection to a decision",
        "objection_id target_type target_id decision respondent text evidence",
    )
    OBJECTION_ANSWERED = (
        "objection.answered",
        "the answer to a user's objection",
        "objection_id filed_by answer",
    )
    PUBLIC_OBJECTION_FILED = (
        "public_objection.filed",
        "an objection from the public (no login), with its evidence's names and hashes",
        "public_objection_id target_type target respondent text evidence",
    )
    PUBLIC_OBJECTION_ANSWERED = (
        "public_objection.answered",
        "the answer to an objection from the public",
        "public_objection_id answer",
    )
    ALERT_RAISED = (
        "alert.raised",
        "an anomaly found, once per alert",
        "alert_id kind severity researcher approval_id summary details",
    )
    ALERT_REPEATED = (
        "alert.repeated",
        "another occurrence counted on an open alert",
        "alert_id kind occurrences summary details",
    )
    ALERT_HANDLED = (
        "alert.handled",
        "an alert acknowledged, resolved with a note, or acted on (suspend)",
        "alert_id action status note suspension_id",
    )
    # ------------------------------------------------------------------ datasets, publication
    DATASET_REGISTERED = (
        "dataset.registered",
        "a new dataset version, with its risk summary",
        "name version content_hash tier rows units encrypted risk",
    )
    DATASET_RISK_ACKNOWLEDGED = (
        "dataset.risk_acknowledged",
        "a version published by its owner alone, its risk findings acknowledged",
        "dataset version content_hash note risk",
    )
    DATASET_CLASSIFIED = (
        "dataset.classified",
        "a dataset's category, grade and basis set (old and new)",
        "dataset old new",
    )
    DATASET_LEGAL_BASIS_SET = (
        "dataset.legal_basis_set",
        "the legal basis or consent reference of a dataset's personal information set",
        "dataset old new",
    )
    DATASET_BUDGET_CAP_SET = (
        "dataset.budget_cap_set",
        "a dataset's collusion budget cap changed, by its owner or by policy",
        "dataset source reason old new spent",
        "version",
    )
    DATASET_TIER_CHANGED = (
        "dataset.tier_changed",
        "a dataset's tier changed: a co-signed raise, or a lowering",
        "dataset from to basis deidentification tier_change_id",
        "encrypted_versions version content_hash review_id scan acknowledged_findings"
        " k_target recipe derivative_sha256 owner_signature regulator_signature reason"
        " legal_basis classification",
    )
    DATASET_PUBLISHED = (
        "dataset.published",
        "a reviewed publication co-signed: version, scan, recipe and both signatures",
        "dataset version content_hash review_id from to basis deidentification scan"
        " acknowledged_findings k_target recipe derivative_sha256 owner_signature"
        " regulator_signature reason legal_basis classification",
    )
    DATASET_DOWNLOADED = (
        "dataset.downloaded",
        "unconditional data downloaded",
        "dataset version content_hash format derivative_sha256 review_id",
    )
    PUBLICATION_SUBMITTED = (
        "publication.submitted",
        "a tier raise or a publication submitted for review, signed by the owner",
        "review_id kind dataset version from to basis scan acknowledged_findings k_target"
        " owner_signature",
    )
    PUBLICATION_PROPOSED = (
        "publication.proposed",
        "a tier raise proposed by the regulator",
        "review_id dataset from to basis",
    )
    PUBLICATION_DECLINED = (
        "publication.declined",
        "a proposed tier raise declined by the owner, with the reasons",
        "review_id dataset reasons",
    )
    PUBLICATION_EXPERT_REVIEWED = (
        "publication.expert_reviewed",
        "the experts' opinion on a declined proposal and the outcome they recommend",
        "review_id dataset experts opinion outcome recorded_by at",
    )
    PUBLICATION_CITY_DECIDED = (
        "publication.city_decided",
        "a declined proposal settled by the city bureau",
        "review_id dataset from to outcome reason expert_review",
    )
    PUBLICATION_REJECTED = (
        "publication.rejected",
        "a submission for review refused, with the reason",
        "review_id dataset from to reason",
    )
    OPENING_PLAN_PUBLISHED = (
        "opening_plan.published",
        "an annual opening plan published",
        "plan_id year items comment_until",
    )
    OPENING_PLAN_COMMENTED = (
        "opening_plan.commented",
        "a public comment on an opening plan",
        "plan_id comment_id text",
    )
    # ------------------------------------------------------------------ accounts, keys, settings
    ORGANISATION_CREATED = (
        "organisation.created",
        "an organisation created",
        "organisation_id name kind district",
    )
    ORGANISATION_MEMBER_SET = (
        "organisation.member_set",
        "a user placed in an organisation (with a regulator's jurisdiction)",
        "username organisation jurisdiction datasets_moved",
    )
    USER_CREATED = (
        "user.created",
        "an account created by the admin",
        "username role",
    )
    USER_REGISTERED = (
        "user.registered",
        "a researcher's account registered on the portal",
        "username role",
    )
    USER_TOKEN_CREATED = (
        "user.token_created",
        "a named API token created by its user",
        "token_id name",
    )
    USER_TOKEN_REVOKED = (
        "user.token_revoked",
        "a named API token revoked by its user",
        "token_id name",
    )
    USER_TOKEN_ROTATED = (
        "user.token_rotated",
        "a user's token replaced, the old one revoked",
        "username revoked",
    )
    KEY_ROTATED = (
        "key.rotated",
        "the audit log's signing key replaced, vouched for by the old key",
        "old_key_id new_key_id new_verifier_key new_public_key",
    )
    KEY_MASTER_ROTATED = (
        "key.master_rotated",
        "the master key replaced and every data key re-wrapped",
        "old_key_id new_key_id data_keys_rewrapped",
    )
    SETTING_CHANGED = (
        "setting.changed",
        "an operator setting changed",
        "name old new",
    )
