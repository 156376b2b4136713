"""The HTML console's core: login, sessions, language, role-aware navigation, error pages.

Each area has its own blueprint module over the same service layer as the JSON API:
``console_public`` (open list, no login), ``console_researcher``, ``console_owner``,
``console_regulator`` and ``console_oversight`` (suspensions and objections, shared).
Views parse forms and delegate; they hold no workflow logic.

SECURITY:
- server-side sessions: the cookie holds a random id whose SHA-256 is a row of
  ``web_sessions``; logging out or a suspension revokes the row, and the session ends at
  once (第二十二条). A session also ends :data:`SESSION_MAX_AGE` after login.
- the session cookie is HttpOnly, SameSite=Lax, and Secure whenever the request came over
  HTTPS (:class:`ConsoleSessionInterface`);
- every form carries a CSRF token (Flask-WTF ``CSRFProtect`` on the whole app);
- failed logins are throttled per client address and user name, in the workspace store
  so that every ``sandbox serve`` process on it shares the counts
  (:class:`sandbox.store.rate_limits.LoginFailures`, the rules of :class:`LoginThrottle`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import unicodedata
from collections.abc import Callable
from functools import wraps
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from babel.dates import format_skeleton
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from werkzeug.exceptions import default_exceptions

from sandbox.clock import display_zone, iso, parse_iso
from sandbox.errors import Unauthorized
from sandbox.service.query_service import Sandbox
from sandbox.store import rate_limits
from sandbox.store.users import User, authenticate_password, get_user
from sandbox.web import i18n
from sandbox.web.console import labels, notes
from sandbox.web.console.numbers import fmt

bp = Blueprint("console", __name__)

SESSION_MAX_AGE: Final = dt.timedelta(hours=12)
HOME_BY_ROLE: Final = {
    "researcher": "researcher.query",
    "owner": "owner.overview",
    "regulator": "regulator.overview",
    "admin": "enforcement.settings_page",
}


def sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


# -- sessions --------------------------------------------------------------------------------
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


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def session_user() -> User | None:
    """The signed-in user, or None when there is no live, unexpired, unrevoked session."""
    sid = session.get("sid")
    if not isinstance(sid, str) or not sid:
        return None
    sb = sandbox()
    row = sb.conn().execute(
        "SELECT user_id, created_at FROM web_sessions WHERE id_hash = ? AND revoked_at IS NULL", (_hash(sid),)
    ).fetchone()
    if row is None or parse_iso(row["created_at"]) + SESSION_MAX_AGE <= sb.now():
        return None
    return get_user(sb.conn(), row["user_id"])


def current_user() -> User | None:
    if "user" not in g:
        g.user = session_user()
    return g.user


def signed_in() -> User:
    """The user of a view behind :func:`role_required` (never None there)."""
    user = current_user()
    assert user is not None, "use behind role_required"
    return user


def role_required(*roles: str) -> Callable[[Callable], Callable]:
    """Signed in, with one of ``roles``; another role gets the friendly 403 page."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            user = current_user()
            if user is None:
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            if user.role not in roles:
                return render_error(403, _("This page is for another role."))
            return view(*args, **kwargs)

        return wrapped

    return decorate


