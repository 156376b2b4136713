"""The service's errors in the reader's language (issue 15: "errors from the service … form
validation" go through the translation catalog).

The service speaks English and cites its articles; its ``SandboxError.code`` is stable. The
console says what went wrong as a translated sentence chosen by that code (or, for a code it
does not know yet, by the error's class), and keeps the service's own message under a
disclosure — *The service's own words* — marked ``lang="en" translate="no"``, as the
workbench does for refusals. Forms and flashes use :func:`service_error`, whose value renders
as that HTML in a template (``{{ error }}``) and reads as the sentence in plain text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from flask import abort, flash
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from sandbox.errors import NotFound, SandboxError

T = TypeVar("T")

#: One sentence per stable code: what went wrong, in the reader's language.
BY_CODE: Final = {
    "bad_request": _l("The form has a missing or invalid value."),
    "not_found": _l("What you asked for does not exist, or is not yours to see."),
    "forbidden": _l("Your role does not allow this action."),
    "unauthorized": _l("Please log in again."),
    "conflict": _l("This has already been done, or was changed in the meantime."),
    "budget_exceeded": _l("The privacy budget is not enough for this."),
    "dataset_budget_exceeded": _l("The dataset's total privacy budget is not enough for this."),
    "global_budget_exceeded": _l("The dataset's total privacy budget is not enough for this."),
    "suspended": _l("Access is suspended."),
    "terminated": _l("This approval has been terminated."),
    "expired": _l("This approval has expired."),
    "engine_error": _l("The query engine failed; nothing was released."),
    "invalid_policy": _l("The dataset policy is not valid."),
    "bad_target": _l("Choose what this is about: an approval, a researcher or a dataset."),
    "bad_items": _l("The list of information items is not valid."),
    "bad_expires": _l("The expiry date is not valid or lies in the past."),
    "bad_evidence": _l("The evidence is missing or not valid."),
    "bad_evidence_type": _l("This kind of evidence is not accepted."),
    "bad_kind": _l("This kind is not known."),
    "bad_epsilon": _l("The ε value is not valid."),
    "bad_due": _l("The due date is not valid."),
    "bad_decision": _l("The decision is not valid."),
    "bad_accept": _l("The acceptance is not valid."),
    "bad_action": _l("This action is not available."),
    "bad_answer": _l("The answer is not valid."),
    "bad_approval_id": _l("The approval number is not valid."),
    "bad_consultation": _l("The consultation period is not valid."),
    "bad_dataset": _l("The dataset is not valid."),
    "bad_jurisdiction": _l("The jurisdiction is not valid."),
    "bad_k_anonymity": _l("The k-anonymity target is not valid."),
    "bad_outcome": _l("The outcome is not valid."),
    "bad_owner": _l("The owner is not valid."),
    "bad_tier": _l("The tier is not valid."),
    "bad_year": _l("The year is not valid."),
    "commitment_required": _l("Please confirm the security commitment."),
    "legal_basis_required": _l("This dataset holds personal information: record its legal basis or consent "
                               "reference first (Art. 20)."),
    "city_bureau_only": _l("Only the city bureau decides this (Art. 10)."),
    "grade_forbids_tier": _l("The dataset's grade does not allow this tier (Art. 6)."),
    "bad_grade": _l("The grade is not valid."),
    "city_decided": _l("The city bureau has decided; submit the change."),
    "missing_terms": _l("Name the new budget or the new expiry."),
    "consultation_closed": _l("The consultation period is over."),
    "deidentification_required": _l("Describe the de-identification step before opening this data."),
    "identifier_column": _l("Identifier columns are never released."),
    "identifier_undeclared": _l("The risk scan found identifier-like values in a column not declared as an identifier."),
    "no_open_release": _l("There is no open release to act on."),
    "not_decided": _l("This has not been decided yet."),
    "not_open": _l("This is no longer open."),
    "not_your_dataset": _l("This dataset is not yours."),
    "nothing_to_suspend": _l("There is nothing to suspend: choose an approval or a researcher."),
    "objection_required": _l("An objection is required for this."),
    "password_mismatch": _l("The passwords do not match."),
    "profile_mismatch": _l("The profile does not match."),
    "rate_limited": _l("Too many requests; please wait a moment."),
    "registration_closed": _l("Registration is closed."),
    "risk_scan_failed": _l("The risk scan found problems that must be acknowledged first."),
    "too_many_tokens": _l("You have the most tokens allowed; revoke one first."),
    "unknown_dataset": _l("This dataset is not known."),
    "unknown_organisation": _l("This organisation is not known."),
    "not_json": _l("This is not JSON: paste the receipt as it was given, a JSON object."),
}
#: For a code not listed above, by the error's HTTP status.
BY_STATUS: Final = {
    400: BY_CODE["bad_request"], 401: BY_CODE["unauthorized"], 403: BY_CODE["forbidden"],
    404: BY_CODE["not_found"], 409: BY_CODE["conflict"],
}


def sentence(err: SandboxError) -> str:
    """What went wrong, in the reader's language."""
    text = BY_CODE.get(err.code) or BY_STATUS.get(err.http_status)
    return str(text) if text is not None else _("The service refused this action.")


class ServiceError:
    """A refusal for a page: the sentence, and the service's own words under a disclosure."""

    def __init__(self, err: SandboxError, message: str | None = None):
        self.code = err.code
        self.text = sentence(err)
        self.message = err.message if message is None else message

    def __str__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return True

    def __html__(self) -> Markup:
        own = ""
        if self.message and self.message != self.text:
            own = Markup(' <details class="small service-words"><summary>{}</summary>'
                         '<span lang="en" translate="no" class="service-message">{}</span></details>'
                         ).format(_("The service's own words"), self.message)
        return Markup('<span class="error-sentence" data-code="{}">{}</span>').format(self.code, self.text) + own


def service_error(err: SandboxError, message: str | None = None) -> ServiceError:
    """The refusal for a form page (``message``: the service's words, when the page shortens them)."""
    return ServiceError(err, message)


def flash_error(err: SandboxError) -> None:
    """Flash the refusal (the sentence; the service's words ride along for the disclosure)."""
    flash({"text": sentence(err), "code": err.code, "detail": err.message}, "error")


def attempt(call: Callable[..., T], *args: Any, missing_is_404: bool = True, **kwargs: Any) -> tuple[bool, T | None]:
    """A form's service call, as every console form posts it: ``(True, result)`` when done;
    a refusal is flashed and gives ``(False, None)``; the URL's item missing (or not yours) is
    the 404 page, unless the name was typed into the form (``missing_is_404=False``: flashed)."""
    try:
        return True, call(*args, **kwargs)
    except NotFound as err:
        if missing_is_404:
            abort(404)
        flash_error(err)  # a name typed into the form: say so on the page (issue 15)
    except SandboxError as err:
        flash_error(err)
    return False, None


__all__ = ["BY_CODE", "ServiceError", "attempt", "flash_error", "sentence", "service_error"]
