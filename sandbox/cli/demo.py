"""``sandbox demo``: a demo workspace (``sandbox.demo.setup``), then the server."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from sandbox.cli.options import CRYPTO, DATA_DIR, fail
from sandbox.cli.serve import run_server
from sandbox.demo.setup import setup_demo
from sandbox.errors import SandboxError


def _free_port(host: str, port: int) -> int:
    if port:
        return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@click.command()
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
    run_server(sb, host, port, threads=8)
