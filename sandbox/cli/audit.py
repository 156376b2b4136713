"""``sandbox audit export|verify|replay|trace`` (``audit witness``: ``sandbox.cli.witness``).

``audit verify`` and ``audit replay`` without ``--data-dir`` use only ``audit_log`` and
``keys``: a regulator runs them offline on an export, without trusting the server. The
other commands open the workspace (``--data-dir`` or ``SANDBOX_DATA_DIR``).

Exit codes: 0 ok, 1 failure (damage found, fork, refused), 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from sqlite3 import Connection
from typing import Any

import click

import audit_log.store as audit_store
import keys as keys_lib
from audit_log.checkpoint import load_log_keys, open_checkpoint, tree_hash_for_keys
from audit_log.errors import AuditError, VerificationError
from audit_log.receipt import Receipt, verify_receipt
from audit_log.replay import compare_with_ledger, read_jsonl, replay
from audit_log.report import render_html
from audit_log.verify import verify_file
from sandbox.cli.options import DATA_DIR, JSON, fail, now, open_workspace, workspace_keyring
from sandbox.cli.witness import audit_witness
from sandbox.governance.accounting_replay import check_reported_loss
from sandbox.store.context import issue_checkpoint
from sandbox.store.ledger_sums import approval_sums


@click.group()
def audit() -> None:
    """The tamper-evident audit log: export, verify, replay, witness, trace."""


audit.add_command(audit_witness)


@audit.command("export")
@DATA_DIR
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@JSON
def audit_export(data_dir: Path | None, out: Path, as_json: bool) -> None:
    """Write every entry to OUT (JSON lines) and a fresh signed checkpoint to OUT.checkpoint."""
    ws, conn = open_workspace(data_dir)
    ring = workspace_keyring(ws)
    try:
        issue_checkpoint(ws, conn, now(), ring=ring)
        out.parent.mkdir(parents=True, exist_ok=True)
        result = audit_store.export_jsonl(conn, out)
    except (AuditError, OSError) as err:
        fail(str(err), as_json)
    summary = {
        "ok": True,
        "log": str(result.path),
        "entries": result.entries,
        "checkpoint": str(result.checkpoint_path),
        "checkpoint_size": result.checkpoint_size,
        "public_key": ring.log_signer().public_key_pem(),
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"exported {result.entries} entries to {result.path}")
        click.echo(f"signed checkpoint (size {result.checkpoint_size}) in {result.checkpoint_path}")
        click.echo(
            "verify with: sandbox keys public > log-key.pem && "
            f"sandbox audit verify {result.path} --public-key log-key.pem"
        )


def _read_key_args(public_keys: tuple[str, ...]) -> list[str]:
    out = []
    for item in public_keys:
        path = Path(item)
        out.append(path.read_text(encoding="utf-8") if path.exists() else item)
    return out


@audit.command("verify")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    required=True,
    help="Log public key: a PEM file (may hold several keys, e.g. after rotation) or a "
    "C2SP verifier key string. Repeatable.",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Signed checkpoint file(s); default LOG.checkpoint beside the log. Give two to "
    "check them against each other (fork detection).",
)
@click.option("--origin", default=None, help="Expected checkpoint origin line.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes for large logs (default: one per CPU above 32 MB).",
)
@click.option(
    "--integrity-only",
    is_flag=True,
    help="Skip the per-entry canonical-JSON check (most of the time on big logs); order, "
    "chain, tree and signatures are still checked.",
)
@JSON
def audit_verify(
    log: Path,
    public_keys: tuple[str, ...],
    checkpoints: tuple[str, ...],
    origin: str | None,
    workers: int | None,
    integrity_only: bool,
    as_json: bool,
) -> None:
    """Check LOG offline: encoding, order, chain, tree against the signed checkpoint.

    Exit 0 when intact; 1 with the kind of damage and the first bad sequence number.
    """

    try:
        report = verify_file(
            log,
            _read_key_args(public_keys),
            list(checkpoints) or None,
            origin=origin,
            workers=workers,
            encoding=not integrity_only,
        )
    except VerificationError as err:
        if as_json:
            click.echo(json.dumps(err.to_dict(), ensure_ascii=False))
        else:
            where = f"first bad seq {err.seq}" if err.seq is not None else "no single entry"
            click.secho(f"FAILED: {err.kind} ({where}): {err.message}", fg="red", err=True)
        sys.exit(1)
    except (AuditError, keys_lib.KeysError, OSError) as err:
        fail(str(err), as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    click.secho(f"OK: {report.entries} entries intact; root {report.root_hash}", fg="green")
    if not report.encoding_checked:
        click.echo("(integrity only: the canonical encoding of each entry was not checked)")
    click.echo(f"signed checkpoint: {report.origin} size {report.checkpoint_size}")
    if report.unsigned_tail:
        click.secho(
            f"note: the last {report.unsigned_tail} entries are after the latest checkpoint "
            "(chain-checked, not yet signed)",
            fg="yellow",
        )


@audit.command("replay")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data-dir",
    envvar="SANDBOX_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also compare with this workspace's live ledger (env SANDBOX_DATA_DIR).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for LOG.replay.json and LOG.replay.html (default: beside the log).",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    help="Verify the log first with this key (recommended).",
)
@JSON
def audit_replay(
    log: Path,
    data_dir: Path | None,
    out_dir: Path | None,
    public_keys: tuple[str, ...],
    as_json: bool,
) -> None:
    """Rebuild budgets, releases, refusals, suspensions and tier changes from LOG alone.

    Exit 1 if a logged budget report or the live ledger disagrees with the logged charges.
    """

    if public_keys:
        try:
            verify_file(log, _read_key_args(public_keys))
        except VerificationError as err:
            fail(f"the log does not verify: {err}", as_json, kind=err.kind, seq=err.seq)

    entries = read_jsonl(log)
    report = replay(entries)
    # The zCDP route's ε needs OpenDP's conversion: recomputed here, outside audit_log.
    report["inconsistencies"].extend(check_reported_loss(entries))
    if data_dir is not None:
        _ws, conn = open_workspace(data_dir)
        compare_with_ledger(report, approval_sums(conn))
    out_dir = out_dir or log.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = log.stem
    json_path, html_path = out_dir / f"{stem}.replay.json", out_dir / f"{stem}.replay.html"
    json_path.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    html_path.write_text(
        render_html(report, title=f"Audit log replay: {log.name}"), encoding="utf-8"
    )
    flagged = bool(report["inconsistencies"] or report["ledger_differences"])
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": not flagged,
                    "json": str(json_path),
                    "html": str(html_path),
                    "entries": report["entries"],
                    "approvals": len(report["approvals"]),
                    "inconsistencies": report["inconsistencies"],
                    "ledger_differences": report["ledger_differences"],
                },
                ensure_ascii=False,
            )
        )
    else:
        _print_replay(report, json_path, html_path)
    sys.exit(1 if flagged else 0)


def _print_replay(report: dict[str, Any], json_path: Path, html_path: Path) -> None:
    """The replay's summary, then each disagreement in red on stderr."""

    click.echo(
        f"{report['entries']} entries, {len(report['approvals'])} approvals, "
        f"{len(report['suspensions'])} suspension events, {len(report['tier_changes'])} tier changes"
    )
    click.echo(f"wrote {json_path} and {html_path}")
    for item in report["inconsistencies"]:
        click.secho(
            f"inconsistent budget report: approval {item['approval_id']} seq {item['seq']}: "
            f"{item['message']}",
            fg="red",
            err=True,
        )
    for d in report["ledger_differences"]:
        click.secho(
            f"ledger differs for approval {d['approval_id']}: log ε={d['log_epsilon']:g} "
            f"ledger ε={d['ledger_epsilon']:g}",
            fg="red",
            err=True,
        )


