"""Users, roles, passwords and API tokens.

SECURITY: passwords are stored only as slow hashes and tokens only as hashes (``keys``):
Argon2id and SHA-256 in the ``intl`` cryptography profile, PBKDF2-HMAC-SM3 and HMAC-SM3 in
the ``sm`` profile (issue 17, the workspace's ``crypto_profile``); a wrong username and a
wrong password give the same answer.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from dataclasses import dataclass

import keys
from sandbox.clock import Clock, iso
from sandbox.errors import BadRequest, SandboxError, Unauthorized
from sandbox.store.workspace import crypto_profile

ROLES = ("researcher", "owner", "regulator", "admin")
# Usernames become key names (``owner:<username>``) and audit actors: keep them plain.
USERNAME_RE = re.compile(r"^[a-z][a-z0-9_.-]{1,31}$")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    display_name: str = ""


def _user(row: sqlite3.Row) -> User:
    return User(row["id"], row["username"], row["role"], row["display_name"])


def create_user(
    conn: sqlite3.Connection, username: str, role: str, password: str, *, now: Clock, display_name: str = ""
) -> User:
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if not isinstance(username, str) or not USERNAME_RE.match(username):
        raise BadRequest("a username is 2-32 lower-case letters, digits, '_', '.' or '-', starting with a letter")
    if not isinstance(password, str) or len(password) < 8:
        raise BadRequest("passwords need at least 8 characters")
    if find_user(conn, username) is not None:
        raise SandboxError(f"the username {username!r} is taken", code="conflict", status=409)
    cur = conn.execute(
        "INSERT INTO users (username, role, display_name, password_hash, created_at) VALUES (?,?,?,?,?)",
        (username, role, display_name, keys.hash_password(password, crypto_profile(conn)), iso(now())),
    )
    return User(int(cur.lastrowid), username, role, display_name)  # type: ignore[arg-type]


def issue_token(conn: sqlite3.Connection, user: User, *, now: Clock, label: str = "") -> str:
    """A new API token; only its hash is stored, so this is the one time it is seen."""
    token = keys.new_token()
    conn.execute(
        "INSERT INTO api_tokens (user_id, token_hash, label, created_at) VALUES (?,?,?,?)",
        (user.id, keys.hash_token(token, crypto_profile(conn)), label, iso(now())),
    )
    return token


def rotate_tokens(conn: sqlite3.Connection, user: User, *, now: Clock, label: str = "rotated") -> tuple[int, str]:
    """Revoke every live token of ``user`` and issue one new token (returned once)."""
    cur = conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                       (iso(now()), user.id))
    return cur.rowcount, issue_token(conn, user, now=now, label=label)


def get_user(conn: sqlite3.Connection, user_id: int) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    return _user(row) if row else None


def find_user(conn: sqlite3.Connection, username: str) -> User | None:
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    return _user(row) if row else None


def authenticate_token(conn: sqlite3.Connection, token: str) -> User:
    row = conn.execute(
        "SELECT u.*, t.id AS token_id, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE t.token_hash = ? AND t.revoked_at IS NULL",
        (keys.hash_token(token, crypto_profile(conn)),),
    ).fetchone()
    if row is None:
        raise Unauthorized("the API token is not valid; send Authorization: Bearer <token>")
    # issue 14: "last used", shown to the token's owner; written at most once a minute per token
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if row["last_used_at"] is None or row["last_used_at"] < iso(now - dt.timedelta(minutes=1)):
        conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (iso(now), row["token_id"]))
    return _user(row)


# A fixed hash per profile to verify against when the user does not exist, so timing
# does not tell.
_DUMMY_HASHES: dict[str, str] = {}


def authenticate_password(conn: sqlite3.Connection, username: str, password: str) -> User:
    row = conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
    if row is None:
        profile = crypto_profile(conn)
        if profile not in _DUMMY_HASHES:
            _DUMMY_HASHES[profile] = keys.hash_password("not-a-real-password", profile)
        stored = _DUMMY_HASHES[profile]
    else:
        stored = row["password_hash"]
    try:
        keys.verify_password(stored, password)
    except keys.KeysError:
        raise Unauthorized("wrong username or password") from None
    if row is None:
        raise Unauthorized("wrong username or password")
    return _user(row)
