"""What every ``sandbox`` command group shares: the common options, opening the workspace,
the acting user, and how a failure is reported.

Exit codes of every command: 0 ok, 1 failure, 2 usage.

Who is acting (issue 14: accountability of the operator): every state-changing command acts
as an authenticated user — with that user's role and rights, checked by the same service
functions as the API — and is logged under that user's name, never as an anonymous "owner"
or "system". The user is given by an API token (``--token`` or the environment variable
``SANDBOX_TOKEN``), or by ``SANDBOX_USER`` and ``SANDBOX_PASSWORD``, or, at a terminal, by a
prompt. Secrets only from the environment or a prompt, never from the command line's
history when avoidable (STYLE.md habit 12).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from sqlite3 import Connection
from typing import Any, NoReturn

import click

import keys as keys_lib
from sandbox.errors import SandboxError, Unauthorized
from sandbox.service.query_service import Sandbox
from sandbox.store.users import User, authenticate_password, authenticate_token
from sandbox.store.workspace import Workspace

DATA_DIR = click.option(
    "--data-dir",
    envvar="SANDBOX_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Workspace folder (env SANDBOX_DATA_DIR; default ./sandbox-data).",
)
TOKEN = click.option("--token", envvar="SANDBOX_TOKEN", default=None, show_envvar=True,
                     help="API token of the user acting (or SANDBOX_USER and SANDBOX_PASSWORD, or a prompt).")
CRYPTO = click.option(
    "--crypto", type=click.Choice(["intl", "sm"]), default=None,
    help="Cryptography profile of a new workspace: intl (Ed25519, SHA-256, AES-GCM; the default) "
         "or sm (SM2, SM3, SM4-GCM, for 密评). Fixed for the workspace's life.")


def json_flag(help_text: str | None = None) -> Any:
    """``--json`` (as ``as_json``): each command group words its help as it always has."""

    return click.option("--json", "as_json", is_flag=True, help=help_text)


#: ``--json`` of the audit, keys, backup and restore commands
JSON = json_flag("Machine-readable output on stdout.")


def fail(message: str, as_json: bool = False, **fields: Any) -> NoReturn:
    """Report ``message`` (red on stderr, or as ``{"ok": false, ...}`` JSON) and exit 1."""

    if as_json:
        click.echo(json.dumps({"ok": False, "error": message, **fields}, ensure_ascii=False))
    else:
        click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def echo_json(value: Any) -> None:
    """Pretty JSON on stdout, non-ASCII text as is."""

    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def now() -> datetime:
    return datetime.now(UTC)


def open_sandbox(data_dir: Path | None) -> Sandbox:
    """The workspace's service (raises ``SandboxError``; the command reports it)."""

    return Sandbox(Workspace.open(data_dir))


def open_workspace(data_dir: Path | None) -> tuple[Workspace, Connection]:
    """The workspace and a connection to its store, or exit 1 saying why not."""

    try:
        ws = Workspace.open(data_dir)
    except SandboxError as err:
        fail(err.message)
    return ws, ws.connect()


def workspace_keyring(ws: Workspace) -> keys_lib.KeyRing:
    """The workspace's key ring, or exit 1 (a ring of another profile than the workspace's
    is refused, issue 17)."""

    try:
        return keys_lib.KeyRing.open_or_create(ws.keys_dir, profile=ws.crypto_profile())
    except keys_lib.KeysError as err:
        fail(str(err))


def authenticate(sb: Sandbox, token: str | None) -> User:
    """The acting user, or ``Unauthorized`` naming the ways to authenticate."""

    conn = sb.conn()
    if token:
        return authenticate_token(conn, token.strip())
    username, password = os.environ.get("SANDBOX_USER"), os.environ.get("SANDBOX_PASSWORD")
    if not username and sys.stdin.isatty():
        username = click.prompt("user name", err=True)
        password = click.prompt("password", hide_input=True, err=True)
    if username and password:
        return authenticate_password(conn, username, password)
    raise Unauthorized("this command acts as a user: pass --token (or set SANDBOX_TOKEN), or set SANDBOX_USER "
                       "and SANDBOX_PASSWORD, or run it at a terminal to be asked")


def require_role(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise Unauthorized(f"{user.username} is a {user.role}; this command needs the {' or '.join(roles)} role")
