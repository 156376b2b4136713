"""The privacy package's root exception."""

from __future__ import annotations


class PrivacyError(Exception):
    """A release cannot be made soundly (bad parameters, unsupported measurement)."""

    code = "privacy_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BudgetError(PrivacyError):
    code = "budget_exceeded"


class AccuracyError(PrivacyError):
    """A target accuracy cannot be predicted or reached for this column."""

    code = "accuracy_unavailable"
