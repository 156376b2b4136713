"""Every action gives visible feedback (issue 15): each POST form on each role's pages is
submitted as a person would leave it (hidden fields, the defaults shown, the first submit
button; the text fields empty unless prefilled) and the page that follows must show what
happened — a flash (``.flash``), an alert (``role="alert"``) or the action's own result
(the workbench's result or preview, the verify result, a traced receipt) — in both languages.

Empty required fields are how most of these posts fail: the failure must be as visible as a
success. Logging out and switching the language are their own feedback (the login page, the
page in the other language) and are checked separately.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests import test_console as base
from tests.test_console import client_for
from tests.test_console_i18n import ensure_one_release_of

app = base.app

PAGES = {
    None: ["/catalog", "/opening-plans", "/objections/track", "/register"],
    "researcher": ["/query", "/history", "/objections", "/my/applications", "/my/tokens", "/apply/residents",
                   "/suspensions"],
    "owner": ["/owner", "/owner/applications", "/owner/approvals", "/owner/datasets", "/owner/datasets/residents",
              "/owner/alerts", "/suspensions", "/objections", "/enforcement", "/reviews", "/owner/datasets/new"],
    "regulator": ["/regulator", "/regulator/audit", "/regulator/trace", "/regulator/alerts", "/suspensions",
                  "/objections", "/enforcement", "/reviews", "/owner/datasets/residents"],
}
#: Their own feedback, tested elsewhere (the login page; the other language).
SKIP = {"/logout", "/lang"}
FEEDBACK = re.compile(r'class="flash |role="alert"|id="(?:result-table|estimate|verify-result|trace-result|'
                      r'refusal|trial-result|editor-notice)"')


class Forms(HTMLParser):
    """Each POST form: its action and the fields a person would submit untouched."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self.form: dict | None = None
        self.select: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("method") or "").lower() == "post":
            self.form = {"action": a.get("action") or "", "data": {}, "button": None, "formactions": []}
            self.forms.append(self.form)
        if self.form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.form["data"].setdefault(name, a.get("value", "on"))
            elif kind == "submit":
                self.form["button"] = self.form["button"] or (name, a.get("value", ""))
            elif kind != "file":
                self.form["data"].setdefault(name, a.get("value", ""))
        elif tag == "select" and name:
            self.select = name
        elif tag == "option" and self.select:
            if "selected" in a or self.select not in self.form["data"]:
                self.form["data"][self.select] = a.get("value", "")
        elif tag == "textarea" and name:
            self.textarea = name
            self.form["data"].setdefault(name, "")
        elif tag == "button" and (a.get("type") or "submit") == "submit":
            if a.get("formaction"):  # the workbench's Format, Preview and Save
                self.form["formactions"].append(a["formaction"])
            elif name:
                self.form["button"] = self.form["button"] or (name, a.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea":
            self.textarea = None

    def handle_data(self, data):
        if self.form is not None and self.textarea:
            self.form["data"][self.textarea] += data


def post_forms(html: str) -> list[dict]:
    parser = Forms()
    parser.feed(html)
    out = []
    for f in parser.forms:
        out += [f] + [{**f, "action": action, "button": None} for action in f["formactions"]]
    return [f for f in out if f["action"].split("?")[0] not in SKIP]


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
@pytest.mark.parametrize("role", [None, "researcher", "owner", "regulator"])
def test_every_form_answers_with_visible_feedback(app, demo, role, lang):
    sb, creds = demo
    ensure_one_release_of(sb, creds)
    c = client_for(app, role, lang=lang)
    silent, posted = [], 0
    for path in PAGES[role]:
        for i, form in enumerate(post_forms(c.get(path).get_data(as_text=True))):
            fresh = post_forms(c.get(path).get_data(as_text=True))  # a fresh token, the state as it is now
            if i >= len(fresh):
                break
            form = fresh[i]
            data = dict(form["data"])
            if form["button"]:
                data.setdefault(*form["button"])
            resp = c.post(form["action"] or path, data=data, headers={"Referer": "http://localhost" + path})
            posted += 1
            if resp.status_code in (301, 302, 303):
                resp = c.get(resp.headers["Location"])
            html = resp.get_data(as_text=True)
            if resp.status_code >= 500 or not FEEDBACK.search(html):
                silent.append(f"{path} → POST {form['action']} ({resp.status_code})")
            if role and 'id="logout"' not in html and "/login" in resp.request.path:
                c = client_for(app, role, lang=lang)  # an action that ended the session (none should)
    assert posted >= (1 if role is None else 3)
    assert silent == []
