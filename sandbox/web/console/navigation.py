"""Which pages each role sees in the navigation, and where each role's console starts."""

from __future__ import annotations

from typing import Any, Final

from flask_babel import lazy_gettext

HOME_BY_ROLE: Final = {
    "researcher": "researcher.query",
    "owner": "owner.overview",
    "regulator": "regulator.overview",
    "admin": "enforcement.settings_page",
}
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

