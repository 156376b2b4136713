"""Audit action names in the reader's language (issue 15)."""

from __future__ import annotations

from audit_log.actions import Action
from sandbox.web.console.labels import ACTION_LABELS
from tests import test_console as base
from tests.test_console import client_for, text

app = base.app  # the fixture: the console over a fresh demo workspace

def test_every_action_of_the_catalogue_has_a_label():
    """tests/test_audit_actions.py holds the catalogue to what the sandbox writes."""
    assert sorted(set(Action) - set(ACTION_LABELS)) == []
    assert sorted(set(ACTION_LABELS) - set(Action)) == []


def test_the_timeline_names_actions_in_the_readers_language(app):
    zh = text(client_for(app, "regulator").get("/regulator/audit"))
    assert '<span class="action-label">数据集已注册</span>' in zh
    en = text(client_for(app, "regulator", lang="en").get("/regulator/audit"))
    assert '<span class="action-label">Dataset registered</span>' in en
    assert '<option value="dataset.registered"' in en
