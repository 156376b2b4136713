"""Flask app factory: one blueprint per area over the one service layer."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask, jsonify
from flask_wtf.csrf import CSRFProtect

from sandbox.service.query_service import Sandbox
from sandbox.web import console, errors
from sandbox.web.api import audit, base, openapi, preview, workflow

csrf = CSRFProtect()


def _secret_key(sb: Sandbox) -> str:
    """Per-workspace session key, generated once and kept in the store."""
    conn = sb.conn()
    row = conn.execute("SELECT value FROM settings WHERE name = 'web_secret_key'").fetchone()
    if row:
        return row["value"]
    value = secrets.token_hex(32)
    conn.execute("INSERT OR IGNORE INTO settings (name, value) VALUES ('web_secret_key', ?)", (value,))
    return conn.execute("SELECT value FROM settings WHERE name = 'web_secret_key'").fetchone()["value"]


def create_app(sb: Sandbox, test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(sb),
        MAX_CONTENT_LENGTH=1 * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="sandbox_session",
        JSON_SORT_KEYS=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if test_config:
        app.config.update(test_config)
    app.extensions["sandbox"] = sb
    csrf.init_app(app)
    for blueprint in (base.bp, audit.bp, workflow.bp, preview.bp):
        csrf.exempt(blueprint)  # bearer-token API: no ambient credentials, so no CSRF
        app.register_blueprint(blueprint)
    console.init_app(app)  # Babel (zh-CN default, English) and the console's blueprints
    errors.register(app)
    app.register_blueprint(openapi.bp)  # GET /api/v1/openapi.json

    @app.get("/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    @app.after_request
    def security_headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
        )
        return resp

    return app
