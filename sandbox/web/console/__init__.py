"""The web console: one blueprint module per area's pages, over shared helpers in ``base``.

Blueprints, and whose pages they hold (endpoint names are ``<blueprint>.<view>``):

- ``console`` (``login``): log in and out, the home redirect by role, the language switch;
- ``public``: the open list and transparency pages, no login;
- ``researcher``: the SQL workbench, saved queries, history, downloads of releases;
- ``owner`` and ``owner_datasets``: the data owner's overview, applications, budgets and
  alerts; registering, publishing and tiering datasets (under ``/owner/datasets``);
- ``regulator``: the overview, audit timeline, replay, tracing a figure, alerts;
- areas several roles share, each role seeing its part: ``oversight`` (suspensions and
  objections), ``reviews`` (co-signing publication and tier changes), ``enforcement``
  (rectification, terminations, alert handling, public objections, opening plans, and the
  administrator's settings page), ``self_service`` (registering, applying, attachments,
  one's applications and API tokens).

This package's face registers them all and the template helpers (``templating``); ``base``
knows none of the page modules, so the arrows run one way (page module → base).
"""

from __future__ import annotations

from flask import Flask

from sandbox.web import i18n
from sandbox.web.console import (
    enforcement,
    login,
    oversight,
    owner,
    owner_datasets,
    public,
    regulator,
    researcher,
    reviews,
    self_service,
    templating,
)


def init_app(app: Flask) -> None:
    """Languages, the template helpers and every console blueprint (called by ``create_app``)."""
    i18n.init_app(app)
    templating.init_app(app)
    for module in (login, public, researcher, owner, owner_datasets, regulator, oversight, reviews, enforcement,
                   self_service):
        app.register_blueprint(module.bp)
