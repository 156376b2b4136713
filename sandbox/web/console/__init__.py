"""The web console: one blueprint per role's pages, with the shared helpers in ``base``.

This package's face registers them all; ``base`` knows none of the role modules, so the
arrows run one way (role module → base).
"""

from __future__ import annotations

from flask import Flask

from sandbox.web import i18n
from sandbox.web.console import (
    base,
    enforcement,
    oversight,
    owner,
    owner_datasets,
    public,
    regulator,
    researcher,
    reviews,
    self_service,
)


def init_app(app: Flask) -> None:
    """Languages and every console blueprint (called by ``create_app``)."""
    i18n.init_app(app)
    app.register_blueprint(base.bp)
    for module in (public, researcher, owner, owner_datasets, regulator, oversight, reviews, enforcement,
                   self_service):
        app.register_blueprint(module.bp)
