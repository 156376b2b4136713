"""``sandbox audit witness``: the regulator cosigns checkpoints that extend the last one it
accepted, from the workspace or from a running server (``--url``), and refuses a fork or a
rollback loudly (added to ``sandbox audit`` by ``sandbox.cli.audit``).

Exit codes: 0 cosigned, 1 refused (fork, rollback) or failed, 2 usage.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.request
from pathlib import Path
from sqlite3 import Connection
from typing import Any, NoReturn

import click

import audit_log.store as audit_store
import keys as keys_lib
from audit_log.checkpoint import Checkpoint, Note
from audit_log.errors import AuditError, ForkError, RollbackError
from audit_log.store import StoredCheckpoint
from audit_log.witness import Witness
from sandbox.cli.options import DATA_DIR, JSON, fail, now, open_workspace, workspace_keyring
from sandbox.errors import SandboxError
from sandbox.store.context import issue_checkpoint
from sandbox.store.workspace import Workspace

WITNESS_PASSPHRASE_ENV = "SANDBOX_WITNESS_PASSPHRASE"


def _fetch_json(url: str, token: str | None) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (operator-given URL)
        data: dict[str, Any] = json.loads(response.read())
    return data


@click.command("witness")
@DATA_DIR
@click.option(
    "--state",
    "state_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The regulator's own folder: witness key, pinned log key, last accepted checkpoint.",
)
@click.option("--name", default="regulator.witness", show_default=True, help="Witness key name.")
@click.option(
    "--log-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="PEM of the log key to trust (pinned on first use if omitted).",
)
@click.option(
    "--url",
    default=None,
    help="Fetch the checkpoint and proof from a running server (e.g. http://host:8642) "
    "instead of reading the workspace; the cosignature is then kept and printed only.",
)
@click.option(
    "--token",
    envvar="SANDBOX_TOKEN",
    default=None,
    help="Bearer token for --url (env SANDBOX_TOKEN).",
)
@JSON
def audit_witness(
    data_dir: Path | None,
    state_dir: Path,
    name: str,
    log_key: Path | None,
    url: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Act as witness: check the latest checkpoint extends the last one accepted, cosign it.

    A fork (same size, other root, or no valid consistency proof) or a rollback (smaller
    tree) is refused loudly with exit 1 and evidence written to the state folder.
    """

    state_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)
    conn = ws = None
    if url is None:
        ws, conn = open_workspace(data_dir)
    pinned = _pin_log_key(state_dir, log_key, ws, as_json)
    witness = _open_witness(state_dir, name, pinned, as_json)
    stored = None
    try:
        if url is not None:
            note = str(_fetch_json(f"{_api(url)}/checkpoint", token)["checkpoint"])
        else:
            assert ws is not None and conn is not None
            stored = _latest_checkpoint(ws, conn, as_json)
            note = stored.note
        checkpoint = Checkpoint.parse(Note.parse(note).text)
        accepted = witness.accepted(checkpoint.origin)
        old_size = accepted.size if accepted else 0
        proof: list[bytes] = []
        if accepted and old_size <= checkpoint.size:
            proof = _consistency_proof(url, token, conn, old_size, checkpoint.size)
        sig = witness.add_checkpoint(note, proof, now())
    except (ForkError, RollbackError) as err:
        _refuse(err, as_json)
    except (AuditError, OSError, ValueError, KeyError) as err:
        fail(str(err), as_json)
    if stored is not None and conn is not None:
        _keep_cosignature(conn, stored, sig.line())
    if as_json:
        click.echo(json.dumps({
            "ok": True,
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "previous_size": old_size,
            "cosignature": sig.line().rstrip("\n"),
            "witness": name,
        }, ensure_ascii=False))
    else:
        click.echo(
            f"cosigned {checkpoint.origin} at size {checkpoint.size} (previously {old_size})"
        )
        if url is not None:
            click.echo(sig.line().rstrip("\n"))


def _api(url: str) -> str:
    return url.rstrip("/") + "/api/v1/audit"


def _pin_log_key(state_dir: Path, log_key: Path | None, ws: Workspace | None, as_json: bool) -> Path:
    """The pinned log key file: ``--log-key``, else the one pinned before, else the
    workspace's keys (trust on first use)."""

    pinned = state_dir / "log-key.pem"
    if log_key is not None:
        pinned.write_text(log_key.read_text(encoding="utf-8"), encoding="utf-8")
    elif not pinned.exists():
        if ws is None:
            fail("give --log-key the first time a witness follows a server by --url", as_json)
        infos = workspace_keyring(ws).log_public_keys()
        pinned.write_text("".join(i.pem() for i in infos), encoding="utf-8")
        click.echo(f"pinned the log key(s) of {ws.root} in {pinned} (trust on first use)", err=True)
    return pinned


def _open_witness(state_dir: Path, name: str, pinned: Path, as_json: bool) -> Witness:
    """The witness, signing with the log's profile (SM2 cosignatures for an SM2 log, issue 17)."""

    env = os.environ.get(WITNESS_PASSPHRASE_ENV)
    try:
        log_profile = keys_lib.key_profile(
            keys_lib.split_pem_public_keys(pinned.read_text(encoding="utf-8"))[0]
        )
        wring = keys_lib.KeyRing.open_or_create(
            state_dir / "keys", env.encode() if env else None, profile=log_profile
        )
        signer = wring.signer(name)
    except keys_lib.KeysError as err:
        fail(str(err), as_json)
    return Witness(
        signer, [pinned.read_text(encoding="utf-8")], state_dir / "witness-state.json"
    )


def _latest_checkpoint(ws: Workspace, conn: Connection, as_json: bool) -> StoredCheckpoint:
    """A fresh checkpoint if the log key opens here; else the latest stored one."""

    try:
        issue_checkpoint(ws, conn, now())
    except (keys_lib.KeysError, AuditError, SandboxError):
        pass
    stored = audit_store.latest_stored_checkpoint(conn)
    if stored is None:
        fail("the log has no checkpoint yet", as_json)
    return stored


def _consistency_proof(url: str | None, token: str | None, conn: Connection | None, old_size: int,
                       new_size: int) -> list[bytes]:
    if url is not None:
        hashes = _fetch_json(f"{_api(url)}/proofs/consistency?from={old_size}&to={new_size}", token)
        return [base64.b64decode(h) for h in hashes["hashes"]]
    assert conn is not None
    return audit_store.consistency_proof(conn, old_size, new_size)


def _refuse(err: ForkError | RollbackError, as_json: bool) -> NoReturn:
    kind = "fork" if isinstance(err, ForkError) else "rollback"
    if as_json:
        click.echo(json.dumps({"ok": False, "kind": kind, "error": str(err)}))
    else:
        click.secho("!" * 72, fg="red", err=True)
        click.secho(f"WITNESS REFUSED THE CHECKPOINT: {err}", fg="red", bold=True, err=True)
        click.secho("!" * 72, fg="red", err=True)
    sys.exit(1)


def _keep_cosignature(conn: Connection, stored: StoredCheckpoint, line: str) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
        audit_store.add_cosignature(conn, stored.id, line, now())
        conn.execute("COMMIT")
    except AuditError:
        conn.execute("ROLLBACK")  # already cosigned by this witness: nothing to add
