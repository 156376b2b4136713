"""``sandbox audit …`` and ``sandbox keys …`` (added to the main CLI by ``sandbox.cli``).

``audit verify`` and ``audit replay`` without ``--data-dir`` use only ``audit_log`` and
``keys``: a regulator runs them offline on an export, without trusting the server. The
other commands open the workspace (``--data-dir`` or ``SANDBOX_DATA_DIR``).

Exit codes: 0 ok, 1 failure (damage found, fork, refused), 2 usage.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

import audit_log.store as audit_store
import keys as keys_lib
from audit_log.checkpoint import (
    Checkpoint,
    Note,
    load_log_keys,
    open_checkpoint,
    tree_hash_for_keys,
)
from audit_log.errors import AuditError, ForkError, RollbackError, VerificationError
from audit_log.receipt import Receipt, verify_receipt
from audit_log.replay import compare_with_ledger, read_jsonl, replay
from audit_log.report import render_html
from audit_log.verify import verify_file
from audit_log.witness import Witness
from sandbox.errors import SandboxError
from sandbox.governance.accounting_replay import check_reported_loss
from sandbox.store.ledger_sums import approval_sums
from sandbox.store.workspace import Workspace, log_origin

DATA_DIR = click.option(
    "--data-dir",
    envvar="SANDBOX_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Workspace folder (env SANDBOX_DATA_DIR; default ./sandbox-data).",
)
JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
WITNESS_PASSPHRASE_ENV = "SANDBOX_WITNESS_PASSPHRASE"


def _fail(message: str, as_json: bool = False, **fields: Any) -> None:
    if as_json:
        click.echo(json.dumps({"ok": False, "error": message, **fields}, ensure_ascii=False))
    else:
        click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


def _now() -> datetime:
    return datetime.now(UTC)


def _workspace(data_dir: Path | None):  # -> (Workspace, Connection)

    try:
        ws = Workspace.open(data_dir)
    except SandboxError as err:
        _fail(err.message)
    return ws, ws.connect()


def _keyring(ws) -> keys_lib.KeyRing:
    try:  # a ring of another profile than the workspace's is refused (issue 17)
        return keys_lib.KeyRing.open_or_create(ws.keys_dir, profile=ws.crypto_profile())
    except keys_lib.KeysError as err:
        _fail(str(err))
        raise  # unreachable


def _log_origin(conn) -> str:
    """The workspace's checkpoint origin (shared with the server: one settings row)."""

    return log_origin(conn)


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# =========================================================================== audit
@click.group()
def audit() -> None:
    """The tamper-evident audit log: export, verify, replay, witness, trace."""


@audit.command("export")
@DATA_DIR
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@JSON
def audit_export(data_dir: Path | None, out: Path, as_json: bool) -> None:
    """Write every entry to OUT (JSON lines) and a fresh signed checkpoint to OUT.checkpoint."""
    ws, conn = _workspace(data_dir)
    ring = _keyring(ws)
    try:
        audit_store.issue_checkpoint(conn, ring.log_signer(), _log_origin(conn), _now())
        out.parent.mkdir(parents=True, exist_ok=True)
        result = audit_store.export_jsonl(conn, out)
    except (AuditError, OSError) as err:
        _fail(str(err), as_json)
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
        _fail(str(err), as_json)
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
            _fail(f"the log does not verify: {err}", as_json, kind=err.kind, seq=err.seq)

    entries = read_jsonl(log)
    report = replay(entries)
    # The zCDP route's ε needs OpenDP's conversion: recomputed here, outside audit_log.
    report["inconsistencies"].extend(check_reported_loss(entries))
    if data_dir is not None:
        _ws, conn = _workspace(data_dir)
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
    sys.exit(1 if flagged else 0)


def _fetch_json(url: str, token: str | None) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (operator-given URL)
        data: dict[str, Any] = json.loads(response.read())
    return data