# -- login throttle --------------------------------------------------------------------------
class LoginThrottle:
    """Failed logins per (client address, user name) and per address, in a sliding window:
    the in-process reference model of the rules.

    After ``limit`` failures for one name from one address, or ``4 * limit`` from one
    address, further attempts are refused with HTTP 429 until the oldest failure leaves the
    window. A success clears the name's count. Argon2id verification already makes each
    guess slow.

    The console itself uses :class:`sandbox.store.rate_limits.LoginFailures`, the same rules over
    the workspace store, so that the counts hold across every process serving it; this
    memory-only model (one process, forgotten at restart) stays as the naive reference that
    ``tests/test_rate_limits.py`` cross-checks the shared one against.
    """

    def __init__(self, limit: int, window_seconds: int):
        self.limit = limit
        self.window = dt.timedelta(seconds=window_seconds)
        self._failures: dict[tuple[str, str], list[dt.datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: dt.datetime) -> list[dt.datetime]:
        kept = [t for t in self._failures.get(key, []) if t + self.window > now]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def retry_after(self, address: str, username: str, now: dt.datetime) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        with self._lock:
            waits = []
            for key, limit in (((address, username.lower()), self.limit), ((address, ""), 4 * self.limit)):
                recent = self._recent(key, now)
                if len(recent) >= limit:
                    waits.append((recent[-limit] + self.window - now).total_seconds())
            return max(0, int(max(waits, default=0)) + (1 if waits else 0))

    #: Keys kept at most (SECURITY: random user names must not grow memory without bound).
    MAX_KEYS: Final = 10_000

    def failed(self, address: str, username: str, now: dt.datetime) -> None:
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:
                for key in list(self._failures):
                    self._recent(key, now)  # drops keys whose failures left the window
                if len(self._failures) >= self.MAX_KEYS:  # still full: forget the oldest half
                    oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])
                    for key in oldest[: self.MAX_KEYS // 2]:
                        if key[1]:  # keep the per-address counts
                            del self._failures[key]
            for key in ((address, username.lower()), (address, "")):
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username.lower()), None)


def _unsafe_char(ch: str) -> bool:
    """Whitespace, control and format characters (tab, newline, NUL, U+200B, …) and the
    backslash: browsers drop or reinterpret them, so a tab between two slashes turns
    ``/<TAB>/evil.example`` into ``//evil.example`` (issue 12, finding 6)."""
    return ch == "\\" or ch.isspace() or unicodedata.category(ch)[0] in ("C", "Z")


def _safe_next(target: Any) -> str | None:
    """``target`` if it is a same-site relative path, else None: never an open redirect.

    SECURITY: accepted only if it starts with one ``/`` (not ``//`` or ``/\\``), holds no
    whitespace, control character or backslash, and has no scheme or host when parsed
    (``urllib.parse.urlsplit``), both as given and after percent-decoding (repeatedly, as
    a chain of redirects might). One exception: once decoded, the query string may hold
    spaces (``/query?sql=SELECT%20…`` is the workbench's own link; a query string cannot
    name a host). Never raises.

    >>> _safe_next("/query?sql=SELECT%20COUNT(*)"), _safe_next("/%09/example.com")
    ('/query?sql=SELECT%20COUNT(*)', None)
    >>> _safe_next("//example.com"), _safe_next("/%2F/example.com"), _safe_next("http://x")
    (None, None, None)
    """
    if not isinstance(target, str) or not target or len(target) > 4096:
        return None
    form, decoded_round = target, False
    for _round in range(4):
        if not form.startswith("/") or form.startswith(("//", "/\\")):
            return None
        try:
            parts = urlsplit(form)
        except ValueError:
            return None
        if parts.scheme or parts.netloc:
            return None
        # Not parts.path/parts.query: urlsplit silently drops tabs and newlines.
        cut = min((i for i in (form.find("?"), form.find("#")) if i >= 0), default=len(form))
        if any(_unsafe_char(ch) for ch in form[:cut]) or any(
                _unsafe_char(ch) and not (decoded_round and ch == " ") for ch in form[cut:]):
            return None
        decoded = unquote(form)
        if decoded == form:
            return target
        form, decoded_round = decoded, True
    return None  # still encoded after four rounds: not a path anyone links to


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
            conn = sb.conn()
            try:
                user = authenticate_password(conn, username, request.form.get("password", ""))
            except Unauthorized:
                throttle.failed(address, username, sb.now())
                error, status = _("Wrong username or password."), 401
            else:
                throttle.succeeded(address, username)
                sid = secrets.token_urlsafe(32)
                conn.execute("INSERT INTO web_sessions (id_hash, user_id, created_at) VALUES (?,?,?)",
                             (_hash(sid), user.id, iso(sb.now())))
                session.clear()  # SECURITY: a fresh session on login (no fixation)
                session["sid"] = sid
                return redirect(_safe_next(request.args.get("next")) or url_for("console.home"))
    resp = make_response(render_template("login.html", error=error, username=username), status)
    if status == 429:
        resp.headers["Retry-After"] = str(wait)
    return resp


