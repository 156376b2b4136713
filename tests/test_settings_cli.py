"""``sandbox settings``: list every operator setting, change one (audit-logged), refuse
unknown names and bad values with a clear message and no change."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sandbox.cli.main import cli
from sandbox.governance import alerts, workflow
from sandbox.store import rate_limits


def _run(*args: str, token: str = ""):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"SANDBOX_TOKEN": token})


def _admin_token(sb) -> str:
    """Issue 14: changing a setting is an admin's act, logged under the admin's name."""
    from sandbox.service.operations import SandboxAdmin

    return SandboxAdmin(sb).create_user("ops", "admin", "ops-password")[1]


def test_list_shows_every_group_with_defaults(demo):
    sb, _ = demo
    out = _run("settings", "list", "--data-dir", str(sb.ws.root), "--json")
    assert out.exit_code == 0
    names = {row["name"]: row for row in json.loads(out.output)}
    for group in (workflow.SETTING_GROUP, rate_limits.SETTING_GROUP, alerts.SETTING_GROUP):
        for name, setting in group.settings.items():
            assert names[f"{group.prefix}.{name}"]["value"] == setting.default


def test_set_changes_the_value_and_is_audit_logged(demo):
    sb, creds = demo
    refused = _run("settings", "set", "--data-dir", str(sb.ws.root), "rate_limit_per_token", "50",
                   token=creds["owner"]["token"])
    assert refused.exit_code == 1 and "needs the admin role" in refused.output
    unauthenticated = _run("settings", "set", "--data-dir", str(sb.ws.root), "rate_limit_per_token", "50")
    assert unauthenticated.exit_code == 1 and "SANDBOX_TOKEN" in unauthenticated.output
    admin = _admin_token(sb)
    out = _run("settings", "set", "--data-dir", str(sb.ws.root), "rate_limit_per_token", "50", token=admin)
    assert out.exit_code == 0, out.output
    assert "1200 → 50" in out.output
    conn = sb.conn()
    assert rate_limits.SETTING_GROUP.get(conn, "rate_limit_per_token") == 50
    row = conn.execute("SELECT entry FROM audit_entries WHERE action = 'setting.changed' "
                       "ORDER BY seq DESC LIMIT 1").fetchone()
    assert json.loads(row[0])["details"] == {"name": "rate_limits.rate_limit_per_token", "old": 1200, "new": 50}
    assert json.loads(row[0])["actor"] == "ops"
    out = _run("settings", "set", "--data-dir", str(sb.ws.root), "alerts.alert_repeats", "3", token=admin)
    assert out.exit_code == 0 and alerts.SETTING_GROUP.get(conn, "alert_repeats") == 3


def test_unknown_names_and_bad_values_are_refused_unchanged(demo):
    sb, _ = demo
    admin = _admin_token(sb)
    out = _run("settings", "set", "--data-dir", str(sb.ws.root), "no_such_limit", "5", token=admin)
    assert out.exit_code == 1 and "unknown setting 'no_such_limit'" in out.output
    assert "workflow.auto_suspend_refusals" in out.output  # names what exists
    out = _run("settings", "set", "--data-dir", str(sb.ws.root), "rate_limit_window_seconds", "0", token=admin)
    assert out.exit_code == 1 and "at least 1" in out.output
    assert rate_limits.SETTING_GROUP.get(sb.conn(), "rate_limit_window_seconds") == 60
    assert sb.conn().execute("SELECT COUNT(*) FROM audit_entries WHERE action = 'setting.changed'").fetchone()[0] == 0
