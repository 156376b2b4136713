"""``sandbox keys public|rotate|passphrase``: the workspace's audit-log key.

Exit codes: 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import click

import audit_log.store as audit_store
import keys as keys_lib
from sandbox.cli.options import DATA_DIR, JSON, fail, now, open_workspace, workspace_keyring
from sandbox.store.workspace import log_origin


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@click.group("keys")
def keys_group() -> None:
    """The workspace's keys: print the audit log's public key, rotate it."""


@keys_group.command("public")
@DATA_DIR
@click.option(
    "--all", "all_keys", is_flag=True, help="Also retired keys (to verify old checkpoints)."
)
@click.option("--vkey", is_flag=True, help="C2SP verifier key strings instead of PEM.")
@JSON
def keys_public(data_dir: Path | None, all_keys: bool, vkey: bool, as_json: bool) -> None:
    """Print the audit log's public key (PEM)."""
    ws, _conn = open_workspace(data_dir)
    infos = workspace_keyring(ws).log_public_keys()
    if not all_keys:
        infos = infos[:1]
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "key_id": i.key_id,
                        "created": i.created,
                        "retired": i.retired,
                        "pem": i.pem(),
                        "vkey": keys_lib.verifier_key(i.name, i.public_key),
                        "fingerprint": keys_lib.fingerprint(i.public_key),
                    }
                    for i in infos
                ]
            )
        )
        return
    for info in infos:
        click.echo(
            keys_lib.verifier_key(info.name, info.public_key) if vkey else info.pem().rstrip("\n")
        )


@keys_group.command("rotate")
@DATA_DIR
@JSON
def keys_rotate(data_dir: Path | None, as_json: bool) -> None:
    """Replace the audit-log signing key; the rotation is logged and vouched for by the old key.

    The ``key.rotated`` entry is covered by a checkpoint signed with the old key, then a
    checkpoint is signed with the new one, so a verifier holding the old key learns the new.
    """
    ws, conn = open_workspace(data_dir)
    ring = workspace_keyring(ws)
    old_signer = ring.log_signer()  # stays usable in memory after the rotation
    origin = log_origin(conn)
    conn.execute("BEGIN IMMEDIATE")  # hold the write lock: no entry slips between the steps
    try:
        rotation = ring.rotate_log_key()
        new_signer = ring.log_signer()
        entry = audit_store.append(
            conn,
            actor=_cli_actor(),
            role="admin",
            action="key.rotated",
            subject="key:sandbox-audit",
            details={
                "old_key_id": rotation.old_key_id,
                "new_key_id": rotation.new_key_id,
                "new_verifier_key": new_signer.verifier_key(),
                "new_public_key": new_signer.public_key_pem(),
            },
            now=now(),
        )
        audit_store.issue_checkpoint(conn, old_signer, origin, now())
        audit_store.issue_checkpoint(conn, new_signer, origin, now())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    result = {
        "ok": True,
        "old_key_id": rotation.old_key_id,
        "new_key_id": rotation.new_key_id,
        "log_seq": entry.seq,
    }
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(
            f"rotated the audit log key {rotation.old_key_id} -> {rotation.new_key_id} "
            f"(logged as entry {entry.seq})"
        )
        click.echo("verifiers: `sandbox keys public --all` prints old and new keys")


@keys_group.command("passphrase")
@DATA_DIR
@click.option(
    "--new-from-env",
    default="SANDBOX_NEW_KEY_PASSPHRASE",
    show_default=True,
    help="Read the new passphrase from this environment variable (else prompt).",
)
def keys_passphrase(data_dir: Path | None, new_from_env: str) -> None:
    """Re-seal all keys under a new passphrase (and delete a generated passphrase file).

    Afterwards supply it as SANDBOX_KEY_PASSPHRASE (e.g. from a secrets manager).
    """
    ws, _conn = open_workspace(data_dir)
    ring = workspace_keyring(ws)
    new = os.environ.get(new_from_env) or click.prompt(
        "new passphrase", hide_input=True, confirmation_prompt=True
    )
    try:
        ring.change_passphrase(new.encode())
    except keys_lib.KeysError as err:
        fail(str(err))
    click.echo(f"keys in {ws.keys_dir} re-sealed; set SANDBOX_KEY_PASSPHRASE to open them")
