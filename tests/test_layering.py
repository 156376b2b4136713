"""The library packages stand alone: they never import sandbox or Flask (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
FORBIDDEN = {
    "query_guard": {"sandbox", "flask", "privacy", "audit_log", "keys", "duckdb"},
    "privacy": {"sandbox", "flask", "audit_log", "keys", "duckdb"},
    "audit_log": {"sandbox", "flask", "query_guard", "privacy"},
    "keys": {"sandbox", "flask", "query_guard", "privacy", "audit_log"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_library_imports_point_one_way(package):
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN[package]]
    assert not bad, bad


def test_noise_only_from_opendp():
    for package in ("privacy", "query_guard"):
        for path in (ROOT / package).rglob("*.py"):
            src = path.read_text(encoding="utf-8")
            for needle in ("np.random", "numpy.random", "import random", "from random", "secrets."):
                assert needle not in src, f"{path}: {needle}"
