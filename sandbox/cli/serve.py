"""``sandbox serve``: the console and the API under waitress, with scheduled signed
checkpoints; ``run_server`` is shared with ``sandbox demo``."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from sandbox.cli.options import DATA_DIR, fail
from sandbox.engine.embedded import EngineLimits
from sandbox.engine.pool import PoolSettings, default_workers, parse_size
from sandbox.errors import SandboxError
from sandbox.service.query_service import Sandbox
from sandbox.store.workspace import Workspace
from sandbox.web import create_app

CHECKPOINT_EVERY_SECONDS = 60.0


@click.command()
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
    run_server(sb, host, port, threads, trusted_proxy)


def run_server(sb: Sandbox, host: str, port: int, threads: int, trusted_proxy: str | None = None) -> None:
    """waitress, plus signed checkpoints on a schedule and at shutdown (issue: audit log);
    the engine workers are stopped last."""

    import waitress  # optional dependency: the production server, loaded by `sandbox serve` only

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
