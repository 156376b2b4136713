"""What every console template may call: the navigation, times and numbers the reader's way,
labels, the service's notes, SQL highlighting, publisher names (registered on the app)."""

from __future__ import annotations

from typing import Any, Final

from babel.dates import format_skeleton
from flask import Flask, current_app, request

from sandbox.clock import display_zone, parse_iso
from sandbox.web import i18n
from sandbox.web.console import labels, notes
from sandbox.web.console import sql as console_sql
from sandbox.web.console.base import current_user, sandbox
from sandbox.web.console.navigation import NAV, NAV_PARENT, ROLE_NAMES
from sandbox.web.console.numbers import fmt

DISPLAY_TZ: Final = display_zone()  # Asia/Shanghai unless SANDBOX_DISPLAY_TZ; stored times stay UTC


def init_app(app: Flask) -> None:
    """The context processor, filters and globals below, for every template of ``app``."""
    app.context_processor(_globals)
    app.add_template_filter(when, "when")
    app.add_template_filter(fmt, "fmt")  # a count, ε, δ or budget written the reader's way
    app.add_template_filter(_sql, "sql")
    app.add_template_global(labels.tier_label, "tier_label")
    app.add_template_global(labels.finding_kind, "finding_kind")
    app.add_template_global(labels.action_label, "action_label")
    app.add_template_global(i18n.error_headline, "error_title")
    app.add_template_global(publisher, "publisher")
    # Notes from the service in the reader's language, the service's words under a disclosure
    app.add_template_global(notes.preview_notes, "preview_notes")
    app.add_template_global(notes.result_notes, "result_notes")
    app.add_template_global(notes.draft_notes, "draft_notes")
    app.add_template_global(notes.damage, "damage_words")
    app.add_template_global(notes.own_words, "own_words")


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


def _sql(text: str):
    return console_sql.highlight(text or "")


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

