"""Organisation names, not usernames (issue 15): the catalog, a dataset's page and the apply
page name the dataset's organisation (or its owner's), and the owner's username only when
neither belongs to one."""

from __future__ import annotations

import re

from sandbox.governance import organisations
from sandbox.service.operations import SandboxAdmin
from sandbox.store.users import find_user
from tests import test_console as base
from tests.test_console import client_for

app = base.app


def publishers(html: str) -> list[str]:
    return re.findall(r'<span translate="no" class="publisher">([^<]*)</span>', html)


def test_pages_name_the_organisation_and_fall_back_to_the_username(app, demo):
    sb, _creds = demo
    anon = client_for(app, None)
    assert set(publishers(anon.get("/catalog").get_data(as_text=True))) == {"owner"}  # no organisation yet
    admin = find_user(sb.conn(), "pub-admin") or SandboxAdmin(sb).create_user("pub-admin", "admin", "pub-admin-pw")[0]
    organisations.create(sb, admin, {"name": "济南市卫生健康委员会", "kind": "bureau"})
    organisations.assign(sb, admin, "owner", {"organisation": "济南市卫生健康委员会"})
    for lang in ("zh_CN", "en"):
        c = client_for(app, None, lang=lang)
        assert set(publishers(c.get("/catalog").get_data(as_text=True))) == {"济南市卫生健康委员会"}
        assert publishers(c.get("/catalog/residents").get_data(as_text=True)) == ["济南市卫生健康委员会"]
    page = client_for(app, "researcher").get("/apply/residents").get_data(as_text=True)
    assert publishers(page) == ["济南市卫生健康委员会"]
