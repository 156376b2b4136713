"""Every operator setting of the workspace, listed and changed in one place.

Why here and not in ``sandbox.store.settings``: the groups belong to the modules that read
them (workflow, alerts, deadlines, objections, self-service, rate limits), which all import
the store; gathering them in the store would point its arrows back up. Every change is
logged as ``setting.changed`` with the old and new value, so a regulator sees when a
safeguard was loosened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from audit_log.actions import Action
from sandbox.errors import BadRequest
from sandbox.governance import alerts, deadlines, public_objections, self_service, workflow
from sandbox.store import authz, rate_limits
from sandbox.store.context import Context
from sandbox.store.settings import SettingGroup
from sandbox.store.users import User
from sandbox.store.workspace import transaction


def all_groups() -> list[SettingGroup]:
    """Every group, imported late (the modules owning them import this one)."""

    return [workflow.SETTING_GROUP, rate_limits.SETTING_GROUP, alerts.SETTING_GROUP, deadlines.SETTING_GROUP,
            public_objections.SETTING_GROUP, self_service.SETTING_GROUP]


def find(name: str) -> SettingGroup:
    """The group holding ``name`` (bare, or qualified as ``<prefix>.<name>``)."""
    prefix, _, bare = name.rpartition(".")
    for group in all_groups():
        if bare in group.settings and prefix in ("", group.prefix):
            return group
    known = ", ".join(f"{g.prefix}.{n}" for g in all_groups() for n in g.settings)
    raise BadRequest(f"unknown setting {name!r}; known settings: {known}")


def listing(conn: sqlite3.Connection) -> list[dict]:
    return [
        {"name": f"{g.prefix}.{s.name}", "value": g.get(conn, s.name), "default": s.default, "help": s.help}
        for g in all_groups() for s in g.settings.values()
    ]


def change(conn: sqlite3.Connection, name: str, value: int, audit: Callable[[dict], None]) -> dict:
    """Set one setting and record old and new values through ``audit`` (same transaction)."""
    group = find(name)
    bare = name.rpartition(".")[2]
    old = group.get(conn, bare)
    group.set(conn, bare, value)
    details = {"name": f"{group.prefix}.{bare}", "old": old, "new": value}
    audit(details)
    return details


# -- the settings, for admins (console and API; issue 14) ------------------------------------------------
def list_settings(sb: Context, user: User | None) -> list[dict[str, Any]]:
    """Every operator setting with its value, default and help (admin, regulator)."""
    authz.check_role("setting.list", user)
    return listing(sb.conn())


def change_setting(sb: Context, user: User | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PUT /api/v1/settings/<name>`` ``{"value"}`` (admin): logged as ``setting.changed`` by the admin."""
    authz.check_role("setting.change", user)
    value = body.get("value")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    conn = sb.conn()
    with transaction(conn):
        return change(conn, name, value,  # type: ignore[arg-type]
                               lambda details: sb.audit(conn, user, Action.SETTING_CHANGED,
                                                        f"setting/{details['name']}", details))
