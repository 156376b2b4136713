"""The ``sandbox`` command: one click group, noun groups with verbs (STYLE.md habit 11).

Exit codes: 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import click

from sandbox.cli.audit import audit, keys_group
from sandbox.cli.auth import TOKEN, authenticate, require_role
from sandbox.cli.backup import backup_command, restore_command
from sandbox.cli.engines import engines_group
from sandbox.cli.settings import settings_group
from sandbox.demo.setup import setup_demo
from sandbox.engine.embedded import EngineLimits
from sandbox.engine.pool import PoolSettings, default_workers, parse_size
from sandbox.errors import SandboxError
from sandbox.governance import dataset_caps, open_catalog, publication
from sandbox.governance.datasets import latest_versions, read_data_file
from sandbox.governance.file_readers import read_bytes_with_encoding
from sandbox.governance.open_catalog import risk_report
from sandbox.governance.policy import parse_policy
from sandbox.service import bounding_report
from sandbox.service.operations import SandboxAdmin
from sandbox.service.policy_draft import dataset_name, draft_policy
from sandbox.service.query_service import Sandbox
from sandbox.store.context import open_keyring
from sandbox.store.workspace import Workspace
from sandbox.web import create_app

DATA_DIR = click.option(
    "--data-dir",
    envvar="SANDBOX_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Workspace folder (env SANDBOX_DATA_DIR; default ./sandbox-data).",
)


def fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(1)


@click.group()
@click.version_option(package_name="data-sandbox")
def cli() -> None:
    """Secure data-access sandbox for conditionally open public data (济南市公共数据开放利用管理办法)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


CRYPTO = click.option(
    "--crypto", type=click.Choice(["intl", "sm"]), default=None,
    help="Cryptography profile of a new workspace: intl (Ed25519, SHA-256, AES-GCM; the default) "
         "or sm (SM2, SM3, SM4-GCM, for 密评). Fixed for the workspace's life.")


@cli.command()
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


def _first_admin(ws) -> None:
    """Issue 14: the first admin, from SANDBOX_ADMIN_USER/SANDBOX_ADMIN_PASSWORD or a prompt;
    every later state-changing command acts as an authenticated user (sandbox.cli.auth)."""

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


def _free_port(host: str, port: int) -> int:
    if port:
        return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@cli.command()
@DATA_DIR
@click.option("--port", type=int, default=8642, show_default=True, help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--rows", type=click.IntRange(1_000, 50_000_000), default=100_000, show_default=True,
              help="Residents to generate.")
@click.option("--no-serve", is_flag=True, help="Prepare the workspace and exit.")
@CRYPTO
def demo(data_dir: Path | None, port: int, rows: int, no_serve: bool, crypto: str | None) -> None:
    """Create a demo workspace with synthetic data and users, then start the server."""

    host = "127.0.0.1"
    port = _free_port(host, port)
    url = f"http://{host}:{port}"

    def bar(total: int, label: str):
        return click.progressbar(length=total, label=label, show_pos=True, file=sys.stderr)

    try:
        sb, creds = setup_demo(data_dir, rows=rows, url=url, say=lambda m: click.echo(m, err=True),
                               progress_factory=bar, crypto=crypto)
    except SandboxError as err:
        fail(err.message)
    click.echo(f"\nWorkspace: {sb.ws.root} (cryptography profile {sb.ws.crypto_profile()})")
    click.echo(f"Credentials: {sb.ws.root / 'demo-credentials.json'}")
    for role in ("researcher", "owner", "regulator"):
        c = creds[role]
        click.echo(f"  {role:<10} password {c['password']:<16} token {c['token']}")
    click.echo(f"  researcher approval_id {creds['researcher']['approval_id']}")
    if no_serve:
        return
    click.echo(f"\nConsole and API at {url}  (Ctrl-C stops)")
    _serve(sb, host, port, threads=8)


@cli.command()
@DATA_DIR
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8642, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--engine-workers", type=click.IntRange(0, 64), default=None, envvar="SANDBOX_ENGINE_WORKERS",
              help="Engine worker processes, killed and replaced at a query's limits "
                   "(default: min(2, CPUs); 0 runs queries in the server process).")
@click.option("--query-timeout", type=click.FloatRange(0.1, 86400), default=30.0, show_default=True,
              envvar="SANDBOX_QUERY_TIMEOUT", help="Wall-clock limit of one query, in seconds.")
