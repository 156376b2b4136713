"""``sandbox reviews list|decide``: the regulator co-signs publication and tier reviews."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox.cli.options import DATA_DIR, TOKEN, authenticate, echo_json, fail, open_sandbox
from sandbox.errors import SandboxError
from sandbox.governance import publication


@click.group()
def reviews() -> None:
    """Publication and tier reviews: the regulator co-signs (第十、十二条; issue 14)."""


@reviews.command("list")
@DATA_DIR
@TOKEN
def reviews_list(data_dir: Path | None, token: str | None) -> None:
    """The reviews the acting owner or regulator may see, as JSON."""

    try:
        sb = open_sandbox(data_dir)
        items = publication.list_reviews(sb, authenticate(sb, token))
    except SandboxError as err:
        fail(err.message)
    echo_json(items)


@reviews.command("decide")
@DATA_DIR
@click.argument("review_id", type=int)
@click.option("--approve/--reject", required=True, help="Co-sign and apply, or reject.")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@TOKEN
def reviews_decide(data_dir: Path | None, review_id: int, approve: bool, reason: str, token: str | None) -> None:
    """Co-sign (--approve) or --reject REVIEW_ID as the authenticated regulator."""

    try:
        sb = open_sandbox(data_dir)
        result = publication.decide(sb, authenticate(sb, token), review_id,
                                    {"decision": "approve" if approve else "reject", "reason": reason})
    except SandboxError as err:
        fail(err.message)
    echo_json(result)

