"""The alerts page (第二十二、二十三条), one for the owner and the regulator: each role's
blueprint mounts it at its own URL; which alerts a user sees is the service's choice."""

from __future__ import annotations

from flask import render_template, request

from sandbox.governance import alerts as alert_service
from sandbox.web.console.base import sandbox, signed_in


def alerts_page():
    """The signed-in user's alerts, filtered by ``?kind=``; evaluated as the page loads."""
    kind = request.args.get("kind") or None
    items = alert_service.list_alerts(sandbox(), signed_in(), kind=kind)
    return render_template("alerts/list.html", items=items, kind=kind, kinds=alert_service.KINDS)