@click.option("--query-memory", default=None, envvar="SANDBOX_QUERY_MEMORY",
              help="Memory one query may add to its worker, e.g. 2GB (default: DuckDB's 4GB + 1GiB).")
@click.option("--trusted-proxy", default=None, envvar="SANDBOX_TRUSTED_PROXY",
              help="Address of a reverse proxy whose X-Forwarded-For is trusted, so per-address "
                   "rate limits and login throttling see the real client (default: none).")
def serve(data_dir: Path | None, host: str, port: int, threads: int, engine_workers: int | None,
          query_timeout: float, query_memory: str | None, trusted_proxy: str | None) -> None:
    """Serve the console and the API with a production WSGI server (waitress)."""

    workers = default_workers() if engine_workers is None else engine_workers
    try:
        memory = parse_size(query_memory) if query_memory else None
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--query-memory") from None
    pool = PoolSettings(workers=workers, query_memory_bytes=memory) if workers else None
    try:
        sb = Sandbox(Workspace.open(data_dir), limits=EngineLimits(timeout_seconds=query_timeout), pool=pool)
    except SandboxError as err:
        fail(err.message)
    where = f"{workers} engine worker(s)" if workers else "in-process engine"
    click.echo(f"serving {sb.ws.root} at http://{host}:{port} ({where})")
    _serve(sb, host, port, threads, trusted_proxy)


CHECKPOINT_EVERY_SECONDS = 60.0


def _serve(sb, host: str, port: int, threads: int, trusted_proxy: str | None = None) -> None:
    """waitress, plus signed checkpoints on a schedule and at shutdown (issue: audit log);
    the engine workers are stopped last."""

    import waitress

    app = create_app(sb)
    stop = threading.Event()

    def checkpoint_quietly() -> None:
        try:
            sb.issue_checkpoint()
        except Exception:  # noqa: BLE001 - a failed checkpoint must not stop the server
            logging.getLogger(__name__).exception("could not issue a checkpoint")

    def every_minute() -> None:
        while not stop.wait(CHECKPOINT_EVERY_SECONDS):
            checkpoint_quietly()

    threading.Thread(target=every_minute, name="checkpoints", daemon=True).start()

    def terminate(_signum, _frame):
        raise KeyboardInterrupt  # SIGTERM shuts down like Ctrl-C: the final checkpoint is signed

    signal.signal(signal.SIGTERM, terminate)
    try:
        proxy = {"trusted_proxy": trusted_proxy, "trusted_proxy_count": 1,
                 "trusted_proxy_headers": {"x-forwarded-for"}} if trusted_proxy else {}
        waitress.serve(app, host=host, port=port, threads=threads, ident="data-sandbox", **proxy)
    finally:
        stop.set()
        checkpoint_quietly()
        sb.close()  # stops the engine workers


@cli.group()
def datasets() -> None:
    """Register and list datasets."""


@datasets.command("add")
@DATA_DIR
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The dataset's TOML policy.")
@click.option("--encoding", type=click.Choice(["utf-8", "utf-8-sig", "gbk", "gb18030"], case_sensitive=False),
              default=None, help="A CSV file's text encoding (default: detected).")
