"""JSON API of the regulation workflow (issue 6): one blueprint, ``api_workflow``, whose views
sit in one module per area; importing this package adds them all to :data:`bp`.

- ``applications``: applications, approvals and changes to them, attachments, the public dummy run;
- ``datasets``: the catalog, downloads, tiers, risk, classification, caps, reviews, opening plans,
  transparency;
- ``oversight``: suspensions, terminations, alerts, objections, rectification, overdue items,
  settings;
- ``accounts``: users, tokens, organisations.
"""

from __future__ import annotations

from sandbox.web.api.workflow import accounts, applications, datasets, oversight
from sandbox.web.api.workflow.blueprint import bp

#: The area modules, each adding its views to ``bp`` when imported.
AREAS = (applications, datasets, oversight, accounts)
__all__ = ["AREAS", "bp"]
