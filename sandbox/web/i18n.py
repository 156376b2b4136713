"""Languages of the console: zh-CN (the default) and English, with Flask-Babel catalogs.

The choice is remembered in a cookie (``sandbox_lang``) set by ``POST /lang``; without it
every page is Chinese, whatever the browser asks for: the portal's language is Chinese and
English is an option (第九条: one portal for everyone).

Catalogs live in ``sandbox/translations/<locale>/LC_MESSAGES/messages.{po,mo}``; message ids
are English. The Chinese catalog's folder is ``zh_Hans_CN``: Babel reads ``zh_CN`` as the
CLDR locale ``zh_Hans_CN``, whose gettext fallbacks are ``zh_Hans_CN`` and ``zh`` only. How to
update the catalogs is in ``docs/console.md`` ("Translations").
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from flask import Flask, request
from flask_babel import Babel, get_locale, lazy_gettext

COOKIE: Final = "sandbox_lang"
DEFAULT: Final = "zh_CN"
#: locale → (html lang attribute, the language's own name for the switch)
LANGUAGES: Final[dict[str, tuple[str, str]]] = {"zh_CN": ("zh-CN", "中文"), "en": ("en", "English")}
TRANSLATIONS_DIR: Final = Path(__file__).resolve().parent.parent / "translations"

babel = Babel()


def select_locale() -> str:
    chosen = request.cookies.get(COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT


def current() -> str:
    """The locale of this request (``zh_CN`` or ``en``)."""
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else DEFAULT


def html_lang() -> str:
    return LANGUAGES[current()][0]


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS_DIR))
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.globals.update(html_lang=html_lang, current_language=current, LANGUAGES=LANGUAGES)


# -- stable error codes → a short headline in the reader's language ---------------------------
# The service's own message (English, with the article it cites) is shown below the headline.
ERROR_HEADLINES: Final = {
    "out_of_scope": lazy_gettext("Outside the approved scenario"),
    "identifier_column": lazy_gettext("An identifier column was used"),
    "row_level_output": lazy_gettext("Row-level output is not allowed"),
    "unbounded": lazy_gettext("The value range cannot be bounded"),
    "too_complex": lazy_gettext("The query is too complex"),
    "sql_syntax": lazy_gettext("SQL syntax error"),
    "not_allowed": lazy_gettext("This SQL construct is not allowed"),
    "budget_exceeded": lazy_gettext("Not enough privacy budget left"),
    "suspended": lazy_gettext("Access is suspended"),
    "expired": lazy_gettext("The approval has expired"),
    "bad_epsilon": lazy_gettext("Invalid ε"),
    "missing_sql": lazy_gettext("Enter a query first"),
    "not_found": lazy_gettext("Not found"),
    "forbidden": lazy_gettext("Not allowed"),
    "conflict": lazy_gettext("Already done"),
    "invalid_policy": lazy_gettext("The policy is not valid"),
    "engine_error": lazy_gettext("The query could not be run"),
    "query_failed": lazy_gettext("The query failed after its budget was charged"),
    "engine_rejected": lazy_gettext("The engine cannot run this query"),
    "dataset_budget_exceeded": lazy_gettext("The dataset's total privacy budget is spent"),
    "invalid_sql_text": lazy_gettext("The SQL text is not valid"),
    "implicit_cast": lazy_gettext("A value does not match its column's type"),
    "limit_out_of_range": lazy_gettext("LIMIT is too large"),
    "too_many_groups": lazy_gettext("Too many groups for one release"),
    "bad_confidence": lazy_gettext("Invalid confidence level"),
}


def error_headline(code: str | None) -> str:
    headline = ERROR_HEADLINES.get(code or "")
    return str(headline) if headline is not None else str(lazy_gettext("The request was refused"))