@TOKEN
def datasets_add(data_dir: Path | None, name: str, file: Path, policy_path: Path, encoding: str | None,
                 token: str | None) -> None:
    """Register FILE (CSV, .xlsx or Parquet) as a new version of dataset NAME; its cells are
    read as the policy's column types (a code declared text stays text). Acts as the dataset's
    owner, authenticated (--token / SANDBOX_TOKEN)."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        actor = authenticate(sb, token)
        policy_text = policy_path.read_text(encoding="utf-8")
        parsed = parse_policy(policy_text, str(policy_path))
        if actor.username != parsed.owner:
            fail(f"{actor.username} is not {parsed.owner}, the owner the policy names; only the owner registers "
                 "the dataset's versions")
        types = {c.name: c.type for c in parsed.columns.values()}
        click.echo(f"reading {file} …", err=True)
        table = read_data_file(file, types=types, encoding=encoding)
        version = SandboxAdmin(sb).add_dataset(
            name, table, policy_text, policy_path=str(policy_path), actor=actor,
            progress=lambda m: click.echo(m + " …", err=True),
        )
    except SandboxError as err:
        fail(err.message)
    click.echo(f"{name} version {version.version}: {version.row_count:,} rows, {version.unit_count:,} "
               f"persons, {version.content_hash}" + (" (encrypted at rest)" if version.encrypted else ""))
    click.echo(f"not yet published: review the risk scan with `sandbox datasets risk {name}`, then publish "
               f"it with `sandbox datasets ack {name} --note ...` (第十二条)")


@datasets.command("draft")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Dataset name (default: from the file name).")
@click.option("--owner", default="CHANGE_ME", show_default=True, help="The owner's username.")
@click.option("--unit", "privacy_unit", default=None, help="The privacy-unit column (default: guessed).")
@click.option("--tier", type=click.Choice(["not_open", "conditional", "unconditional"]), default="conditional",
              show_default=True)
@click.option("--encoding", type=click.Choice(["utf-8", "utf-8-sig", "gbk", "gb18030"], case_sensitive=False),
              default=None, help="A CSV file's text encoding (default: detected).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the policy here (default: standard output).")
def datasets_draft(file: Path, name: str | None, owner: str, privacy_unit: str | None, tier: str,
                   encoding: str | None, output: Path | None) -> None:
    """Draft a policy TOML from FILE for its owner to review: inferred types, suggested bounds,
    public values for low-cardinality columns, identifier and quasi-identifier guesses."""

    try:
        table, used = read_bytes_with_encoding(file.read_bytes(), file.name, encoding=encoding)
        draft = draft_policy(table, name=name or dataset_name(file.stem), owner=owner, title=file.stem,
                             tier=tier, privacy_unit=privacy_unit,
                             source_notes=(f"source: {file.name}" + (f", read as {used}" if used else ""),))
    except SandboxError as err:
        fail(err.message)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--unit") from None
    if output is None:
        click.echo(draft.toml(), nl=False)
    else:
        output.write_text(draft.toml(), encoding="utf-8")
        click.echo(f"wrote {output}: review it, then `sandbox datasets add {draft.name} {file} --policy {output}`",
                   err=True)


@datasets.command("list")
@DATA_DIR
@click.option("--json", "as_json", is_flag=True)
def datasets_list(data_dir: Path | None, as_json: bool) -> None:
    """List datasets and their latest versions."""

    try:
        conn = Workspace.open(data_dir).connect()
    except SandboxError as err:
        fail(err.message)
    rows = [{"name": v.name, "tier": v.tier, "version": v.version, "rows": v.row_count,
             "content_hash": v.content_hash} for v in latest_versions(conn)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for r in rows:
            click.echo(f"{r['name']:<20} {r['tier']:<13} v{r['version']:<3} {r['rows']:>12,} rows  {r['content_hash'][:19]}")


def _acting(sb, token: str | None):
    """The authenticated user acting (issue 14); the service functions check their rights."""
    return authenticate(sb, token)


@datasets.command("risk")
@DATA_DIR
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@TOKEN
def datasets_risk(data_dir: Path | None, name: str, as_json: bool, token: str | None) -> None:
    """Show the risk-scan report of NAME's newest version (第十二条)."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        report = risk_report(sb, _acting(sb, token), name)
    except SandboxError as err:
        fail(err.message)
    click.echo(json.dumps(report, indent=2, ensure_ascii=False))


@datasets.command("bounds")
@DATA_DIR
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@TOKEN
def datasets_bounds(data_dir: Path | None, name: str, as_json: bool, token: str | None) -> None:
    """Show NAME's bounding report: what candidate contribution bounds and clamp ranges would
    cut, and suggested bounds (owner's figures, exact; docs/privacy.md)."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        result = bounding_report.read(sb, _acting(sb, token), name)
    except SandboxError as err:
        fail(err.message)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    click.echo("\n".join(bounding_report.text_lines(result)))


@datasets.command("ack")
@DATA_DIR
@click.argument("name")
@click.option("--note", default="", help="What the owner checked or decided.")
@click.option("--acknowledge-findings", default="", help="The scan's findings you accept, and why (第十二条).")
@click.option("--k-anonymity", type=int, default=None, help="k-anonymity target of an open (unconditional) download.")
@TOKEN
def datasets_ack(data_dir: Path | None, name: str, note: str, acknowledge_findings: str, k_anonymity: int | None,
                 token: str | None) -> None:
    """Acknowledge NAME's risk report as its owner: publishes the version, or submits it for the
    regulator's co-signature when it needs review (`sandbox reviews decide`; 第十二条)."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        body: dict = {"note": note}
        if acknowledge_findings:
            body["acknowledge_findings"] = acknowledge_findings
        if k_anonymity is not None:
            body["k_anonymity"] = k_anonymity
        result = open_catalog.acknowledge_risk(sb, _acting(sb, token), name, body)
    except SandboxError as err:
        fail(err.message)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@datasets.command("cap")
