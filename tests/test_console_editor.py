"""The workbench's editor support over the Flask test client: what the editor is told
(tables, columns, functions with descriptions in the UI language), sqlglot formatting,
saved queries and reopening past queries (issue 15)."""

from __future__ import annotations

import html
import json
import re

from markupsafe import escape

from sandbox.errors import BadRequest, NotFound
from sandbox.service.operations import SandboxAdmin
from sandbox.store import saved_queries
from sandbox.store.users import find_user
from sandbox.web.console.editor import FUNCTIONS, format_sql, functions_for
from tests import test_console as base
from tests.test_console import OUT_OF_SCOPE, client_for, login, post, run_query, text

app = base.app  # the fixture: the console over a fresh demo workspace

MESSY = "select district,count(*) as people from residents where age>=18 group by district"


def editor_data(page: str) -> tuple[dict, list[dict]]:
    schema = re.search(r'data-schema="([^"]*)"', page).group(1)
    functions = re.search(r'data-functions="([^"]*)"', page).group(1)
    return json.loads(html.unescape(schema)), json.loads(html.unescape(functions))


def test_the_editor_gets_the_approvals_tables_columns_and_functions(app, demo):
    sb, creds = demo
    page = text(client_for(app, "researcher").get(f"/query?approval={creds['researcher']['approval_id']}"))
    assert "vendor/codemirror.min.js" in page
    schema, functions = editor_data(page)
    assert set(schema) == {"residents", "clinic_visits"}
    columns = {c["name"]: c["detail"] for c in schema["residents"]["columns"]}
    assert "district" in columns and "income" in columns
    assert "phone" not in columns and "name" not in columns  # identifiers are never offered
    assert "[" in columns["age"]  # bounds as the completion's detail
    names = {f["name"]: f for f in functions}
    assert {"COUNT", "AVG", "ROUND", "DATE_TRUNC"} <= set(names)
    assert re.search(r"[\u4e00-\u9fff]", names["AVG"]["description"])  # described in Chinese
    en = text(client_for(app, "researcher", lang="en").get("/query"))
    assert {f["name"]: f for f in editor_data(en)[1]}["AVG"]["description"] == "Mean of a bounded numeric column"


def test_aggregates_outside_the_approval_are_not_offered():
    names = {f["name"] for f in functions_for({"scope": {"aggregates": ["count", "sum"]}})}
    assert {"COUNT", "SUM", "ROUND"} <= names and not names & {"AVG", "MEDIAN", "STDDEV"}
    assert {f["name"] for f in functions_for({"scope": {}})} == {f.name for f in FUNCTIONS}


def test_format_uses_sqlglot_and_keeps_unparsable_text():
    assert format_sql(MESSY).sql == ("SELECT\n  district,\n  COUNT(*) AS people\nFROM residents\n"
                                     "WHERE\n  age >= 18\nGROUP BY\n  district")
    broken = format_sql("select (district from residents")
    assert broken.sql == "select (district from residents" and "does not parse" in broken.error


def test_format_button_reformats_without_running_or_charging(app, demo):
    sb, creds = demo
    approval = creds["researcher"]["approval_id"]
    c = client_for(app, "researcher", lang="en")
    queries_before = sb.conn().execute("SELECT COUNT(*) FROM queries").fetchone()[0]
    resp = post(c, "/query/format", {"sql": MESSY, "approval_id": str(approval), "epsilon": "0.3",
                                     "confidence": "0.9"}, page="/query")
    assert resp.status_code == 200
    page = text(resp)
    assert str(escape("SELECT\n  district,\n  COUNT(*) AS people")) in page
    assert 'value="0.3"' in page and 'value="0.9" selected' in page  # the rest of the form is kept
    assert sb.conn().execute("SELECT COUNT(*) FROM queries").fetchone()[0] == queries_before
    bad = text(post(c, "/query/format", {"sql": "select (x from", "approval_id": str(approval)}, page="/query"))
    assert "select (x from" in bad and "does not parse" in bad


