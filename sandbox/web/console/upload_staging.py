"""An uploaded file waiting for its policy form: staged encrypted under ``console-uploads/``.

Registering a dataset in the console is two requests (the file, then its policy). In between
the file is kept encrypted, as registered data is (a fresh data key wrapped by the
workspace master key), bound to its uploader and their session, for at most
:data:`STAGING_TTL`; older files are swept at the next upload.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from pathlib import Path
from typing import Any, Final

from flask import session

import keys
from sandbox.clock import iso, parse_iso
from sandbox.web.console.base import sandbox

STAGING_TTL: Final = dt.timedelta(hours=1)
STAGING_DIR: Final = "console-uploads"
TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _staging() -> Path:
    path = sandbox().ws.root / STAGING_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _aad(token: str) -> bytes:
    return f"data-sandbox:console-upload:{token}".encode()


def _sweep(now: dt.datetime) -> None:
    for meta in _staging().glob("*.json"):
        try:
            created = parse_iso(json.loads(meta.read_text())["created_at"])
        except (OSError, ValueError, KeyError):
            created = now - 2 * STAGING_TTL
        if created + STAGING_TTL <= now:
            meta.with_suffix(".bin").unlink(missing_ok=True)
            meta.unlink(missing_ok=True)


def stage(data: bytes, meta: dict[str, Any]) -> str:
    sb = sandbox()
    _sweep(sb.now())
    token = secrets.token_urlsafe(24)
    data_key, wrapped = sb.keyring.new_data_key()
    (_staging() / f"{token}.bin").write_bytes(keys.encrypt_blob(data_key, data, _aad(token)))
    meta = {**meta, "wrapped": base64.b64encode(wrapped).decode(), "created_at": iso(sb.now())}
    (_staging() / f"{token}.json").write_text(json.dumps(meta, ensure_ascii=False))
    return token


def staged(token: str | None, user) -> tuple[dict[str, Any], bytes] | None:
    """The staged upload if it is this user's (the token is also bound to their session)."""
    if not token or not TOKEN_RE.match(token) or session.get("upload") != token:
        return None
    meta_path = _staging() / f"{token}.json"
    try:
        meta = json.loads(meta_path.read_text())
        blob = meta_path.with_suffix(".bin").read_bytes()
    except (OSError, ValueError):
        return None
    if meta.get("owner_id") != user.id or parse_iso(meta["created_at"]) + STAGING_TTL <= sandbox().now():
        return None
    data_key = sandbox().keyring.unwrap_data_key(base64.b64decode(meta["wrapped"]))
    return meta, keys.decrypt_blob(data_key, blob, _aad(token))


def unstage(token: str) -> None:
    if TOKEN_RE.match(token):
        (_staging() / f"{token}.bin").unlink(missing_ok=True)
        (_staging() / f"{token}.json").unlink(missing_ok=True)
    session.pop("upload", None)
