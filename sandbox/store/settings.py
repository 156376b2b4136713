"""Operator settings kept in the workspace's ``settings`` table, one group per module.

Why a table and not a config file: several ``sandbox serve`` processes share one
workspace, and a limit changed by an operator (automatic suspension, rate limits,
alert thresholds) must reach all of them; each group's readers re-read the table. Every
change made through ``sandbox settings set`` is recorded in the audit log
(``setting.changed``), so a regulator can see when a safeguard was loosened.
"""

from __future__ import annotations

import sqlite3
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