def test_saved_queries_save_replace_reopen_delete_and_stay_private(app, demo):
    sb, creds = demo
    approval = creds["researcher"]["approval_id"]
    c = client_for(app, "researcher", lang="en")
    resp = post(c, "/query/save", {"sql": MESSY, "save_name": "adults", "approval_id": str(approval)}, page="/query")
    assert resp.status_code == 303
    page = text(c.get(resp.headers["Location"]))
    assert "Saved as “adults”." in page and 'id="saved-' in page
    assert str(escape(MESSY)) in page  # reopened in the editor
    # The same name again replaces the text.
    post(c, "/query/save", {"sql": "SELECT COUNT(*) FROM residents", "save_name": "adults",
                            "approval_id": str(approval)}, page="/query")
    researcher = find_user(sb.conn(), "researcher")
    (item,) = saved_queries.list_saved(sb.conn(), researcher)
    assert item.sql == "SELECT COUNT(*) FROM residents" and item.approval_id == approval
    # A refused save keeps what was typed and names the rule broken.
    refused = post(c, "/query/save", {"sql": MESSY, "save_name": "  ", "approval_id": str(approval)}, page="/query")
    assert refused.status_code == 400
    assert "Give the query a name to save it." in text(refused)
    assert str(escape(MESSY)) in text(refused)
    # Another researcher cannot see, open or delete it.
    SandboxAdmin(sb).create_user("other", "researcher", "other-password")
    other = client_for(app, None)
    assert login(other, "other", "other-password").status_code == 302
    assert other.get(f"/query?saved={item.id}").status_code == 404
    assert post(other, f"/query/saved/{item.id}/delete", {}, page="/query").status_code == 404
    # Its owner deletes it.
    assert post(c, f"/query/saved/{item.id}/delete", {}, page="/query").status_code == 303
    assert saved_queries.list_saved(sb.conn(), researcher) == []


def test_saved_query_rules(demo):
    sb, _creds = demo
    researcher = find_user(sb.conn(), "researcher")
    for name, sql, code in (("", "SELECT 1", "saved_query_name_required"), ("x" * 121, "SELECT 1",
                            "saved_query_name_too_long"), ("n", "  ", "saved_query_sql_required")):
        try:
            saved_queries.save(sb, researcher, name, sql)
        except BadRequest as err:
            assert err.code == code
        else:
            raise AssertionError(f"saved {name!r}")
    try:
        saved_queries.get_saved(sb.conn(), researcher, 999)
    except NotFound:
        pass
    else:
        raise AssertionError("found a missing saved query")


def test_a_past_query_refused_or_released_reopens_in_the_editor(app, demo):
    sb, creds = demo
    approval = creds["researcher"]["approval_id"]
    c = client_for(app, "researcher", lang="en")
    assert run_query(c, approval, sql=OUT_OF_SCOPE).status_code == 400
    page = text(c.get("/query"))
    link = re.search(r'href="(/query\?open=[^"]+)" class="open-query"', page).group(1)
    reopened = text(c.get(html.unescape(link)))
    assert str(escape(OUT_OF_SCOPE)) in reopened
    query_id = link.split("=", 1)[1]
    other = client_for(app, "owner")
    assert other.get(f"/query?open={query_id}").status_code == 403  # researchers only


def test_an_approval_that_is_not_yours_falls_back_with_a_notice(app, demo):
    c = client_for(app, "researcher", lang="en")
    page = text(c.get("/query?approval=987"))
    assert "Approval #987 is not one of yours; showing your current approval." in page
    assert 'id="query-form"' in page  # the workbench, not "no approval yet"


def test_format_survives_deep_nesting():
    """Thousands of nested parentheses hit Python's recursion limit in the parser: the text
    comes back unchanged with a message, never a 500."""
    from sandbox.web.console.editor import format_sql

    sql = "SELECT " + "(" * 4000 + "1" + ")" * 4000
    out = format_sql(sql)
    assert out.sql == sql and out.error
