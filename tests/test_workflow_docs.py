"""docs/workflow.md documents every workflow endpoint, setting and audit action (as datasette
fails a build on an undocumented setting)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audit_log.actions import Action
from sandbox.governance import workflow
from sandbox.store import authz
from sandbox.web.api import workflow as api_workflow

DOC = (Path(__file__).parents[1] / "docs" / "workflow.md").read_text(encoding="utf-8")
ACTIONS = [a.value for a in Action]  # every action the project writes (audit_log.actions)


def workflow_rules() -> list[tuple[str, str]]:
    from flask import Flask

    app = Flask(__name__)
    app.register_blueprint(api_workflow.bp)
    return [(m, r.rule) for r in app.url_map.iter_rules() if r.endpoint.startswith("api_workflow.")
            for m in sorted(r.methods - {"HEAD", "OPTIONS"})]


@pytest.mark.parametrize("method,rule", workflow_rules())
def test_endpoint_is_documented(method, rule):
    pattern = re.escape(f"{method} ") + re.sub(r"<[^>]*>", "<[a-z_]+>", re.escape(rule)) + r"[`?]"
    assert re.search(pattern, DOC), f"docs/workflow.md does not document {method} {rule}"


@pytest.mark.parametrize("name", sorted(workflow.SETTINGS))
def test_setting_is_documented(name):
    assert f"| `{name}` | {workflow.SETTINGS[name].default} |" in DOC


@pytest.mark.parametrize("action", ACTIONS)
def test_audit_action_is_documented(action):
    assert f"`{action}`" in DOC


@pytest.mark.parametrize("role", [r for r in authz.ROLES if r != "anonymous"])
def test_role_is_documented(role):
    assert f"| `{role}`" in DOC


def _map_tests() -> list[str]:
    section = DOC.split("## Article map", 1)[1].split("\n## ", 1)[0]
    return sorted(set(re.findall(r"`(tests/[a-z_0-9]+\.py::[a-z_0-9]+)`", section)))


@pytest.mark.parametrize("ref", _map_tests())
def test_article_map_names_tests_that_exist(ref):
    """Issue 14: the article map's rows name real tests (a renamed test breaks this)."""
    path, name = ref.split("::")
    source = (Path(__file__).parents[1] / path).read_text(encoding="utf-8")
    assert re.search(rf"^def {name}\(", source, re.M), f"docs/workflow.md's article map names {ref}, which does not exist"


def test_article_map_covers_the_articles_software_carries():
    section = DOC.split("## Article map", 1)[1].split("\n## ", 1)[0]
    for article in ("第三、八条", "第五、二十八条", "第六条", "第九条", "第十条", "第十一条", "第十二条", "第十三条",
                    "第十四条", "第十五条", "第十六条", "第十七条", "第十八条", "第十九条", "第二十、二十一条",
                    "第二十二条", "第二十三、二十四条", "第二十五条", "第二十六条"):
        assert f"| {article}" in section, article
