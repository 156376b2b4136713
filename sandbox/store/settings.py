"""Operator settings kept in the workspace's ``settings`` table, one group per module.

Why a table and not a config file: several ``sandbox serve`` processes share one
workspace, and a limit changed by an operator (automatic suspension, rate limits,
alert thresholds) must reach all of them; each group's readers re-read the table. Every
change made through ``sandbox settings set`` is recorded in the audit log
(``setting.changed``), so a regulator can see when a safeguard was loosened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.errors import BadRequest


@dataclass(frozen=True)
class Setting:
    name: str
    default: int
    help: str
    minimum: int = 0


class SettingGroup:
    """Whole-number settings stored as ``<prefix>.<name>`` rows."""

    def __init__(self, prefix: str, *settings: Setting):
        self.prefix = prefix
        self.settings: dict[str, Setting] = {s.name: s for s in settings}

    def get(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute("SELECT value FROM settings WHERE name = ?", (f"{self.prefix}.{name}",)).fetchone()
        return int(row[0]) if row else self.settings[name].default

    def set(self, conn: sqlite3.Connection, name: str, value: int) -> None:
        setting = self.settings.get(name)
        if setting is None:
            raise BadRequest(f"unknown setting {name!r}; use one of {', '.join(self.settings)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < setting.minimum:
            raise BadRequest(f"{name} must be a whole number of at least {setting.minimum}")
        conn.execute("INSERT INTO settings (name, value) VALUES (?, ?) "
                     "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                     (f"{self.prefix}.{name}", str(value)))


def all_groups() -> list[SettingGroup]:
    """Every group, imported late (the modules owning them import this one)."""
    from sandbox.governance import alerts, deadlines, public_objections, self_service, workflow
    from sandbox.store import rate_limits

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
