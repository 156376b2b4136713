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


def test_paging_the_audit_log_one_entry_at_a_time_shows_the_district_exactly(env):  # noqa: F811
    """``next_start`` must only ever point past an entry the district regulator may read (or at
    the end): paging with ``limit=1`` must give exactly the entries of one big page, and no
    page may stop on, or skip past, an entry of another district in a way that shows its seq."""
    sb, client, tok, w = env
    whole = client.get("/api/v1/audit/entries?limit=1000", headers=tok["reg_lixia"]).json
    seen, start = [], 0
    for _ in range(len(whole["entries"]) + 2):
        page = client.get(f"/api/v1/audit/entries?limit=1&start={start}", headers=tok["reg_lixia"]).json
        if not page["entries"]:
            assert page["next_start"] == page["size"]  # the end, not the seq of a hidden entry
            break
        (e,) = page["entries"]
        assert page["next_start"] == e["seq"] + 1
        seen.append(e["seq"])
        start = page["next_start"]
    assert seen == [e["seq"] for e in whole["entries"]]
    city = client.get("/api/v1/audit/entries?limit=1000", headers=tok["regulator"]).json["entries"]
    assert len(seen) < len(city)
    # a filter naming the other district's researcher reads as nothing at all
    other = client.get("/api/v1/audit/entries?limit=1000&actor=researcher2", headers=tok["reg_lixia"]).json
    assert other["entries"] == [] and other["next_start"] == other["size"]


# -- (1) a researcher: derivative publication, differencing a sum of three files -----------------------
def _moves_after_a_newcomer(demo_template, root, seed: int, sex: str) -> dict:
    """What the attacker computes: 2026 city file − (three 2025 district files), per projection."""
    from collections import Counter

    import pyarrow as pa

    from tests.test_red_team_tiers import DISTRICTS, _env
    from tests.test_red_team_tiers_round2 import town, town_columns
    from tests.test_red_team_tiers_round3 import counts, newcomer, publish

    tiers = _env(demo_template, root)
    city = town(300, seed=seed)
    parts = [publish(tiers, f"r5_d{i}_2025", city.filter(pa.compute.equal(city.column("district"), d)),
                     town_columns()) for i, d in enumerate(DISTRICTS)]
    n = publish(tiers, "r5_city_2026", pa.concat_tables([city, newcomer(district="槐荫区", sex=sex)]), town_columns())
    out = {}
    for cols in (("district", "sex", "age"), ("district", "sex"), ("district",), ("sex",)):
        total: Counter = Counter()
        for p in parts:
            total.update(counts(p, list(cols)))
        new = counts(n, list(cols))
        out[cols] = {c: new.get(c, 0) - total.get(c, 0) for c in set(new) | set(total)
                     if new.get(c, 0) != total.get(c, 0)}
    return out


@pytest.mark.parametrize("seed", [391, 392, pytest.param(393, marks=pytest.mark.xfail(strict=True, reason=(
    "LEAK (medium): a sum of three open files is no anchor. Seed 393: with a male newcomer of 槐荫区 aged 37, "
    "2026 city file − (three 2025 district files) moves exactly one class, (槐荫区, 男, 0-49) by +5, and no "
    "other class or projection; with a female newcomer nothing moves. Whoever knows one person joined reads "
    "their whole published row (district, sex, age band). granular_counts anchors only single files and "
    "sums of two (docs/privacy.md §7 residual made concrete).")))])
def test_next_years_city_file_minus_three_district_files_does_not_depend_on_the_newcomer(
        demo_template, tmp_path, seed):
    """Anchors are single files and sums of two; a sum of three district files gets only the
    multiple-of-g rule. The attacker subtracts the three 2025 district files from the 2026 city
    file (one newcomer) on every class and projection, hoping the class that moved is the
    newcomer's. Held: every move is a multiple of 5, and the moves are the same whether the
    newcomer is a woman or a man (seed 392 moves 市中区/女 by 5 either way: rounding of the
    district files, not the person)."""
    her = _moves_after_a_newcomer(demo_template, tmp_path / "f", seed, "女")
    him = _moves_after_a_newcomer(demo_template, tmp_path / "m", seed, "男")
    assert him[("district", "sex", "age")] != {("槐荫区", "男", "0-49"): 5} or her[("district", "sex", "age")] != {}
    for cols, moved in her.items():
        assert all(abs(v) % 5 == 0 for v in moved.values()), (cols, moved)
        if "sex" in cols and cols != ("district", "sex", "age"):
            assert moved == him[cols], (cols, moved, him[cols])