@DATA_DIR
@click.argument("name")
@click.option("--epsilon", type=float, default=None, help="Total ε all researchers together may spend.")
@click.option("--delta", type=float, default=None, help="Total δ all researchers together may spend.")
@click.option("--reason", default="", help="Why (recorded in the audit log; required when setting).")
@click.option("--json", "as_json", is_flag=True)
@TOKEN
def datasets_cap(data_dir: Path | None, name: str, epsilon: float | None, delta: float | None, reason: str,
                 as_json: bool, token: str | None) -> None:
    """Show, or set as its owner, NAME's collusion cap: the total privacy budget across all
    researchers, approvals and versions (docs/privacy.md). Without --epsilon/--delta: show."""

    if (epsilon is None) != (delta is None):
        raise click.UsageError("give both --epsilon and --delta to set the cap, or neither to show it")
    try:
        sb = Sandbox(Workspace.open(data_dir))
        owner = _acting(sb, token)
        if epsilon is None:
            result = dataset_caps.read(sb, owner, name)
        else:
            result = dataset_caps.set_cap(sb, owner, name, {"epsilon_total": epsilon, "delta_total": delta,
                                                            "reason": reason})
    except SandboxError as err:
        fail(err.message)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    cap = result["cap"]
    click.echo(f"{name}: cap ε = {cap['epsilon_total']:g}, δ = {cap['delta_total']:g} ({cap['source']}"
               + (f", set by {cap['set_by']} at {cap['set_at']}" if cap["set_by"] else "") + ")")
    click.echo(f"spent ε = {result['epsilon']['spent']:g}, δ = {result['delta']['spent']:g} over "
               f"{result['releases']} release(s), all versions; ε = {result['epsilon']['remaining']:g} left")


@cli.group()
def users() -> None:
    """Create users (the first admin, owners, researchers, regulators)."""


@users.command("add")
@DATA_DIR
@click.argument("username")
@click.option("--role", type=click.Choice(["researcher", "owner", "regulator", "admin"]), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              envvar="SANDBOX_NEW_PASSWORD", help="Prompted when not given (or env SANDBOX_NEW_PASSWORD).")
@click.option("--json", "as_json", is_flag=True)
@TOKEN
def users_add(data_dir: Path | None, username: str, role: str, password: str, as_json: bool,
              token: str | None) -> None:
    """Create USERNAME with ROLE as an authenticated admin; prints the API token once (only its
    hash is stored). The first admin comes from `sandbox init`."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        actor = authenticate(sb, token)
        require_role(actor, "admin")
        user, token = SandboxAdmin(sb).create_user(username, role, password, actor=actor)
    except SandboxError as err:
        fail(err.message)
    if as_json:
        click.echo(json.dumps({"username": user.username, "role": user.role, "token": token}))
    else:
        click.echo(f"created {user.role} {user.username}; API token (shown once): {token}")


def _add_command_groups() -> None:
    cli.add_command(audit)
    cli.add_command(keys_group)
    cli.add_command(backup_command)
    cli.add_command(restore_command)
    cli.add_command(settings_group)
    cli.add_command(engines_group)


_add_command_groups()


def main() -> None:
    cli()



@cli.group()
def reviews() -> None:
    """Publication and tier reviews: the regulator co-signs (第十、十二条; issue 14)."""


@reviews.command("list")
@DATA_DIR
@TOKEN
def reviews_list(data_dir: Path | None, token: str | None) -> None:
    """The reviews the acting owner or regulator may see, as JSON."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        items = publication.list_reviews(sb, authenticate(sb, token))
    except SandboxError as err:
        fail(err.message)
    click.echo(json.dumps(items, indent=2, ensure_ascii=False))


@reviews.command("decide")
@DATA_DIR
@click.argument("review_id", type=int)
@click.option("--approve/--reject", required=True, help="Co-sign and apply, or reject.")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@TOKEN
def reviews_decide(data_dir: Path | None, review_id: int, approve: bool, reason: str, token: str | None) -> None:
    """Co-sign (--approve) or --reject REVIEW_ID as the authenticated regulator."""

    try:
        sb = Sandbox(Workspace.open(data_dir))
        result = publication.decide(sb, authenticate(sb, token), review_id,
                                    {"decision": "approve" if approve else "reject", "reason": reason})
    except SandboxError as err:
        fail(err.message)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))
