"""The audit action catalogue (``audit_log.actions``) is the project's: docs/audit.md lists
exactly it, and it matches every action ``sandbox/`` writes, with the keys of its details.

The sandbox is read as source (``ast``), never imported: the audit tests need no server.
A call is ``<anything>.audit(conn, actor, ACTION, subject, DETAILS)`` or
``audit_store.append(..., action=ACTION, details=DETAILS)``; ACTION is a string literal, a
conditional between two, or a catalogue member (``Action.QUERY_RELEASED``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from test_audit_support import T0, create_log

from audit_log import store
from audit_log.actions import Action
from audit_log.entry import ZERO_CHAIN, encode_entry, format_time

ROOT = Path(__file__).parents[1]
DOC = (ROOT / "docs" / "audit.md").read_text(encoding="utf-8")


def _action_names(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Attribute) and node.attr in Action.__members__:
        return [Action[node.attr].value]
    if isinstance(node, ast.IfExp):
        return _action_names(node.body) + _action_names(node.orelse)
    return []


def _writes() -> list[tuple[str, str, ast.expr | None]]:
    """(where, action, details expression) of every audit write under sandbox/."""
    found = []
    for path in sorted((ROOT / "sandbox").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = getattr(func, "attr", getattr(func, "id", None))
            keywords = {k.arg: k.value for k in node.keywords}
            if name == "audit" and len(node.args) >= 3:
                action, details = node.args[2], node.args[4] if len(node.args) > 4 else None
            elif name == "append" and "action" in keywords:
                action, details = keywords["action"], keywords.get("details")
            else:
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            found += [(where, a, details) for a in _action_names(action)]
    return found


WRITES = _writes()


def test_the_catalogue_is_well_formed():
    for action in Action:
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", action), action
        assert action.meaning and "\n" not in action.meaning and "|" not in action.meaning
        assert action.details, action
        assert len(set(action.details + action.optional)) == len(action.details + action.optional)
    assert Action("query.released") is Action.QUERY_RELEASED == "query.released"


def test_the_sandbox_writes_exactly_the_catalogue():
    assert len(WRITES) > 50, "the scan no longer finds the sandbox's audit writes"
    written = {action for _, action, _ in WRITES}
    unknown = sorted(f"{where}: {a}" for where, a, _ in WRITES if a not in set(Action))
    assert not unknown, f"actions missing from audit_log.actions: {unknown}"
    assert not set(Action) - written, (
        f"catalogued but never written: {sorted(set(Action) - written)}"
    )


@pytest.mark.parametrize(
    ("where", "action", "details"),
    [w for w in WRITES if isinstance(w[2], ast.Dict)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_details_written_have_the_catalogued_keys(where, action, details):
    keys = {k.value for k in details.keys if isinstance(k, ast.Constant)}
    entry = Action(action)
    assert keys <= set(entry.details + entry.optional), (
        f"{where}: {keys - set(entry.details + entry.optional)}"
    )
    if None not in details.keys:  # no ``**spread``: every key it always carries is there
        assert set(entry.details) <= keys, f"{where}: missing {set(entry.details) - keys}"


def _doc_rows() -> dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    section = DOC.split("\n## Actions\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            name, meaning, details, optional = cells
            rows[name.strip("`")] = (
                meaning,
                tuple(re.findall(r"`([^`]+)`", details)),
                tuple(re.findall(r"`([^`]+)`", optional)),
            )
    return rows


def test_docs_list_exactly_the_catalogue():
    rows = _doc_rows()
    assert list(rows) == [a.value for a in Action], "docs/audit.md 'Actions' lists other actions"
    for action in Action:
        assert rows[action] == (action.meaning, action.details, action.optional), action


def test_an_action_member_is_written_as_its_plain_name(tmp_path):
    conn = create_log(tmp_path / "audit.db")
    details = {"name": "x", "old": 1, "new": 2}
    conn.execute("BEGIN")
    store.append(
        conn,
        actor="a",
        role="admin",
        action=Action.SETTING_CHANGED,
        subject="s",
        details=details,
        now=T0,
    )
    conn.execute("COMMIT")
    expected = encode_entry(
        seq=0,
        time=format_time(T0),
        actor="a",
        role="admin",
        action="setting.changed",
        subject="s",
        details=details,
        prev=ZERO_CHAIN.hex(),
    )
    assert store.entry_bytes(conn, 0) == expected
    row = conn.execute("SELECT action, typeof(action) FROM audit_entries").fetchone()
    assert tuple(row) == ("setting.changed", "text")