@audit.command("witness")
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
    pinned = state_dir / "log-key.pem"
    conn = ws = None
    if url is None:
        ws, conn = _workspace(data_dir)
    if log_key is not None:
        pinned.write_text(log_key.read_text(encoding="utf-8"), encoding="utf-8")
    elif not pinned.exists():
        if ws is None:
            _fail("give --log-key the first time a witness follows a server by --url", as_json)
            return
        infos = _keyring(ws).log_public_keys()
        pinned.write_text("".join(i.pem() for i in infos), encoding="utf-8")
        click.echo(f"pinned the log key(s) of {ws.root} in {pinned} (trust on first use)", err=True)
    env = os.environ.get(WITNESS_PASSPHRASE_ENV)
    try:
        # the witness signs with the log's profile (SM2 cosignatures for an SM2 log, issue 17)
        log_profile = keys_lib.key_profile(
            keys_lib.split_pem_public_keys(pinned.read_text(encoding="utf-8"))[0]
        )
        wring = keys_lib.KeyRing.open_or_create(
            state_dir / "keys", env.encode() if env else None, profile=log_profile
        )
        signer = wring.signer(name)
    except keys_lib.KeysError as err:
        _fail(str(err), as_json)
        return
    witness = Witness(
        signer, [pinned.read_text(encoding="utf-8")], state_dir / "witness-state.json"
    )
    stored = None
    try:
        if url is not None:
            base = url.rstrip("/") + "/api/v1/audit"
            note = str(_fetch_json(f"{base}/checkpoint", token)["checkpoint"])
        else:
            assert ws is not None and conn is not None
            # a fresh checkpoint if the log key opens here; else the latest stored one
            try:
                log_signer = keys_lib.KeyRing.open_or_create(ws.keys_dir).log_signer()
                audit_store.issue_checkpoint(conn, log_signer, _log_origin(conn), _now())
            except (keys_lib.KeysError, AuditError):
                pass
            stored = audit_store.latest_stored_checkpoint(conn)
            if stored is None:
                _fail("the log has no checkpoint yet", as_json)
                return
            note = stored.note
        checkpoint = Checkpoint.parse(Note.parse(note).text)
        accepted = witness.accepted(checkpoint.origin)
        old_size = accepted.size if accepted else 0
        proof: list[bytes] = []
        if accepted and old_size <= checkpoint.size:
            if url is not None:
                hashes = _fetch_json(
                    f"{base}/proofs/consistency?from={old_size}&to={checkpoint.size}", token
                )
                proof = [base64.b64decode(h) for h in hashes["hashes"]]
            else:
                assert conn is not None
                proof = audit_store.consistency_proof(conn, old_size, checkpoint.size)
        sig = witness.add_checkpoint(note, proof, _now())
    except (ForkError, RollbackError) as err:
        kind = "fork" if isinstance(err, ForkError) else "rollback"
        if as_json:
            click.echo(json.dumps({"ok": False, "kind": kind, "error": str(err)}))
        else:
            click.secho("!" * 72, fg="red", err=True)
            click.secho(f"WITNESS REFUSED THE CHECKPOINT: {err}", fg="red", bold=True, err=True)
            click.secho("!" * 72, fg="red", err=True)
        sys.exit(1)
    except (AuditError, OSError, ValueError, KeyError) as err:
        _fail(str(err), as_json)
        return
    if stored is not None and conn is not None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            audit_store.add_cosignature(conn, stored.id, sig.line(), _now())
            conn.execute("COMMIT")
        except AuditError:
            conn.execute("ROLLBACK")  # already cosigned by this witness: nothing to add
    result = {
        "ok": True,
        "origin": checkpoint.origin,
        "size": checkpoint.size,
        "previous_size": old_size,
        "cosignature": sig.line().rstrip("\n"),
        "witness": name,
    }
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
    else:
        click.echo(
            f"cosigned {checkpoint.origin} at size {checkpoint.size} (previously {old_size})"
        )
        if url is not None:
            click.echo(sig.line().rstrip("\n"))


@audit.command("trace")
@DATA_DIR
@click.argument("receipt")
@JSON
def audit_trace(data_dir: Path | None, receipt: str, as_json: bool) -> None:
    """Show the release behind RECEIPT (a file or JSON text), its query and its approval,
    and prove it is in the latest signed checkpoint."""

    path = Path(receipt)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else receipt
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("receipt"), dict):
            data = data["receipt"]  # a whole query response
        rec = Receipt.from_dict(data)
    except (ValueError, AuditError) as err:
        click.secho(f"error: not a receipt: {err}", fg="red", err=True)
        sys.exit(2)
    ws, conn = _workspace(data_dir)
    ring = _keyring(ws)
    try:
        audit_store.issue_checkpoint(conn, ring.log_signer(), _log_origin(conn), _now())
        note = audit_store.latest_checkpoint(conn)
        assert note is not None
        log_keys = load_log_keys(["".join(i.pem() for i in ring.log_public_keys())])
        cp = open_checkpoint(note, log_keys)
        entry_bytes = audit_store.entry_bytes(conn, rec.log_index)
        proof = audit_store.inclusion_proof(conn, rec.log_index, cp.size)
        verify_receipt(rec, entry_bytes, proof, cp, tree_hash_for_keys(log_keys))
    except AuditError as err:
        _fail(f"the receipt does not check out: {err}", as_json)
    entry = json.loads(entry_bytes)
    approval_id = (entry.get("details") or {}).get("approval_id")
    related = []
    if approval_id is not None:
        related = [
            e
            for e in audit_store.entries(conn, details={"approval_id": approval_id})
            if not e["action"].startswith("query.")
        ]
        related += audit_store.entries(conn, subject=f"approval:{approval_id}")
        related = sorted({e["seq"]: e for e in related}.values(), key=lambda e: e["seq"])
    result = {
        "ok": True,
        "receipt": rec.to_dict(),
        "entry": entry,
        "checkpoint_size": cp.size,
        "inclusion_proof_length": len(proof),
        "approval_entries": related,
    }
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.secho(
        f"receipt OK: entry {rec.log_index} is in the signed checkpoint of size {cp.size}",
        fg="green",
    )
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


# =========================================================================== keys
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
    ws, _conn = _workspace(data_dir)
    infos = _keyring(ws).log_public_keys()
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
    ws, conn = _workspace(data_dir)
    ring = _keyring(ws)
    old_signer = ring.log_signer()  # stays usable in memory after the rotation
    origin = _log_origin(conn)
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
            now=_now(),
        )
        audit_store.issue_checkpoint(conn, old_signer, origin, _now())
        audit_store.issue_checkpoint(conn, new_signer, origin, _now())
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
    ws, _conn = _workspace(data_dir)
    ring = _keyring(ws)
    new = os.environ.get(new_from_env) or click.prompt(
        "new passphrase", hide_input=True, confirmation_prompt=True
    )
    try:
        ring.change_passphrase(new.encode())
    except keys_lib.KeysError as err:
        _fail(str(err))
    click.echo(f"keys in {ws.keys_dir} re-sealed; set SANDBOX_KEY_PASSPHRASE to open them")
