"""``sandbox backup OUT`` and ``sandbox restore IN`` (added to the root group by ``sandbox.cli.main``).

Exit codes: 0 ok, 1 failure (refused, damaged archive, log does not verify), 2 usage.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from sandbox.cli.options import DATA_DIR, JSON
from sandbox.errors import SandboxError
from sandbox.store.backup import backup
from sandbox.store.restore import restore


def _fail(err: SandboxError, as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps({"ok": False, "code": err.code, "error": err.message}, ensure_ascii=False)
        )
    else:
        click.secho(f"error: {err.message}", fg="red", err=True)
    sys.exit(1)


def _echo(report: object, as_json: bool, text: str) -> None:
    if as_json:
        click.echo(json.dumps({"ok": True, **asdict(report)}, default=str, ensure_ascii=False))  # type: ignore[call-overload]
    else:
        click.secho(text, fg="green")


@click.command("backup")
@DATA_DIR
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--no-checkpoint",
    is_flag=True,
    help="Do not sign a fresh checkpoint first (the backup's log may then have an unsigned tail).",
)
@JSON
def backup_command(data_dir: Path | None, out: Path, no_checkpoint: bool, as_json: bool) -> None:
    """Write an online, consistent backup of the workspace to OUT (.tar.gz, mode 0600).

    Safe while the server runs: the store is copied with SQLite's backup API; a manifest
    records SHA-256 hashes, the audit log size and its latest signed checkpoint.
    """

    try:
        report = backup(data_dir, out, sign_checkpoint=not no_checkpoint)
    except SandboxError as err:
        _fail(err, as_json)
        return
    _echo(
        report,
        as_json,
        f"backup written to {report.path}: {report.files} files, {report.bytes} bytes, "
        f"audit log {report.audit_size} entries (checkpoint {report.checkpoint_size})",
    )


@click.command("restore")
@DATA_DIR
@click.argument(
    "archive", metavar="IN", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--force", is_flag=True, help="Replace a non-empty workspace (moved aside, not deleted)."
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="PEM file of the audit log's public key, obtained out of band (recommended); "
    "default: the key ring inside the backup.",
)
@JSON
def restore_command(
    data_dir: Path | None, archive: Path, force: bool, public_keys: tuple[str, ...], as_json: bool
) -> None:
    """Restore the backup IN into the workspace (--data-dir), after checking every hash,
    verifying the audit log against its signed checkpoint and the ledger against the log."""

    pems = [Path(p).read_text(encoding="utf-8") for p in public_keys] or None
    try:
        report = restore(archive, data_dir, force=force, public_keys=pems)
    except SandboxError as err:
        _fail(err, as_json)
        return
    moved = (
        f"; the previous workspace was moved to {report.moved_aside}" if report.moved_aside else ""
    )
    _echo(
        report,
        as_json,
        f"restored {report.files} files into {report.path}; audit log of {report.audit_size} "
        f"entries verified with {report.verified_with}; ledger equals the logged charges{moved}",
    )
