"""Audit action names in the reader's language (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.web.console.labels import ACTION_LABELS
from tests import test_console as base
from tests.test_console import client_for, text

app = base.app  # the fixture: the console over a fresh demo workspace

SANDBOX = Path(__file__).resolve().parent.parent / "sandbox"
AUDITED = re.compile(r"""audit\([^()]*?,\s*["']([a-z_]+\.[a-z_.]+)["']""", re.S)


def logged_actions() -> set[str]:
    return {m for path in SANDBOX.rglob("*.py") for m in AUDITED.findall(path.read_text(encoding="utf-8"))}


def test_every_logged_action_has_a_label():
    actions = logged_actions()
    assert "query.released" in actions and len(actions) > 20  # the scan finds the service's calls
    assert sorted(actions - set(ACTION_LABELS)) == []


def test_the_timeline_names_actions_in_the_readers_language(app):
    zh = text(client_for(app, "regulator").get("/regulator/audit"))
    assert '<span class="action-label">数据集已注册</span>' in zh
    en = text(client_for(app, "regulator", lang="en").get("/regulator/audit"))
    assert '<span class="action-label">Dataset registered</span>' in en
    assert '<option value="dataset.registered"' in en