# -- (1) a researcher: engine files and other researchers' activity (decision 0013, issue 18) ------------
JOINED = ("SELECT r.district, COUNT(*) FROM clinic_visits c JOIN residents r ON c.person_id = r.person_id "
          "GROUP BY r.district")


def test_a_query_outside_the_prepared_groupings_leaves_no_first_use_state_for_another_study(demo_template,
                                                                                            tmp_path):
    """Was a LEAK (low–medium, timing about others): a grouping outside the prepared set (a join's
    column, two columns, EXTRACT(year …)) ranks every row on first use and kept the flags under
    (grouping, versions) only, shared across approvals, so the next study's same grouping was fast:
    its latency told that someone had already asked it. The flags are now keyed by the approval too
    (``KeepSpec.scope``): another study's first query of the grouping finds nothing, in memory or on
    disk, and computes its own."""
    import query_guard
    from sandbox.engine.execution import engine_request, materialise
    from sandbox.governance import datasets, workflow
    from sandbox.service import prepare
    from tests.test_engine_files import _query
    from tests.test_privacy_ledger import new_approval
    from tests.test_workflow_support import demo_copy

    sb, creds = demo_copy(demo_template, tmp_path)
    other = new_approval(sb)  # another study over the same datasets
    prepare.Preparer(sb, sb.engine, sb.tables).run_once(sb.ws.connect())  # what the server does in the background
    assert _query(sb, creds, JOINED)["rows"]  # the first study asks the unprepared grouping

    versions = datasets.latest_versions(sb.conn())
    scenario = workflow.get_approval(sb.conn(), other).scenario
    plan = query_guard.plan(JOINED, scenario, datasets.build_catalog(versions))
    for scope, stored in ((f"approval:{creds['researcher']['approval_id']}", True), (f"approval:{other}", False)):
        req = engine_request(plan, versions, scope=scope)
        key = (req.keep.column, tuple(sorted((v.name, v.version_id) for v in req.versions)), scope)
        bounded = next(v for v in req.versions if v.name == req.keep.dataset)
        store = sb.tables.keep_store(bounded, key)
        assert (store.load(sb.engine) is not None) is stored, scope
        assert (key in sb.executor.keep._columns) is stored, scope
    # and the other study's own first query computes (and only then keeps) its flags
    req = engine_request(plan, versions, scope=f"approval:{other}")
    materialise(sb.engine, sb.tables, sb.executor.keep, req)
    key = (req.keep.column, tuple(sorted((v.name, v.version_id) for v in req.versions)), f"approval:{other}")
    assert key in sb.executor.keep._columns


def test_accepted_sql_cannot_name_the_keep_side_table_or_a_file(demo_template, tmp_path):
    """The keep flags ride along as ``__extra_<name>`` and every version is a ``read_parquet`` of a
    file in the engine directory: accepted SQL can name neither (refused before any charge)."""
    from sandbox.errors import SandboxError
    from sandbox.governance import datasets
    from tests.test_engine_files import _query
    from tests.test_workflow_support import demo_copy

    sb, creds = demo_copy(demo_template, tmp_path)
    assert _query(sb, creds, "SELECT department, COUNT(*) FROM clinic_visits GROUP BY department")["rows"]
    engine_dir = datasets.engine_dir(sb.ws.data_dir)
    some_file = sorted(engine_dir.iterdir())[0]
    for sql in ('SELECT COUNT(*) FROM "__extra_clinic_visits"', "SELECT COUNT(*) FROM __extra_clinic_visits",
                f"SELECT COUNT(*) FROM read_parquet('{some_file}')", f"SELECT COUNT(*) FROM '{some_file}'",
                "SELECT COUNT(*) FROM clinic_visits WHERE __rowid < 10"):
        with pytest.raises(SandboxError) as err:
            _query(sb, creds, sql)
        assert err.value.http_status in (400, 403), (sql, err.value.code)
        assert err.value.code != "query_failed", sql  # refused before the charge, not failed after it


