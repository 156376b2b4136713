"""Public pages, no login needed: the open list (开放清单, 第十四条) and the transparency page.

What an anonymous reader sees is decided by ``sandbox.catalog`` and ``sandbox.transparency``
(the same functions as ``GET /api/v1/catalog``); a signed-in owner or regulator also sees
their unpublished and not-open entries, as the API shows them.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from sandbox import catalog as catalog_service
from sandbox import transparency as transparency_service
from sandbox.web.console import current_user, sandbox

bp = Blueprint("public", __name__)


def _download_links(entry: dict) -> dict[str, str]:
    """Only links the running app serves (the download route belongs to the JSON API)."""
    if "api_workflow.download" not in current_app.view_functions:
        return {}
    return dict(entry["access"].get("download") or {})


@bp.get("/catalog")
def catalog():
    entries = catalog_service.list_entries(sandbox(), current_user())
    has_jsonld = "api_workflow.get_catalog_jsonld" in current_app.view_functions
    return render_template("public/catalog.html", entries=entries, has_jsonld=has_jsonld)


@bp.get("/catalog/<name>")
def dataset(name: str):
    entry = catalog_service.get_entry(sandbox(), current_user(), name)
    return render_template("public/dataset.html", entry=entry, downloads=_download_links(entry))


@bp.get("/transparency")
def transparency():
    return render_template("public/transparency.html", page=transparency_service.page(sandbox(), current_user()))

