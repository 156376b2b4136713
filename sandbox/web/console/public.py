"""Public pages, no login needed: the open list (开放清单, 第十四条) and the transparency page.

What an anonymous reader sees is decided by ``sandbox.governance.open_catalog`` and ``sandbox.governance.transparency``
(the same functions as ``GET /api/v1/catalog``); a signed-in owner or regulator also sees
their unpublished and not-open entries, as the API shows them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template, request

from sandbox.governance import open_catalog as catalog_service
from sandbox.governance import transparency as transparency_service
from sandbox.web.console.base import current_user, sandbox

bp = Blueprint("public", __name__)


def _download_links(entry: dict) -> dict[str, str]:
    """Only links the running app serves (the download route belongs to the JSON API)."""
    if "api_workflow.download" not in current_app.view_functions:
        return {}
    return dict(entry["access"].get("download") or {})


TIERS = ("unconditional", "conditional", "not_open")


def matches(entry: dict[str, Any], words: list[str]) -> bool:
    """Catalog search (issue 15): every word appears in the entry's name, titles,
    description, conditions, or a column's name or description (case-insensitive).

    >>> e = {"name": "residents", "title": "Residents", "title_zh": "常住人口", "columns": [{"name": "district"}]}
    >>> matches(e, ["人口"]), matches(e, ["DISTRICT", "resid"]), matches(e, ["income"])
    (True, True, False)
    """
    text = " ".join([entry.get("name", ""), entry.get("title", ""), entry.get("title_zh", ""),
                     entry.get("description", ""), entry.get("open_conditions", "")]
                    + [f"{c.get('name', '')} {c.get('description', '')}" for c in entry.get("columns", [])]).casefold()
    return all(w.casefold() in text for w in words)


@bp.get("/catalog")
def catalog():
    entries = catalog_service.list_entries(sandbox(), current_user())
    total = len(entries)
    q = (request.args.get("q") or "").strip()[:200]
    tier = request.args.get("tier") or ""
    if q:
        entries = [e for e in entries if matches(e, q.split())]
    if tier in TIERS:
        entries = [e for e in entries if e["tier"] == tier]
    has_jsonld = "api_workflow.get_catalog_jsonld" in current_app.view_functions
    return render_template("public/catalog.html", entries=entries, has_jsonld=has_jsonld, q=q,
                           tier=tier if tier in TIERS else "", tiers=TIERS, total=total)


@bp.get("/catalog/<name>")
def dataset(name: str):
    entry = catalog_service.get_entry(sandbox(), current_user(), name)
    return render_template("public/dataset.html", entry=entry, downloads=_download_links(entry))


@bp.get("/transparency")
def transparency():
    return render_template("public/transparency.html", page=transparency_service.page(sandbox(), current_user()))

