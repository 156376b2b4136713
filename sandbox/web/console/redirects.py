"""Where a console redirect may go (``?next=`` after login, a form's ``next``): this site only.

SECURITY: an open redirect would let a link to this site send the reader anywhere.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import unquote, urlsplit


def _unsafe_char(ch: str) -> bool:
    """Whitespace, control and format characters (tab, newline, NUL, U+200B, …) and the
    backslash: browsers drop or reinterpret them, so a tab between two slashes turns
    ``/<TAB>/evil.example`` into ``//evil.example`` (issue 12, finding 6)."""
    return ch == "\\" or ch.isspace() or unicodedata.category(ch)[0] in ("C", "Z")


def safe_next(target: Any) -> str | None:
    """``target`` if it is a same-site relative path, else None: never an open redirect.

    SECURITY: accepted only if it starts with one ``/`` (not ``//`` or ``/\\``), holds no
    whitespace, control character or backslash, and has no scheme or host when parsed
    (``urllib.parse.urlsplit``), both as given and after percent-decoding (repeatedly, as
    a chain of redirects might). One exception: once decoded, the query string may hold
    spaces (``/query?sql=SELECT%20…`` is the workbench's own link; a query string cannot
    name a host). Never raises.

    >>> safe_next("/query?sql=SELECT%20COUNT(*)"), safe_next("/%09/example.com")
    ('/query?sql=SELECT%20COUNT(*)', None)
    >>> safe_next("//example.com"), safe_next("/%2F/example.com"), safe_next("http://x")
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
