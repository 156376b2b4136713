"""``sandbox users add``: an authenticated admin creates a user (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.cli.options import (
    DATA_DIR,
    TOKEN,
    authenticate,
    fail,
    json_flag,
    open_sandbox,
    require_role,
)
from sandbox.errors import SandboxError
from sandbox.service.operations import SandboxAdmin


@click.group()
def users() -> None:
    """Create users (the first admin, owners, researchers, regulators)."""


@users.command("add")
@DATA_DIR
@click.argument("username")
@click.option("--role", type=click.Choice(["researcher", "owner", "regulator", "admin"]), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              envvar="SANDBOX_NEW_PASSWORD", help="Prompted when not given (or env SANDBOX_NEW_PASSWORD).")
@json_flag()
@TOKEN
def users_add(data_dir: Path | None, username: str, role: str, password: str, as_json: bool,
              token: str | None) -> None:
    """Create USERNAME with ROLE as an authenticated admin; prints the API token once (only its
    hash is stored). The first admin comes from `sandbox init`."""

    try:
        sb = open_sandbox(data_dir)
        actor = authenticate(sb, token)
        require_role(actor, "admin")
        user, token = SandboxAdmin(sb).create_user(username, role, password, actor=actor)
    except SandboxError as err:
        fail(err.message)
    if as_json:
        click.echo(json.dumps({"username": user.username, "role": user.role, "token": token}))
    else:
        click.echo(f"created {user.role} {user.username}; API token (shown once): {token}")
