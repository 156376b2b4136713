"""The application's own exceptions. ``sandbox.web.errors`` maps every error to HTTP."""

from __future__ import annotations


class SandboxError(Exception):
    """Base of application errors: ``code`` is stable, ``message`` is for people."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.http_status = status


class WorkspaceError(SandboxError):
    code = "workspace"
    http_status = 500


class PolicyError(SandboxError):
    """A dataset policy file is invalid; the message names the field and the line."""

    code = "invalid_policy"


class NotFound(SandboxError):
    code = "not_found"
    http_status = 404


class Forbidden(SandboxError):
    code = "forbidden"
    http_status = 403


class Unauthorized(SandboxError):
    code = "unauthorized"
    http_status = 401


class BadRequest(SandboxError):
    code = "bad_request"
    http_status = 400


class BudgetExceeded(SandboxError):
    code = "budget_exceeded"
    http_status = 409


class Suspended(SandboxError):
    code = "suspended"
    http_status = 403


class EngineFailure(SandboxError):
    """The engine failed; the message is generic and never echoes data (SECURITY)."""

    code = "engine_error"
    http_status = 500
