"""``sandbox settings list`` and ``sandbox settings set NAME VALUE`` (operators).

The settings (automatic suspension, request rate limits, alert thresholds) live in the
workspace store and are re-read by every serving process; a change is audit-logged as
``setting.changed`` with the old and the new value.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.cli.options import DATA_DIR, TOKEN, authenticate, json_flag, require_role
from sandbox.errors import SandboxError
from sandbox.governance import operator_settings
from sandbox.service.query_service import Sandbox
from sandbox.store.workspace import Workspace, transaction


@click.group("settings")
def settings_group() -> None:
    """Show and change operator settings (limits, alert thresholds)."""


@settings_group.command("list")
@DATA_DIR
@json_flag("Print JSON.")
def settings_list(data_dir: Path | None, as_json: bool) -> None:
    """Every setting with its current value, its default and what it does."""

    try:
        ws = Workspace.open(data_dir)
        rows = operator_settings.listing(ws.connect())
    except SandboxError as err:
        raise click.ClickException(err.message) from None
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        mark = "" if row["value"] == row["default"] else f"  (default {row['default']})"
        click.echo(f"{row['name']} = {row['value']}{mark}\n    {row['help']}")


@settings_group.command("set")
@DATA_DIR
@click.argument("name")
@click.argument("value", type=int)
@TOKEN
def settings_set(data_dir: Path | None, name: str, value: int, token: str | None) -> None:
    """Set NAME (e.g. rate_limits.rate_limit_per_token or alert_repeats) to VALUE."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        actor = authenticate(sb, token)  # issue 14: logged as the admin who changed it
        require_role(actor, "admin")
        conn = sb.conn()
        with transaction(conn):
            done = operator_settings.change(
                conn, name, value,
                lambda details: sb.audit(conn, actor, "setting.changed", f"setting/{details['name']}", details),
            )
    except SandboxError as err:
        raise click.ClickException(err.message) from None
    click.echo(f"{done['name']}: {done['old']} → {done['new']} (logged as setting.changed)")
