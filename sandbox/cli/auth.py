"""Who is acting on the command line (issue 14: accountability of the operator).

Every state-changing CLI command acts as an authenticated user — with that user's role and
rights, checked by the same service functions as the API — and is logged under that user's
name, never as an anonymous "owner" or "system". The user is given by an API token
(``--token`` or the environment variable ``SANDBOX_TOKEN``), or by ``SANDBOX_USER`` and
``SANDBOX_PASSWORD``, or, at a terminal, by a prompt. Secrets only from the environment or a
prompt, never from the command line's history when avoidable (STYLE.md habit 12).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from sandbox.errors import Unauthorized
from sandbox.store.users import authenticate_password, authenticate_token

if TYPE_CHECKING:
    from sandbox.service.query_service import Sandbox
    from sandbox.store.users import User

TOKEN = click.option("--token", envvar="SANDBOX_TOKEN", default=None, show_envvar=True,
                     help="API token of the user acting (or SANDBOX_USER and SANDBOX_PASSWORD, or a prompt).")


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
