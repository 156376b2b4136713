"""One guard rule per module, run in the order declared by ``query_guard.planner.RULES``.

As in sqlglot's optimizer (``sqlglot/optimizer/optimizer.py``), each module holds one
rule named after the property it enforces, and each has a fixture file of SQL cases of
the same name under ``tests/fixtures/guard/``.
"""
