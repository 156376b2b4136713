"""``python -m sandbox.cli``: the same command as the ``sandbox`` entry point."""

from sandbox.cli.main import main

main()
