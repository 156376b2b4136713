"""``sandbox init``: a new workspace and its first admin (issue 14)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from sandbox.cli.options import CRYPTO, DATA_DIR, fail
from sandbox.errors import SandboxError
from sandbox.service.operations import SandboxAdmin
from sandbox.service.query_service import Sandbox
from sandbox.store.context import open_keyring
from sandbox.store.workspace import Workspace


@click.command()
@DATA_DIR
@CRYPTO
def init(data_dir: Path | None, crypto: str | None) -> None:
    """Create a workspace (SQLite store, data/ and keys/ folders)."""

    try:
        ws = Workspace.init(data_dir, crypto)

        open_keyring(ws)
    except SandboxError as err:
        fail(err.message)
    click.echo(f"workspace ready at {ws.root} (cryptography profile {ws.crypto_profile()})")
    _first_admin(ws)


def _first_admin(ws: Workspace) -> None:
    """Issue 14: the first admin, from SANDBOX_ADMIN_USER/SANDBOX_ADMIN_PASSWORD or a prompt;
    every later state-changing command acts as an authenticated user (sandbox.cli.options)."""

    sb = Sandbox(ws)
    if sb.conn().execute("SELECT 1 FROM users WHERE role = 'admin'").fetchone():
        return
    username = os.environ.get("SANDBOX_ADMIN_USER") or "admin"
    password = os.environ.get("SANDBOX_ADMIN_PASSWORD")
    if not password and sys.stdin.isatty():
        username = click.prompt("first admin's user name", default=username, err=True)
        password = click.prompt("password", hide_input=True, confirmation_prompt=True, err=True)
    if not password:
        click.echo("no admin yet: set SANDBOX_ADMIN_PASSWORD (and SANDBOX_ADMIN_USER) and run `sandbox init` again",
                   err=True)
        return
    try:
        _user, token = SandboxAdmin(sb).create_user(username, "admin", password, display_name="first admin")
    except SandboxError as err:
        fail(err.message)
    click.echo(f"admin {username!r} created; API token (shown once): {token}")
