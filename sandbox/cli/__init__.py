"""The ``sandbox`` command (``sandbox.cli.main``), one module per command group."""
