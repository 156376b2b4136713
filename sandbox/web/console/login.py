"""Logging in and out, the home redirect by role, and the language switch ("console" blueprint).

SECURITY:
- server-side sessions (:func:`sandbox.web.console.base.start_session`): logging out revokes
  the session's row at once;
- the session cookie is HttpOnly, SameSite=Lax, and Secure whenever the request came over
  HTTPS (:class:`ConsoleSessionInterface`);
- every form carries a CSRF token (Flask-WTF ``CSRFProtect`` on the whole app);
- failed logins are throttled per client address and user name, in the workspace store
  so that every ``sandbox serve`` process on it shares the counts
  (:class:`sandbox.store.rate_limits.LoginFailures`, the rules of
  :class:`sandbox.web.console.login_throttle.LoginThrottle`).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _

from sandbox.errors import Unauthorized
from sandbox.service.query_service import Sandbox
from sandbox.store import rate_limits
from sandbox.store.users import authenticate_password
from sandbox.web import i18n
from sandbox.web.console.base import current_user, end_session, render_error, sandbox, start_session
from sandbox.web.console.navigation import HOME_BY_ROLE
from sandbox.web.console.redirects import safe_next

bp = Blueprint("console", __name__)


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with the Secure flag whenever the request is HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:  # type: ignore[override]
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


@bp.record_once
def _configure(state) -> None:
    app = state.app
    app.session_interface = ConsoleSessionInterface()
    app.config.setdefault("CONSOLE_LOGIN_FAILURES", 5)
    app.config.setdefault("CONSOLE_LOGIN_WINDOW_SECONDS", 15 * 60)
    sb: Sandbox = app.extensions["sandbox"]
    app.extensions["console_throttle"] = rate_limits.LoginFailures(
        rate_limits.CounterStore(sb.ws.db_path),
        app.config["CONSOLE_LOGIN_FAILURES"], app.config["CONSOLE_LOGIN_WINDOW_SECONDS"],
    )


@bp.after_app_request
def _referrer_policy(resp):
    """Console pages send the referrer to their own origin only.

    SECURITY: Flask-WTF checks the Referer of every form POST made over HTTPS (CSRF "SSL
    strict" mode), so ``no-referrer`` would make every console form fail behind TLS;
    ``same-origin`` still never leaks a URL to another site.
    """
    if not request.path.startswith("/api/"):
        resp.headers["Referrer-Policy"] = "same-origin"
    return resp


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET" and current_user() is not None:
        return redirect(url_for("console.home"))
    error, status = None, 200
    username, wait = "", 0
    if request.method == "POST":
        sb = sandbox()
        throttle: rate_limits.LoginFailures = current_app.extensions["console_throttle"]
        username = request.form.get("username", "").strip()[:64]
        address = request.remote_addr or "?"
        wait = throttle.retry_after(address, username, sb.now())
        if wait:
            minutes = max(1, (wait + 59) // 60)
            error, status = _("Too many failed attempts. Try again in %(minutes)d minutes.", minutes=minutes), 429
        else:
            try:
                user = authenticate_password(sb.conn(), username, request.form.get("password", ""))
            except Unauthorized:
                throttle.failed(address, username, sb.now())
                error, status = _("Wrong username or password."), 401
            else:
                throttle.succeeded(address, username)
                start_session(user)
                return redirect(safe_next(request.args.get("next")) or url_for("console.home"))
    resp = make_response(render_template("login.html", error=error, username=username), status)
    if status == 429:
        resp.headers["Retry-After"] = str(wait)
    return resp


@bp.post("/logout")
def logout():
    end_session()
    flash(_("You are logged out."), "info")
    return redirect(url_for("console.login"))


@bp.get("/")
def home():
    user = current_user()
    if user is None:
        return redirect(url_for("public.catalog"))
    endpoint = HOME_BY_ROLE.get(user.role)
    if endpoint is None:
        return render_error(403, _("The console has no pages for the %(role)s role; use the CLI.", role=user.role))
    return redirect(url_for(endpoint))


@bp.post("/lang")
def set_language():
    """Remember the reader's language in a cookie (a form with a CSRF token, like every other)."""
    lang = request.form.get("lang", "")
    target = safe_next(request.form.get("next")) or url_for("console.home")
    resp = redirect(target)
    if lang in i18n.LANGUAGES:
        resp.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=request.is_secure)
    return resp

