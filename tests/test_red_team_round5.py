"""Red team, round 5: today's governance code (issue 14), derivative publication, group commit
(decision 0012) and engine files (decision 0013), attacked through the public interfaces.

Attackers: (1) a researcher after one resident's row, (2) a district regulator or an owner
reaching beyond their district or role, (3) an outsider. Defended attacks are normal tests;
open ones are ``xfail(strict=True, reason="LEAK: ...")`` and flip when fixed.
"""

from __future__ import annotations

import pytest

from sandbox.web import create_app
from tests.test_jurisdiction_district import env  # noqa: F401  (fixture: reg_lixia regulates 历下区)
from tests.test_workflow_support import bearer, world_copy


@pytest.fixture
def world(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    client = create_app(w.sb, {"TESTING": True}).test_client()
    return w, client, {k: bearer(t) for k, t in w.tokens.items()}


# -- (2) a district regulator beyond its district ----------------------------------------------------
def test_replay_report_of_a_district_regulator_names_no_other_district(env):  # noqa: F811
    """The replay page filters its approvals table, but the same report also lists every
    researcher's releases and refusal codes, the inconsistencies, suspensions, tier and key
    changes: for 历下区's regulator none may concern 市中区 (researcher2, owner2, permits)."""
    from tests.test_console import login, text

    sb, client, tok, w = env
    c = create_app(sb, {"TESTING": True}).test_client()
    assert login(c, "reg_lixia", "reg_lixia-password").status_code == 302
    page = text(c.get("/regulator/replay")).split("<main", 1)[-1]
    assert "researcher2" not in page and "permits" not in page and "owner2" not in page
    assert f"#{w.other.approval}" not in page