@bp.post("/logout")
def logout():
    sid = session.pop("sid", None)
    if isinstance(sid, str):
        sandbox().conn().execute("UPDATE web_sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL",
                                 (iso(sandbox().now()), _hash(sid)))
    session.clear()
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
    target = _safe_next(request.form.get("next")) or url_for("console.home")
    resp = redirect(target)
    if lang in i18n.LANGUAGES:
        resp.set_cookie(i18n.COOKIE, lang, max_age=365 * 24 * 3600, httponly=True, samesite="Lax",
                        secure=request.is_secure)
    return resp


# -- navigation and errors -------------------------------------------------------------------
NAV: Final[dict[str, list[tuple[str, Any]]]] = {
    "anonymous": [("public.catalog", lazy_gettext("Open list")),
                  ("public.transparency", lazy_gettext("Transparency")),
                  ("enforcement.opening_plans_page", lazy_gettext("Opening plans")),
                  ("self_service.register", lazy_gettext("Register"))],
    "researcher": [("researcher.query", lazy_gettext("Query")), ("researcher.history", lazy_gettext("History")),
                   ("oversight.objections", lazy_gettext("Objections")), ("public.catalog", lazy_gettext("Open list")),
                   ("self_service.my_applications", lazy_gettext("My applications")),
                   ("self_service.tokens", lazy_gettext("API tokens"))],
    "owner": [("owner.overview", lazy_gettext("Overview")), ("owner.applications_inbox", lazy_gettext("Applications")),
              ("owner.approvals", lazy_gettext("Budgets")), ("owner_datasets.datasets", lazy_gettext("Datasets")),
              ("owner.alerts", lazy_gettext("Alerts")), ("oversight.suspensions", lazy_gettext("Suspensions")),
              ("oversight.objections", lazy_gettext("Objections")),
              ("public.catalog", lazy_gettext("Open list")), ("reviews.index", lazy_gettext("Reviews")),
              ("enforcement.index", lazy_gettext("Enforcement"))],
    "regulator": [("regulator.overview", lazy_gettext("Overview")), ("regulator.timeline", lazy_gettext("Audit log")),
                  ("regulator.replay_report", lazy_gettext("Replay")), ("regulator.trace", lazy_gettext("Trace a figure")),
                  ("regulator.alerts", lazy_gettext("Alerts")), ("oversight.suspensions", lazy_gettext("Suspensions")),
                  ("oversight.objections", lazy_gettext("Objections")), ("reviews.index", lazy_gettext("Reviews")),
                  ("enforcement.index", lazy_gettext("Enforcement")),
                  ("public.catalog", lazy_gettext("Open list"))],
    "admin": [("enforcement.settings_page", lazy_gettext("Settings"))],
}
#: Pages that light up another page's navigation item.
NAV_PARENT: Final = {
    "researcher.run": "researcher.query", "researcher.release": "researcher.history",
    "owner.application": "owner.applications_inbox", "owner.decide": "owner.applications_inbox",
    "owner_datasets.new": "owner_datasets.datasets", "owner_datasets.upload": "owner_datasets.datasets",
    "owner_datasets.policy": "owner_datasets.datasets", "owner_datasets.register": "owner_datasets.datasets",
    "owner_datasets.dataset": "owner_datasets.datasets", "regulator.verify": "regulator.overview",
    "public.dataset": "public.catalog", "reviews.detail": "reviews.index", "self_service.apply": "public.catalog",
}
ROLE_NAMES: Final = {
    "researcher": lazy_gettext("Researcher"), "owner": lazy_gettext("Data owner"),
    "regulator": lazy_gettext("Regulator"), "admin": lazy_gettext("Administrator"),
}


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    if not request or request.path.startswith("/api/"):
        return {}
    user = current_user()
    role = user.role if user else "anonymous"
    items = [(endpoint, label) for endpoint, label in NAV.get(role, []) if endpoint in current_app.view_functions]
    return {
        "user": user, "nav_items": items, "role_name": ROLE_NAMES.get(role, role),
        "active_endpoint": NAV_PARENT.get(request.endpoint or "", request.endpoint or ""), "request_path": request.full_path.rstrip("?"),
        "error_headline": i18n.error_headline,
    }


