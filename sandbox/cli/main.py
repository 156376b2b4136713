"""The ``sandbox`` command: the root group, adding one module's group per noun (STYLE.md
habit 11); their shared options are in ``sandbox.cli.options``.

Exit codes: 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import logging

import click

from sandbox.cli.audit import audit
from sandbox.cli.backup import backup_command, restore_command
from sandbox.cli.datasets import datasets
from sandbox.cli.demo import demo
from sandbox.cli.engines import engines_group
from sandbox.cli.init import init
from sandbox.cli.keys import keys_group
from sandbox.cli.reviews import reviews
from sandbox.cli.serve import serve
from sandbox.cli.settings import settings_group
from sandbox.cli.users import users


@click.group()
@click.version_option(package_name="data-sandbox")
def cli() -> None:
    """Secure data-access sandbox for conditionally open public data (济南市公共数据开放利用管理办法)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


for _command in (init, demo, serve, datasets, users, reviews, audit, keys_group, backup_command,
                 restore_command, settings_group, engines_group):
    cli.add_command(_command)


def main() -> None:
    cli()
