"""The CLI acts as an authenticated user (issue 14: accountability of the operator): state-changing
commands need a token or a password, act with that user's rights and are logged under that
user's name; `sandbox init` creates the first admin from the environment."""

from __future__ import annotations

import json

from click.testing import CliRunner

from sandbox.cli.main import cli
from tests.test_workflow_support import audit_entries


def test_dataset_commands_act_as_the_authenticated_user(demo):
    sb, creds = demo
    root = str(sb.ws.root)
    run = CliRunner().invoke
    anonymous = run(cli, ["datasets", "cap", "residents", "--data-dir", root, "--epsilon", "9", "--delta", "1e-6",
                          "--reason", "x"], env={"SANDBOX_TOKEN": ""})
    assert anonymous.exit_code == 1 and "SANDBOX_TOKEN" in anonymous.output
    # a researcher's token: authenticated, but not the owner: refused by the same rules as the API
    researcher = run(cli, ["datasets", "cap", "residents", "--data-dir", root, "--epsilon", "9", "--delta", "1e-6",
                           "--reason", "x"], env={"SANDBOX_TOKEN": creds["researcher"]["token"]})
    assert researcher.exit_code == 1 and "researcher role may not" in researcher.output
    # the owner by user name and password, logged under that name
    ok = run(cli, ["datasets", "cap", "residents", "--data-dir", root, "--epsilon", "9", "--delta", "1e-6",
                   "--reason", "cli as owner", "--json"],
             env={"SANDBOX_TOKEN": "", "SANDBOX_USER": "owner", "SANDBOX_PASSWORD": creds["owner"]["password"]})
    assert ok.exit_code == 0, ok.output
    assert audit_entries(sb, "dataset.budget_cap_set")[-1]["actor"] == "owner"
    wrong = run(cli, ["datasets", "risk", "residents", "--data-dir", root],
                env={"SANDBOX_TOKEN": "", "SANDBOX_USER": "owner", "SANDBOX_PASSWORD": "wrong password"})
    assert wrong.exit_code == 1


def test_the_regulator_co_signs_from_the_cli(demo, tmp_path):
    sb, creds = demo
    root = str(sb.ws.root)
    run = CliRunner().invoke
    listed = run(cli, ["reviews", "list", "--data-dir", root], env={"SANDBOX_TOKEN": creds["regulator"]["token"]})
    assert listed.exit_code == 0 and json.loads(listed.output)[0]["status"] == "approved"
    owner = run(cli, ["reviews", "decide", "1", "--approve", "--reason", "x", "--data-dir", root],
                env={"SANDBOX_TOKEN": creds["owner"]["token"]})
    assert owner.exit_code == 1 and "may not co-sign" in owner.output


def test_init_creates_the_first_admin_from_the_environment(tmp_path):
    root = tmp_path / "ws"
    r = CliRunner().invoke(cli, ["init", "--data-dir", str(root)],
                           env={"SANDBOX_ADMIN_USER": "chief", "SANDBOX_ADMIN_PASSWORD": "a long passphrase"})
    assert r.exit_code == 0, r.output
    token = r.output.split("API token (shown once): ")[1].split()[0]
    from sandbox.service.query_service import Sandbox
    from sandbox.store.users import authenticate_token
    from sandbox.store.workspace import Workspace

    user = authenticate_token(Sandbox(Workspace.open(root)).conn(), token)
    assert (user.username, user.role) == ("chief", "admin")
    again = CliRunner().invoke(cli, ["init", "--data-dir", str(root)], env={"SANDBOX_ADMIN_PASSWORD": "x" * 10})
    assert "API token" not in again.output  # one first admin only