ERROR_TITLES: Final = {
    400: lazy_gettext("The request could not be understood"),
    401: lazy_gettext("Please log in"),
    403: lazy_gettext("You may not open this page"),
    404: lazy_gettext("This page does not exist"),
    405: lazy_gettext("This action is not available here"),
    409: lazy_gettext("Already done"),
    413: lazy_gettext("The upload is too large"),
    429: lazy_gettext("Too many requests"),
    500: lazy_gettext("Something went wrong on our side"),
}
ERROR_HINTS: Final = {
    403: lazy_gettext("Your role does not include this page. Use the navigation above to go back to your pages."),
    404: lazy_gettext("Check the address, or start again from your home page."),
    500: lazy_gettext("The error has been logged. Please try again in a moment."),
}


def render_error(status: int, message: str | None = None):
    """The friendly error page (both languages). ``sandbox.web.errors`` calls this for HTML."""
    title = ERROR_TITLES.get(status, ERROR_TITLES[500] if status >= 500 else ERROR_TITLES[400])
    hint = ERROR_HINTS.get(status)
    if status >= 500:
        message = None  # SECURITY: never echo internals
    if message and message == getattr(default_exceptions.get(status), "description", None):
        message = None  # Werkzeug's stock English sentence: the translated title and hint say it (issue 15)
    return render_template("error.html", status=status, title=title, message=message, hint=hint), status


# -- template helpers ----------------------------------------------------------------------------
DISPLAY_TZ: Final = display_zone()  # Asia/Shanghai unless SANDBOX_DISPLAY_TZ; stored times stay UTC


@bp.app_template_filter("when")
def when(text: str | None, seconds: bool = False) -> str:
    """A stored RFC 3339 UTC time in the display zone (Beijing time by default), written the
    reader's way (CLDR via Babel): ``2025年1月31日 17:30`` in Chinese, ``Jan 31, 2025 17:30`` in
    English (issue 15). Templates keep the RFC 3339 value in ``<time datetime>``."""
    if not text:
        return "—"
    try:
        moment = parse_iso(str(text)).astimezone(DISPLAY_TZ)
    except ValueError:
        return str(text)
    locale = "zh_Hans_CN" if i18n.current() == "zh_CN" else "en"
    day = format_skeleton("yMMMd", moment, locale=locale)
    return f"{day} {format_skeleton('Hms' if seconds else 'Hm', moment, locale=locale)}"


@bp.app_template_global("tier_label")
def _tier_label(code: str | None) -> str:
    return labels.tier_label(code)


@bp.app_template_global("finding_kind")
def _finding_kind(code: str | None) -> str:
    return labels.finding_kind(code)


# Notes from the service in the reader's language, the service's words under a disclosure
bp.add_app_template_global(notes.preview_notes, "preview_notes")
bp.add_app_template_global(notes.result_notes, "result_notes")
bp.add_app_template_global(notes.draft_notes, "draft_notes")
bp.add_app_template_global(notes.damage, "damage_words")
bp.add_app_template_global(notes.own_words, "own_words")


@bp.app_template_global("publisher")
def publisher(dataset: str, owner: str | None = None) -> str:
    """Who publishes a dataset, as the catalog pages name it (issue 15: "organisation names, not
    usernames"): the dataset's organisation, else its owner's, else the owner's username."""
    row = sandbox().conn().execute(
        "SELECT COALESCE(o.name, uo.name) AS org, u.username FROM datasets d "
        "LEFT JOIN organisations o ON o.id = d.org_id LEFT JOIN users u ON u.id = d.owner_id "
        "LEFT JOIN organisations uo ON uo.id = u.org_id WHERE d.name = ?", (dataset,)).fetchone()
    if row is None:
        return owner or ""
    return row["org"] or owner or row["username"] or ""


bp.add_app_template_filter(fmt, "fmt")  # a count, ε, δ or budget written the reader's way
