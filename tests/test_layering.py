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


# -- sandbox/ in layers (issue 19; docs/decisions/0016-sandbox-layers.md) ------------------------------
#: Each layer may import only the layers listed before it (and itself). Within the package
#: no import cycle is allowed, and imports are made at module level, so the arrows are
#: visible in each file's head.
SANDBOX_LAYERS = ("foundation", "store", "governance", "engine", "service", "demo", "web", "cli")
FOUNDATION = {"sandbox", "sandbox.errors", "sandbox.clock"}
#: Function-level imports allowed, each of an optional dependency loaded only where used.
OPTIONAL_IMPORTS = {
    "pyspark": "Spark is optional (pip install .[spark]); only Spark datasets load it",
    "openpyxl": "Excel files only: reading one, or writing the results download",
    "waitress": "the production server, loaded by `sandbox serve` only",
}


def _sandbox_modules() -> dict[str, Path]:
    mods = {}
    for path in (ROOT / "sandbox").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = path
    return mods


def _layer(module: str) -> str:
    if module in FOUNDATION:
        return "foundation"
    part = module.split(".")[1]
    return "client" if part == "client" else part


def _imports(module: str, path: Path, mods: dict[str, Path]):
    """(line, imported sandbox module, at function level?) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
              for n in ast.walk(f) if isinstance(n, ast.Import | ast.ImportFrom)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            target = name
            while target and target not in mods:
                target = target.rpartition(".")[0]
            yield node.lineno, name, target, id(node) in nested


def test_sandbox_layers_point_one_way():
    mods = _sandbox_modules()
    bad = []
    for module, path in mods.items():
        for line, _name, target, _nested in _imports(module, path, mods):
            if not target or target == module or module.startswith(target + "."):
                continue
            mine, theirs = _layer(module), _layer(target)
            if "client" in (mine, theirs) and mine != theirs:
                bad.append(f"{path.relative_to(ROOT)}:{line}: the client stands alone, but imports {target}")
            elif mine != "client" and SANDBOX_LAYERS.index(theirs) > SANDBOX_LAYERS.index(mine):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mine} imports {theirs} ({target})")
    assert not bad, "\n".join(bad)


def test_sandbox_has_no_import_cycles():
    mods = _sandbox_modules()
    graph = {m: {t for _l, _n, t, _f in _imports(m, p, mods)
                 if t and t != m and not m.startswith(t + ".")} for m, p in mods.items()}
    done: set[str] = set()
    path: list[str] = []

    def visit(m: str) -> None:
        if m in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for t in sorted(graph[m]):
            visit(t)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


def test_sandbox_imports_at_module_level_except_optional_dependencies():
    mods = _sandbox_modules()
    bad = [f"{path.relative_to(ROOT)}:{line}: {name}"
           for module, path in mods.items()
           for line, name, _t, nested in _imports(module, path, mods)
           if nested and name.split(".")[0] not in OPTIONAL_IMPORTS]
    assert not bad, "function-level imports (lift them; a cycle means a module is in the wrong place):\n" + "\n".join(bad)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_library_imports_at_module_level(package):
    """The library packages too: a file's head says what it depends on."""
    bad = []
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                bad += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(fn)
                        if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not bad, bad