@audit.command("trace")
@DATA_DIR
@click.argument("receipt")
@JSON
def audit_trace(data_dir: Path | None, receipt: str, as_json: bool) -> None:
    """Show the release behind RECEIPT (a file or JSON text), its query and its approval,
    and prove it is in the latest signed checkpoint."""

    rec = _parse_receipt(receipt)
    ws, conn = open_workspace(data_dir)
    ring = workspace_keyring(ws)
    try:
        issue_checkpoint(ws, conn, now(), ring=ring)
        note = audit_store.latest_checkpoint(conn)
        assert note is not None
        log_keys = load_log_keys(["".join(i.pem() for i in ring.log_public_keys())])
        cp = open_checkpoint(note, log_keys)
        entry_bytes = audit_store.entry_bytes(conn, rec.log_index)
        proof = audit_store.inclusion_proof(conn, rec.log_index, cp.size)
        verify_receipt(rec, entry_bytes, proof, cp, tree_hash_for_keys(log_keys))
    except AuditError as err:
        fail(f"the receipt does not check out: {err}", as_json)
    entry = json.loads(entry_bytes)
    approval_id = (entry.get("details") or {}).get("approval_id")
    related = _approval_entries(conn, approval_id)
    if as_json:
        click.echo(json.dumps({
            "ok": True,
            "receipt": rec.to_dict(),
            "entry": entry,
            "checkpoint_size": cp.size,
            "inclusion_proof_length": len(proof),
            "approval_entries": related,
        }, ensure_ascii=False))
        return
    click.secho(
        f"receipt OK: entry {rec.log_index} is in the signed checkpoint of size {cp.size}",
        fg="green",
    )
    _print_trace(entry, approval_id, related)


def _parse_receipt(receipt: str) -> Receipt:
    """RECEIPT from a file, JSON text or a whole query response; exit 2 if it is none."""

    path = Path(receipt)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else receipt
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("receipt"), dict):
            data = data["receipt"]  # a whole query response
        return Receipt.from_dict(data)
    except (ValueError, AuditError) as err:
        click.secho(f"error: not a receipt: {err}", fg="red", err=True)
        sys.exit(2)


def _approval_entries(conn: Connection, approval_id: Any) -> list[dict[str, Any]]:
    """The approval's own entries (not its queries), in log order."""

    if approval_id is None:
        return []
    related = [
        e
        for e in audit_store.entries(conn, details={"approval_id": approval_id})
        if not e["action"].startswith("query.")
    ]
    related += audit_store.entries(conn, subject=f"approval:{approval_id}")
    return sorted({e["seq"]: e for e in related}.values(), key=lambda e: e["seq"])


def _print_trace(entry: dict[str, Any], approval_id: Any, related: list[dict[str, Any]]) -> None:
    d = entry.get("details", {})
    click.echo(
        f"{entry['time']}  {entry['actor']} ({entry['role']})  {entry['action']}  {entry['subject']}"
    )
    for key in ("approval_id", "sql", "epsilon", "delta", "budget_after"):
        if key in d:
            click.echo(f"  {key}: {d[key]}")
    if related:
        click.echo(f"approval {approval_id}:")
        for e in related:
            click.echo(
                f"  seq {e['seq']}  {e['time']}  {e['actor']}  {e['action']}  {e['subject']}"
            )