# -- (2) an owner or researcher beyond their role: amendments and attachments ---------------------------
def test_amendment_of_another_researchers_approval_and_spending_before_approval(world):
    w, client, tok = world
    approval = w.own.approval
    other = client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher2"],
                        json={"kind": "budget", "reason": "mine now", "epsilon_total": 50})
    assert other.status_code in (403, 404), other.json
    r = client.post(f"/api/v1/approvals/{approval}/requests", headers=tok["researcher"],
                    json={"kind": "budget", "reason": "more", "epsilon_total": 50})
    assert r.status_code == 201, r.json
    # owner2 (another organisation) cannot read, decide, or download from the amendment
    app_id = r.json["application_id"]
    assert client.post(f"/api/v1/applications/{app_id}/decision", headers=tok["owner2"],
                       json={"decision": "approve"}).status_code == 404
    budget = client.get(f"/api/v1/approvals/{approval}/budget", headers=tok["researcher"]).json
    assert budget["epsilon"]["total"] == 5.0  # requested is not granted


def test_attachment_ids_of_other_parties_read_like_missing_ones(world):
    """Enumerating attachment ids: someone else's file and no file answer the same 404 text."""
    import base64

    w, client, tok = world
    r = client.post("/api/v1/applications", headers=tok["researcher"], json={
        "datasets": ["residents"], "scenario": "income by district", "purpose": "thesis",
        "commitment_accepted": True,
        "attachments": [{"name": "a\u2028b\r\n.txt", "content_base64": base64.b64encode(b"notes").decode()}]})
    assert r.status_code == 201, r.json
    att = r.json["attachments"][0]["attachment_id"]
    assert "\r" not in r.json["attachments"][0]["name"] and "\n" not in r.json["attachments"][0]["name"]
    theirs = client.get(f"/api/v1/attachments/{att}", headers=tok["researcher2"])
    none = client.get(f"/api/v1/attachments/{att + 1000}", headers=tok["researcher2"])
    assert theirs.status_code == none.status_code == 404
    assert theirs.json["error"]["code"] == none.json["error"]["code"]
    d = client.get(f"/api/v1/attachments/{att}", headers=tok["researcher"])
    assert d.status_code == 200 and "\n" not in d.headers["Content-Disposition"]


