"""docs/guard.md documents every error code and every rule (datasette's habit: a test
fails when something is undocumented)."""

from __future__ import annotations

from pathlib import Path

from query_guard import ERROR_CODES
from query_guard.planner import RULES

DOC = (Path(__file__).resolve().parent.parent / "docs" / "guard.md").read_text(encoding="utf-8")
RULES_DIR = Path(__file__).resolve().parent.parent / "query_guard" / "rules"


def test_every_error_code_is_documented():
    missing = [code for code in ERROR_CODES if f"`{code}`" not in DOC]
    assert not missing


def test_every_rule_module_is_declared_and_has_fixtures():
    modules = {p.stem for p in RULES_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules == set(RULES)
    fixtures = Path(__file__).resolve().parent / "fixtures" / "guard"
    for rule in RULES:
        assert list(fixtures.glob(f"{rule}*.sql")), rule
