"""What every console page shares: the service, the signed-in user, the role check, the error page.

The user comes from a server-side session: the cookie holds a random id whose SHA-256 is a
row of ``web_sessions`` (:func:`start_session`); logging out or a suspension revokes the row,
and the session ends at once (第二十二条). A session also ends :data:`SESSION_MAX_AGE` after
login. The pages themselves live in one blueprint module per area (``login``, ``public``,
``researcher``, ``owner``, ``regulator``, ``oversight`` …); none of them is imported here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, Final

from flask import current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from werkzeug.exceptions import default_exceptions

from sandbox.clock import iso, parse_iso
from sandbox.service.query_service import Sandbox
from sandbox.store.users import User, get_user

SESSION_MAX_AGE: Final = dt.timedelta(hours=12)


def sandbox() -> Sandbox:
    return current_app.extensions["sandbox"]


# -- sessions --------------------------------------------------------------------------------
def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start_session(user: User) -> None:
    """A fresh session for ``user``: a new random id in the cookie, its hash stored."""
    sb = sandbox()
    sid = secrets.token_urlsafe(32)
    sb.conn().execute("INSERT INTO web_sessions (id_hash, user_id, created_at) VALUES (?,?,?)",
                      (_hash(sid), user.id, iso(sb.now())))
    session.clear()  # SECURITY: a fresh session on login (no fixation)
    session["sid"] = sid


def end_session() -> None:
    """Revoke the cookie's session row (if any) and clear the cookie."""
    sid = session.pop("sid", None)
    if isinstance(sid, str):
        sandbox().conn().execute("UPDATE web_sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at IS NULL",
                                 (iso(sandbox().now()), _hash(sid)))
    session.clear()


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


# -- error pages -----------------------------------------------------------------------------
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