def test_the_empty_table_check_is_not_shared_between_approvals(world, monkeypatch):
    """Fixed here: ``pipeline.empty_table_check`` remembered (plan, versions) across approvals, so a
    query (or a refusal) ran a few ms faster when another study had asked the same plan — a timing
    channel on others' activity. It is now keyed by the approval, like the guard's plan cache."""
    from sandbox.service import pipeline
    from sandbox.service.pipeline import QueryRequest

    w, client, tok = world
    calls = []
    real = pipeline.check_on_empty
    monkeypatch.setattr(pipeline, "check_on_empty", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    import datetime as dt

    from sandbox.service.operations import SandboxAdmin

    me, them, owner = w.users["researcher"], w.users["researcher2"], w.users["owner"]
    admin = SandboxAdmin(w.sb)
    expires = (w.sb.now() + dt.timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    app = admin.apply(them, {"datasets": ["residents"], "scenario": "residents by district", "purpose": "rival study",
                             "commitment_accepted": True})
    theirs = admin.approve(owner, app, {"datasets": ["residents"]}, epsilon_total=5.0, delta_total=1e-6,
                           epsilon_per_query=1.0, expires_at=expires)
    sql = "SELECT COUNT(*) FROM residents"
    assert w.sb.run_query(them, QueryRequest(theirs, sql, 0.5))["rows"]  # the other study asks first
    assert w.sb.run_query(me, QueryRequest(w.own.approval, sql, 0.5))["rows"]
    assert len(calls) == 2  # one empty-table run per approval, none reused from the other


# -- group commit (decision 0012): a charge without its log entry, or data read without either ----------
def test_a_unit_that_fails_after_charging_leaves_neither_charge_nor_entry_and_reads_nothing(world, monkeypatch):
    """The audit append of ``query.started`` fails after the ledger row was written, inside the
    writer's group-commit unit: the unit must roll back whole (no charge without its entry, no
    ``queries`` row) and the engine must never run; the next query is charged normally."""
    import audit_log.store as audit_store
    from sandbox.service import pipeline
    from sandbox.service.pipeline import QueryRequest

    w, client, tok = world
    me, sb = w.users["researcher"], w.sb
    conn = sb.conn()
    spent = lambda: conn.execute("SELECT COUNT(*), COALESCE(SUM(epsilon), 0) FROM ledger").fetchone()  # noqa: E731
    before_ledger, before_queries = spent(), conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
    before_log = audit_store.size(conn)
    ran = []
    real_audit = sb.audit

    def failing_audit(c, user, action, *a, **k):
        if action == "query.started":
            raise OSError("disk full while appending")
        return real_audit(c, user, action, *a, **k)

    monkeypatch.setattr(sb, "audit", failing_audit)
    real_execute = pipeline.execute
    monkeypatch.setattr(pipeline, "execute", lambda *a, **k: (ran.append(1), real_execute(*a, **k))[1])
    sql = "SELECT COUNT(*) FROM residents"
    with pytest.raises(Exception):  # noqa: B017 - any failure, as long as nothing stands
        sb.run_query(me, QueryRequest(w.own.approval, sql, 0.5))
    assert ran == []
    assert spent() == before_ledger
    assert conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == before_queries
    assert not [e for e in audit_store.entries(conn, before_log) if e["action"] == "query.started"]
    monkeypatch.setattr(sb, "audit", real_audit)
    assert sb.run_query(me, QueryRequest(w.own.approval, sql, 0.5))["rows"]
    assert spent()[0] == before_ledger[0] + 1


def test_a_district_regulator_reads_no_query_history_of_another_district(env):  # noqa: F811
    """The console's query history and release pages (``/history``, ``/history/<id>``) and the
    trace page's ``?query=`` prefill serve regulators every query: a district regulator must see
    none of 市中区's (researcher2's SQL on permits, its figures, its receipt)."""
    from tests.test_console import login, post, text

    sb, client, tok, w = env
    r = client.post("/api/v1/queries", headers=tok["researcher2"], json={
        "approval_id": w.other.approval, "sql": "SELECT district, COUNT(*) FROM permits GROUP BY district",
        "epsilon": 0.5})
    assert r.status_code == 200, r.json
    qid = r.json["query_id"]
    city = create_app(sb, {"TESTING": True}).test_client()
    assert login(city, "regulator").status_code == 302
    assert qid in text(city.get("/history")) and city.get(f"/history/{qid}").status_code == 200  # the city sees it
    c = create_app(sb, {"TESTING": True}).test_client()
    assert login(c, "reg_lixia", "reg_lixia-password").status_code == 302
    page = text(c.get("/history")).split("<main", 1)[-1]
    assert qid not in page and "permits" not in page and "researcher2" not in page
    assert c.get(f"/history/{qid}").status_code == 404
    assert qid not in text(c.get(f"/regulator/trace?query={qid}")).split("<main", 1)[-1]
    receipt = r.json["receipt"]
    traced = text(post(c, "/regulator/trace", {"receipt": __import__("json").dumps(receipt)},
                       page="/regulator/trace")).split("<main", 1)[-1]
    assert "permits" not in traced and "researcher2" not in traced


def test_a_district_regulator_reads_no_budget_of_another_districts_approval(env):  # noqa: F811
    """``GET /api/v1/approvals/<id>/budget`` let every regulator read every approval's ε spent and
    remaining: a district regulator must get 404 for 市中区's approval, as for the approval itself."""
    sb, client, tok, w = env
    assert client.get(f"/api/v1/approvals/{w.other.approval}/budget", headers=tok["regulator"]).status_code == 200
    assert client.get(f"/api/v1/approvals/{w.other.approval}", headers=tok["reg_lixia"]).status_code == 404
    assert client.get(f"/api/v1/approvals/{w.other.approval}/budget", headers=tok["reg_lixia"]).status_code == 404
    assert client.get(f"/api/v1/approvals/{w.own.approval}/budget", headers=tok["reg_lixia"]).status_code == 200


def test_a_district_regulator_cannot_change_the_tier_of_another_districts_dataset(env):  # noqa: F811
    """``dataset.tier`` allows any regulator: 历下区's regulator must not lower (or propose to raise)
    the tier of 市中区's ``permits``; the city regulator and its own district may."""
    sb, client, tok, w = env
    tier_now = lambda: sb.conn().execute("SELECT tier FROM datasets WHERE name = 'permits'").fetchone()[0]  # noqa: E731
    before = tier_now()
    for tier in ("not_open", "unconditional"):
        r = client.post("/api/v1/datasets/permits/tier", headers=tok["reg_lixia"],
                        json={"tier": tier, "basis": "reaching across the district line"})
        assert r.status_code == 404, (tier, r.status_code, r.json)
    assert tier_now() == before
    own = client.post("/api/v1/datasets/residents/tier", headers=tok["reg_lixia"],
                      json={"tier": "not_open", "basis": "its own district"})
    assert own.status_code in (200, 202), own.json


def test_a_district_regulator_reads_no_risk_report_or_rectification_of_another_district(env):  # noqa: F811
    """Rules with ``regulator=ANY`` and no jurisdiction check: 历下区's regulator read 市中区's
    risk report (quasi-identifier class sizes) and bounding report, read and could close 市中区's
    rectification order, and could issue one to 市中区's owner. All must read as missing (第五条)."""
    sb, client, tok, w = env
    reg, city = tok["reg_lixia"], tok["regulator"]
    for url in ("/api/v1/datasets/permits/risk", "/api/v1/datasets/permits/bounding-report",
                f"/api/v1/rectifications/{w.other.rectification}"):
        assert client.get(url, headers=city).status_code == 200, url
        assert client.get(url, headers=reg).status_code == 404, url
    assert client.get("/api/v1/datasets/residents/risk", headers=reg).status_code == 200
    assert client.get(f"/api/v1/rectifications/{w.own.rectification}", headers=reg).status_code == 200
    assert client.post(f"/api/v1/rectifications/{w.other.rectification}/close", headers=reg,
                       json={"accept": True, "note": "x"}).status_code == 404
    r = client.post("/api/v1/rectifications", headers=reg, json={"owner": "owner2", "what": "across the line"})
    assert r.status_code == 404, r.json
    assert client.post("/api/v1/rectifications", headers=reg, json={"owner": "owner", "what": "mine"}).status_code == 201


def test_the_suspension_form_of_a_district_regulator_lists_its_districts_researchers_only(env):  # noqa: F811
    """``/suspensions`` offered every researcher of the city in its picker: 历下区's regulator must
    not be shown researcher2 (who holds approvals on 市中区's permits only)."""
    from tests.test_console import login, text

    sb, client, tok, w = env
    c = create_app(sb, {"TESTING": True}).test_client()
    assert login(c, "reg_lixia", "reg_lixia-password").status_code == 302
    page = text(c.get("/suspensions")).split("<main", 1)[-1]
    assert "researcher2" not in page
    # budget caps are public (the transparency page shows them): reading 市中区's is no leak
    assert client.get("/api/v1/datasets/permits/budget-cap", headers=tok["reg_lixia"]).status_code == 200


@pytest.mark.parametrize("url", ["/api/v1/objections", "/api/v1/suspensions", "/api/v1/terminations", "/api/v1/alerts",
                                 "/api/v1/approvals", "/api/v1/applications", "/api/v1/reviews",
                                 "/api/v1/public-objections", "/api/v1/rectifications"])
def test_a_district_regulators_lists_name_nothing_of_another_district(env, url):  # noqa: F811
    """Held: every list a regulator reads over the API is narrowed to its district."""
    sb, client, tok, w = env
    r = client.get(url, headers=tok["reg_lixia"])
    assert r.status_code == 200
    body = str(r.json)
    assert "permits" not in body and "owner2" not in body and "researcher2" not in body
