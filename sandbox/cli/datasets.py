"""``sandbox datasets …``: draft a policy, register versions, review their risk scan and
bounding report, publish them, and set the collusion cap (第十二条)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandbox.cli.options import (
    DATA_DIR,
    TOKEN,
    authenticate,
    echo_json,
    fail,
    json_flag,
    open_sandbox,
)
from sandbox.errors import SandboxError
from sandbox.governance import dataset_caps, open_catalog
from sandbox.governance.datasets import latest_versions, read_data_file
from sandbox.governance.file_readers import read_bytes_with_encoding
from sandbox.governance.open_catalog import risk_report
from sandbox.governance.policy import parse_policy
from sandbox.service import bounding_report
from sandbox.service.operations import SandboxAdmin
from sandbox.service.policy_draft import dataset_name, draft_policy
from sandbox.store.workspace import Workspace

ENCODING = click.option(
    "--encoding", type=click.Choice(["utf-8", "utf-8-sig", "gbk", "gb18030"], case_sensitive=False),
    default=None, help="A CSV file's text encoding (default: detected).")


@click.group()
def datasets() -> None:
    """Register and list datasets."""


@datasets.command("add")
@DATA_DIR
@click.argument("name")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--policy", "policy_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The dataset's TOML policy.")
@ENCODING
@TOKEN
def datasets_add(data_dir: Path | None, name: str, file: Path, policy_path: Path, encoding: str | None,
                 token: str | None) -> None:
    """Register FILE (CSV, .xlsx or Parquet) as a new version of dataset NAME; its cells are
    read as the policy's column types (a code declared text stays text). Acts as the dataset's
    owner, authenticated (--token / SANDBOX_TOKEN)."""

    try:
        sb = open_sandbox(data_dir)
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
@ENCODING
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
@json_flag()
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


@datasets.command("risk")
@DATA_DIR
@click.argument("name")
@json_flag()
@TOKEN
def datasets_risk(data_dir: Path | None, name: str, as_json: bool, token: str | None) -> None:
    """Show the risk-scan report of NAME's newest version (第十二条)."""

    try:
        sb = open_sandbox(data_dir)
        report = risk_report(sb, authenticate(sb, token), name)
    except SandboxError as err:
        fail(err.message)
    echo_json(report)


@datasets.command("bounds")
@DATA_DIR
@click.argument("name")
@json_flag()
@TOKEN
def datasets_bounds(data_dir: Path | None, name: str, as_json: bool, token: str | None) -> None:
    """Show NAME's bounding report: what candidate contribution bounds and clamp ranges would
    cut, and suggested bounds (owner's figures, exact; docs/privacy.md)."""

    try:
        sb = open_sandbox(data_dir)
        result = bounding_report.read(sb, authenticate(sb, token), name)
    except SandboxError as err:
        fail(err.message)
    if as_json:
        echo_json(result)
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
        sb = open_sandbox(data_dir)
        body: dict = {"note": note}
        if acknowledge_findings:
            body["acknowledge_findings"] = acknowledge_findings
        if k_anonymity is not None:
            body["k_anonymity"] = k_anonymity
        result = open_catalog.acknowledge_risk(sb, authenticate(sb, token), name, body)
    except SandboxError as err:
        fail(err.message)
    echo_json(result)


@datasets.command("cap")
@DATA_DIR
@click.argument("name")
@click.option("--epsilon", type=float, default=None, help="Total ε all researchers together may spend.")
@click.option("--delta", type=float, default=None, help="Total δ all researchers together may spend.")
@click.option("--reason", default="", help="Why (recorded in the audit log; required when setting).")
@json_flag()
@TOKEN
def datasets_cap(data_dir: Path | None, name: str, epsilon: float | None, delta: float | None, reason: str,
                 as_json: bool, token: str | None) -> None:
    """Show, or set as its owner, NAME's collusion cap: the total privacy budget across all
    researchers, approvals and versions (docs/privacy.md). Without --epsilon/--delta: show."""

    if (epsilon is None) != (delta is None):
        raise click.UsageError("give both --epsilon and --delta to set the cap, or neither to show it")
    try:
        sb = open_sandbox(data_dir)
        owner = authenticate(sb, token)
        if epsilon is None:
            result = dataset_caps.read(sb, owner, name)
        else:
            result = dataset_caps.set_cap(sb, owner, name, {"epsilon_total": epsilon, "delta_total": delta,
                                                            "reason": reason})
    except SandboxError as err:
        fail(err.message)
    if as_json:
        echo_json(result)
        return
    cap = result["cap"]
    click.echo(f"{name}: cap ε = {cap['epsilon_total']:g}, δ = {cap['delta_total']:g} ({cap['source']}"
               + (f", set by {cap['set_by']} at {cap['set_at']}" if cap["set_by"] else "") + ")")
    click.echo(f"spent ε = {result['epsilon']['spent']:g}, δ = {result['delta']['spent']:g} over "
               f"{result['releases']} release(s), all versions; ε = {result['epsilon']['remaining']:g} left")
