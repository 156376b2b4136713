"""The one place that maps exceptions to HTTP: every error is
``{"error": {"code", "message"}}`` (+ ``"position"`` for SQL), never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from sandbox.errors import SandboxError
from sandbox.web.console.base import render_error

log = logging.getLogger(__name__)


def error_body(code: str, message: str, position: dict | None = None) -> dict:
    body: dict = {"code": code, "message": message}
    if position is not None:
        body["position"] = position
    return {"error": body}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def register(app: Flask) -> None:
    @app.errorhandler(SandboxError)
    def sandbox_error(err: SandboxError):
        if wants_json():
            return jsonify(error_body(err.code, err.message, getattr(err, "position", None))), err.http_status

        return render_error(err.http_status, err.message)

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        code = (err.name or "error").lower().replace(" ", "_")
        if wants_json():
            return jsonify(error_body(code, err.description or err.name)), err.code

        return render_error(err.code or 500, err.description or err.name)

    @app.errorhandler(Exception)
    def unexpected(err: Exception):
        # SECURITY: the details go to the application log, never to the client.
        log.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return jsonify(error_body("internal", "an internal error occurred; it has been logged")), 500

        return render_error(500, "an internal error occurred; it has been logged")
