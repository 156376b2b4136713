"""The authorization matrix, generated from ONE table: every endpoint × every role × own /
other's object → allowed, 401, 403 or 404 (issue 6; 第十五、十七、二十二条).

``TABLE`` has one row per (endpoint, method) of the Flask app (a variant may add a second
row for the same endpoint); ``test_every_endpoint_is_in_the_table`` enumerates
``app.url_map`` and fails when an endpoint is missing, so a new endpoint cannot be forgotten.

Cells: ``"<own> <other>"`` per role. Outcomes: ``ok`` (2xx), ``409`` (past authorization,
refused by state), ``302`` (redirect to login), ``400`` (console form without CSRF token),
``401``/``403``/``404`` with the error codes ``unauthorized``/``forbidden``/``not_found``;
``anon`` (console pages, which use server-side sessions, not tokens): exactly what an
anonymous visitor gets, and no server error.
"Own" objects belong to the caller (researcher: their application, approval, objection;
owner: their dataset ``residents`` and what concerns it); "other" objects belong to
``researcher2`` and ``owner2`` (dataset ``permits``). Regulator and admin own nothing:
their two cells use the same two objects. Rows run in order within one world per role, so
rows that change state (suspend, lift, tier change) come after the rows they would affect.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.web import create_app
from tests.test_workflow_support import Side, World, bearer, world_copy

ROLES = ("researcher", "owner", "regulator", "admin", "anonymous")
CALLER = {"researcher": "researcher", "owner": "owner", "regulator": "regulator", "admin": "admin",
          "anonymous": None}
EXPIRES = "2999-01-01"


@pytest.fixture
def world(demo_template, tmp_path_factory, tmp_path) -> World:
    return world_copy(demo_template, tmp_path_factory, tmp_path)


@dataclass(frozen=True)
class Row:
    endpoint: str
    method: str
    path: str
    body: dict[str, Any] | None
    expect: dict[str, tuple[str, str]]


def row(endpoint: str, method: str, path: str, body: dict[str, Any] | None = None, *, everyone: str = "",
        **cells: str) -> Row:
    expect = {}
    for role in ROLES:
        spec = cells.get(role, everyone)
        assert spec, f"{endpoint}: no expectation for {role}"
        own, other = spec.split()
        expect[role] = (own, other)
    return Row(endpoint, method, path, body, expect)


READ_OWN = dict(researcher="ok 404", owner="ok 404", regulator="ok ok", admin="403 403", anonymous="401 401")
LIST = dict(researcher="ok ok", owner="ok ok", regulator="ok ok", admin="403 403", anonymous="401 401")
SIGNED_IN = dict(everyone="ok ok", anonymous="401 401")
PUBLIC = dict(everyone="ok ok")
REGULATOR_ONLY = dict(everyone="403 403", regulator="ok ok", anonymous="401 401")
OWNER_OR_REGULATOR = dict(researcher="403 403", owner="ok 404", regulator="ok ok", admin="403 403",
                          anonymous="401 401")
OWNERS_AND_REGULATORS = dict(researcher="403 403", owner="ok ok", regulator="ok ok", admin="403 403",
                             anonymous="401 401")
DATASET_ADMIN = dict(researcher="403 403", owner="ok 403", regulator="ok ok", admin="403 403",
                     anonymous="401 401")

APPLY = {"datasets": ["{dataset}"], "scenario": "matrix", "purpose": "matrix test", "commitment_accepted": True}
APPROVE = {"decision": "approve", "reason": "fine", "epsilon_total": 2, "delta_total": 0,
           "epsilon_per_query": 1, "expires": EXPIRES}

TABLE: list[Row] = [
    # -- public ---------------------------------------------------------------------------
    row("healthz", "GET", "/healthz", **PUBLIC),
    row("api_openapi.get_openapi", "GET", "/api/v1/openapi.json", **PUBLIC),
    row("static", "GET", "/static/sandbox.css", **PUBLIC),
    row("api_workflow.get_catalog", "GET", "/api/v1/catalog", **PUBLIC),
    row("api_workflow.get_catalog_entry", "GET", "/api/v1/catalog/{dataset}", **PUBLIC),
    row("api_workflow.get_catalog_jsonld", "GET", "/catalog.jsonld", **PUBLIC),
    row("api_workflow.get_transparency", "GET", "/api/v1/transparency", **PUBLIC),
    row("api_workflow.get_commitment", "GET", "/api/v1/commitment", **PUBLIC),
    # conditional data never downloads (第八、十五条), whoever asks; it is listed, so 403
    row("api_workflow.download", "GET", "/api/v1/datasets/{dataset}/download?format=csv", everyone="403 403"),
    # -- console (HTML over server-side sessions; its per-role rules are tested with the
    # console): a bearer token must grant nothing there, so every role gets exactly what an
    # anonymous visitor gets ("anon"). Paths are built from the url_map with the side's ids.
    *[row(endpoint, method, "", everyone="anon anon") for endpoint, method in (
        ("console.login", "GET"), ("console.login", "POST"), ("console.logout", "POST"),
        ("console.home", "GET"), ("console.set_language", "POST"),
        ("public.catalog", "GET"), ("public.dataset", "GET"), ("public.transparency", "GET"),
        ("researcher.query", "GET"), ("researcher.run", "POST"), ("researcher.preview_cost", "POST"),
        ("researcher.history", "GET"),
        ("researcher.release", "GET"), ("researcher.release_csv", "GET"), ("researcher.receipt", "GET"),
        ("researcher.format_query", "POST"), ("researcher.save_query", "POST"), ("researcher.delete_saved", "POST"),
        ("researcher.release_xlsx", "GET"),
        ("owner.overview", "GET"), ("owner.applications_inbox", "GET"), ("owner.application", "GET"),
        ("owner.decide", "POST"), ("owner.approvals", "GET"), ("owner.alerts", "GET"),
        ("owner_datasets.datasets", "GET"), ("owner_datasets.new", "GET"), ("owner_datasets.upload", "POST"),
        ("owner_datasets.policy", "GET"), ("owner_datasets.register", "POST"), ("owner_datasets.dataset", "GET"),
        ("owner_datasets.acknowledge", "POST"), ("owner_datasets.tier", "POST"),
        ("owner_datasets.budget_cap", "POST"),
        ("regulator.overview", "GET"), ("regulator.verify", "POST"), ("regulator.timeline", "GET"),
        ("regulator.replay_report", "GET"), ("regulator.trace", "GET"), ("regulator.trace", "POST"),
        ("regulator.alerts", "GET"),
        ("oversight.suspensions", "GET"), ("oversight.suspend", "POST"), ("oversight.lift", "POST"),
        ("oversight.objections", "GET"), ("oversight.file_objection", "POST"), ("oversight.answer", "POST"),
        ("reviews.index", "GET"), ("reviews.detail", "GET"), ("reviews.decide", "POST"),
        ("reviews.answer", "POST"), ("reviews.expert", "POST"), ("reviews.city_decide", "POST"),
        ("owner_datasets.legal_basis", "POST"), ("owner_datasets.classify", "POST"),
        ("enforcement.index", "GET"), ("enforcement.issue", "POST"), ("enforcement.respond", "POST"),
        ("enforcement.close", "POST"), ("enforcement.terminate", "POST"), ("enforcement.reverse", "POST"),
        ("enforcement.handle_alert", "POST"), ("enforcement.settings_page", "GET"),
        ("enforcement.change_setting", "POST"), ("enforcement.file_public_objection", "POST"),
        ("enforcement.track_public_objection", "GET"), ("enforcement.answer_public_objection", "POST"),
        ("self_service.register", "GET"), ("self_service.register", "POST"), ("self_service.apply", "GET"),
        ("self_service.apply", "POST"), ("self_service.my_applications", "GET"),
        ("self_service.request_change", "POST"), ("self_service.tokens", "GET"), ("self_service.tokens", "POST"),
        ("self_service.revoke", "POST"), ("enforcement.opening_plans_page", "GET"),
        ("enforcement.comment_opening_plan", "POST"), ("enforcement.publish_opening_plan", "POST"),
        ("enforcement.opening_plan_comments", "GET"), ("self_service.attachment", "GET"),
    )],
    # -- queries and budgets (the foundation's endpoints) ------------------------------------
    row("api.post_query", "POST", "/api/v1/queries",
        {"approval_id": "{approval}", "sql": "SELECT COUNT(*) FROM {dataset}", "epsilon": 0.1},
        researcher="ok 404", owner="404 404", regulator="404 404", admin="404 404", anonymous="401 401"),
    row("api_preview.post_preview", "POST", "/api/v1/queries/preview",
        {"approval_id": "{approval}", "sql": "SELECT COUNT(*) FROM {dataset}", "epsilon": 0.1},
        researcher="ok 404", owner="404 404", regulator="404 404", admin="404 404", anonymous="401 401"),
    row("api_preview.post_dummy", "POST", "/api/v1/queries/dummy",
        {"approval_id": "{approval}", "sql": "SELECT COUNT(*) FROM {dataset}", "epsilon": 0.1},
        researcher="ok 404", owner="404 404", regulator="404 404", admin="404 404", anonymous="401 401"),
    row("api.get_budget", "GET", "/api/v1/approvals/{approval}/budget",
        researcher="ok 404", owner="ok 404", regulator="ok ok", admin="404 404", anonymous="401 401"),
    row("api.list_datasets", "GET", "/api/v1/datasets", **SIGNED_IN),
    # -- audit (regulators read entries; proofs and checkpoints for every signed-in user) ----
    row("api_audit.entries", "GET", "/api/v1/audit/entries", **REGULATOR_ONLY),
    row("api_audit.checkpoint", "GET", "/api/v1/audit/checkpoint", **SIGNED_IN),
    row("api_audit.inclusion", "GET", "/api/v1/audit/proofs/inclusion?index=0&size=1", **SIGNED_IN),
    row("api_audit.consistency", "GET", "/api/v1/audit/proofs/consistency?from=1&to=2", **SIGNED_IN),
    # -- applications and approvals (第十五条) ---------------------------------------------------
    row("api_workflow.post_application", "POST", "/api/v1/applications", APPLY,
        researcher="ok ok", owner="403 403", regulator="403 403", admin="403 403", anonymous="401 401"),
    row("api_workflow.list_applications", "GET", "/api/v1/applications", **LIST),
    row("api_workflow.get_application", "GET", "/api/v1/applications/{app_decided}", **READ_OWN),
    row("api_workflow.post_decision", "POST", "/api/v1/applications/{app_pending}/decision", APPROVE,
        researcher="403 403", owner="ok 404", regulator="403 403", admin="403 403", anonymous="401 401"),
    row("api_workflow.list_approvals", "GET", "/api/v1/approvals", **LIST),
    row("api_workflow.get_approval", "GET", "/api/v1/approvals/{approval}", **READ_OWN),
    # issue 14: more budget or an extension is a new application by the approval's researcher
    row("api_workflow.post_approval_request", "POST", "/api/v1/approvals/{approval}/requests",
        {"kind": "budget", "reason": "matrix"}, researcher="ok 404", owner="404 404", regulator="404 404",
        admin="403 403", anonymous="401 401"),
    # 第六条: the owner classifies its dataset; a regulator may re-grade
    row("api_workflow.put_classification", "PUT", "/api/v1/datasets/{dataset}/classification",
        {"category": "matrix", "grade": "general", "basis": "matrix"},
        researcher="403 403", owner="ok 403", regulator="ok ok", admin="403 403", anonymous="401 401"),
    # issue 14: attachments and evidence, for the parties only; the world holds none: a missing one
    row("api_workflow.get_attachment", "GET", "/api/v1/attachments/1", everyone="404 404", anonymous="401 401"),
    # -- objections (第十七条) ---------------------------------------------------------------------
    row("api_workflow.post_objection", "POST", "/api/v1/objections",
        {"target_type": "application", "target_id": "{app_decided}", "text": "matrix objection"},
        researcher="ok 404", owner="ok 404", regulator="403 403", admin="403 403", anonymous="401 401"),
    row("api_workflow.list_objections", "GET", "/api/v1/objections", **LIST),
    row("api_workflow.get_objection", "GET", "/api/v1/objections/{objection}", **READ_OWN),
    row("api_workflow.answer_objection", "POST", "/api/v1/objections/{objection}/answer",
        {"answer": "matrix answer"}, **REGULATOR_ONLY),
    # -- datasets: risk reports and tiers (第十、十一、十二条) ----------------------------------------
    row("api_workflow.get_risk", "GET", "/api/v1/datasets/{dataset}/risk", **DATASET_ADMIN),
    # issue 13: exact figures of the data, so the owner and the regulator only (PRIVACY)
    row("api_workflow.get_bounding_report", "GET", "/api/v1/datasets/{dataset}/bounding-report",
        **DATASET_ADMIN),
    # the versions are already published: past authorization, refused by state
    row("api_workflow.post_risk_ack", "POST", "/api/v1/datasets/{dataset}/risk/ack", {"note": "read it"},
        researcher="403 403", owner="409 403", regulator="403 403", admin="403 403", anonymous="401 401"),
    # -- publication and tier reviews (issue 14; 第十、十二条): the regulator co-signs; the
    # reviews here are already approved, so past authorization a decision is refused by state
    row("api_workflow.list_reviews", "GET", "/api/v1/reviews", **OWNERS_AND_REGULATORS),
    row("api_workflow.get_review", "GET", "/api/v1/reviews/{review}", **OWNER_OR_REGULATOR),
    row("api_workflow.post_review_decision", "POST", "/api/v1/reviews/{review}/decision",
        {"decision": "approve", "reason": "matrix"}, everyone="403 403", regulator="409 409", anonymous="401 401"),
    row("api_workflow.post_review_answer", "POST", "/api/v1/reviews/{review}/answer",
        {"accept": False, "reasons": "matrix"}, everyone="403 403", owner="409 404", anonymous="401 401"),
    row("api_workflow.post_expert_review", "POST", "/api/v1/reviews/{review}/expert-review",
        {"experts": "matrix", "opinion": "matrix", "outcome": "no_change"}, everyone="403 403",
        regulator="409 409", anonymous="401 401"),
    # 第十条: the city bureau settles a dispute; the review here is approved, so refused by state
    row("api_workflow.post_city_decision", "POST", "/api/v1/reviews/{review}/city-decision",
        {"outcome": "no_change", "reason": "matrix"}, everyone="403 403",
        regulator="409 409", anonymous="401 401"),
    # -- the collusion cap (issue 12): public figures; only the dataset's owner sets it ----------
    row("api_workflow.get_budget_cap", "GET", "/api/v1/datasets/{dataset}/budget-cap", **PUBLIC),
    row("api_workflow.put_budget_cap", "PUT", "/api/v1/datasets/{dataset}/budget-cap",
        {"epsilon_total": 50, "delta_total": 1e-5, "reason": "matrix"},
        researcher="403 403", owner="ok 403", regulator="403 403", admin="403 403", anonymous="401 401"),
    row("api_workflow.post_tier", "POST", "/api/v1/datasets/{dataset}/tier",
        {"tier": "unconditional", "basis": "matrix: reassessed (第十条)"}, **DATASET_ADMIN),
    # -- alerts (第二十二、二十三条): owners (their approvals' alerts) and regulators (all) -------------
    row("api_workflow.list_alerts", "GET", "/api/v1/alerts", **OWNERS_AND_REGULATORS),
    row("api_workflow.list_alerts", "GET", "/api/v1/alerts?kind=budget&approval_id={approval}",
        **OWNERS_AND_REGULATORS),
    # -- suspensions (第二十二条); after the queries they would block -------------------------------
    row("api_workflow.list_suspensions", "GET", "/api/v1/suspensions", **LIST),
    row("api_workflow.post_suspension", "POST", "/api/v1/suspensions",
        {"approval_id": "{approval}", "reason": "matrix"}, **OWNER_OR_REGULATOR),
    row("api_workflow.post_suspension", "POST", "/api/v1/suspensions",
        {"user": "{researcher}", "reason": "matrix"}, **OWNER_OR_REGULATOR),
    row("api_workflow.lift_suspension", "POST", "/api/v1/suspensions/{suspension}/lift",
        {"reason": "matrix"}, **OWNER_OR_REGULATOR),
    # -- termination (第二十六条), after the suspensions; rectification (第二十五条); time limits -----
    row("api_workflow.post_termination", "POST", "/api/v1/terminations",
        {"approval_id": "{approval}", "reason": "matrix"}, **OWNER_OR_REGULATOR),
    row("api_workflow.list_terminations", "GET", "/api/v1/terminations", **LIST),
    # no objection against the termination: past authorization, a bad request
    row("api_workflow.reverse_termination", "POST", "/api/v1/terminations/1/reverse",
        {"reason": "matrix", "objection_id": "{objection}"}, everyone="403 403", regulator="400 400",
        anonymous="401 401"),
    row("api_workflow.post_rectification", "POST", "/api/v1/rectifications",
        {"owner": "{owner}", "what": "matrix"}, **REGULATOR_ONLY),
    row("api_workflow.list_rectifications", "GET", "/api/v1/rectifications", **OWNERS_AND_REGULATORS),
    row("api_workflow.get_rectification", "GET", "/api/v1/rectifications/{rectification}", **OWNER_OR_REGULATOR),
    row("api_workflow.post_rectification_response", "POST", "/api/v1/rectifications/{rectification}/response",
        {"response": "matrix"}, everyone="403 403", owner="ok 404", anonymous="401 401"),
    # the regulator's world has no response yet: refused by state
    row("api_workflow.post_rectification_close", "POST", "/api/v1/rectifications/{rectification}/close",
        {"note": "matrix"}, everyone="403 403", regulator="409 409", anonymous="401 401"),
    row("api_workflow.list_overdue", "GET", "/api/v1/overdue", **OWNERS_AND_REGULATORS),
    row("api_workflow.list_settings", "GET", "/api/v1/settings", everyone="403 403", regulator="ok ok",
        admin="ok ok", anonymous="401 401"),
    row("api_workflow.put_setting", "PUT", "/api/v1/settings/time_limits.application_days", {"value": 20},
        everyone="403 403", admin="ok ok", anonymous="401 401"),
    # -- organisations and jurisdictions (第五、二十八条): admins manage, everyone signed in reads ---
    row("api_workflow.post_organisation", "POST", "/api/v1/organisations",
        {"name": "{fresh}", "kind": "bureau"}, everyone="403 403", admin="ok ok", anonymous="401 401"),
    row("api_workflow.list_organisations", "GET", "/api/v1/organisations", **SIGNED_IN),
    row("api_workflow.put_user_organisation", "PUT", "/api/v1/users/researcher2/organisation",
        {"organisation": "no such organisation"}, everyone="403 403", admin="400 400", anonymous="401 401"),
    # -- researcher self-service: a dummy run before any approval, one's own API tokens (issue 14)
    row("api_workflow.post_public_dummy", "POST", "/api/v1/queries/dummy-public",
        {"datasets": ["{dataset}"], "sql": "SELECT COUNT(*) FROM {dataset}"}, **SIGNED_IN),
    row("api_workflow.list_tokens", "GET", "/api/v1/tokens", **SIGNED_IN),
    row("api_workflow.post_token", "POST", "/api/v1/tokens", {"name": "matrix"}, **SIGNED_IN),
    row("api_workflow.revoke_token", "POST", "/api/v1/tokens/999999/revoke", everyone="404 404",
        anonymous="401 401"),
    # -- opening plans (第十三条): public, comments without login; legal basis (第二十条) ------------
    row("api_workflow.list_opening_plans", "GET", "/api/v1/opening-plans", **PUBLIC),
    row("api_workflow.post_opening_plan", "POST", "/api/v1/opening-plans",
        {"year": 2026, "items": [{"dataset": "x", "title": "x", "tier": "conditional", "planned": "2026-12-31"}]},
        everyone="403 403", owner="ok ok", anonymous="401 401"),
    row("api_workflow.post_opening_plan_comment", "POST", "/api/v1/opening-plans/999999/comments",
        {"text": "matrix"}, everyone="404 404"),
    row("api_workflow.list_opening_plan_comments", "GET", "/api/v1/opening-plans/999999/comments",
        everyone="403 403", owner="404 404", regulator="404 404", anonymous="401 401"),
    row("api_workflow.put_legal_basis", "PUT", "/api/v1/datasets/{dataset}/legal-basis",
        {"legal_basis": "matrix"}, researcher="403 403", owner="ok 403", regulator="403 403", admin="403 403",
        anonymous="401 401"),
    # -- objections from the public, without login (第十七条) ------------------------------------
    row("api_workflow.post_public_objection", "POST", "/api/v1/public-objections",
        {"target_type": "dataset", "target": "{dataset}", "text": "matrix"}, **PUBLIC),
    row("api_workflow.track_public_objection", "GET", "/api/v1/public-objections/PO-NONE", everyone="404 404"),
    row("api_workflow.list_public_objections", "GET", "/api/v1/public-objections", **OWNERS_AND_REGULATORS),
    row("api_workflow.answer_public_objection", "POST", "/api/v1/public-objections/999999/answer",
        {"answer": "matrix"}, everyone="403 403", owner="404 404", regulator="404 404", anonymous="401 401"),
    row("api_workflow.handle_alert", "POST", "/api/v1/alerts/999999/handle", {"action": "acknowledge"},
        everyone="403 403", owner="404 404", regulator="404 404", anonymous="401 401"),
    # -- accounts (admin; everyone may replace their own token) -------------------------------
    row("api_workflow.post_user", "POST", "/api/v1/users",
        {"username": "{fresh}", "role": "researcher", "password": "matrix-password"},
        everyone="403 403", admin="ok ok", anonymous="401 401"),
    row("api_workflow.rotate_token", "POST", "/api/v1/users/{account}/tokens/rotate",
        researcher="ok 404", owner="ok 404", regulator="ok 404", admin="ok ok", anonymous="401 401"),
]

CODES = {"401": "unauthorized", "403": "forbidden", "404": "not_found", "409": "conflict"}
_fresh = itertools.count(1)


def fill(value: Any, side: Side, caller: str | None) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, side, caller) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, side, caller) for v in value]
    if not isinstance(value, str):
        return value
    mine = side.researcher == "researcher"
    slots = {
        "dataset": side.dataset, "researcher": side.researcher, "app_pending": side.app_pending,
        "app_decided": side.app_decided, "approval": side.approval, "suspension": side.suspension,
        "objection": side.objection, "review": side.review, "rectification": side.rectification,
        "owner": side.owner, "fresh": f"matrix{next(_fresh)}",
        "account": (caller or "nobody") if mine else "researcher2",
    }
    if value.startswith("{") and value.endswith("}") and value[1:-1] in slots:
        return slots[value[1:-1]]  # keeps ints as ints in bodies
    return value.format(**slots)


def outcome(resp) -> str:
    if 200 <= resp.status_code < 300:
        return "ok"
    return str(resp.status_code)


def console_path(client, r: Row, side: Side) -> str:
    """A URL for a console endpoint, its arguments taken from the side's objects."""
    values = {"name": side.dataset, "application_id": side.app_decided, "suspension_id": side.suspension,
              "objection_id": side.objection, "review_id": side.review, "query_id": "q_0",
              "order_id": side.rectification, "termination_id": 1, "alert_id": 1,
              "approval_id": side.approval, "token_id": 1, "plan_id": 1, "token": "t", "filename": "sandbox.css",
              "ident": 1, "attachment_id": 1}
    rule = next(x for x in client.application.url_map.iter_rules(r.endpoint) if r.method in x.methods)
    adapter = client.application.url_map.bind("localhost")
    return adapter.build(r.endpoint, {a: values[a] for a in rule.arguments}, method=r.method)


def run_cell(client, world: World, role: str, r: Row, side_name: str) -> str | None:
    caller = CALLER[role]
    side = world.own if side_name == "own" else world.other
    path = fill(r.path, side, caller) if r.path else console_path(client, r, side)
    kwargs: dict[str, Any] = {"headers": bearer(world.token(caller))}
    if r.body is not None:
        kwargs["json"] = fill(r.body, side, caller)
    with client.open(path, method=r.method, **kwargs) as resp:
        resp.get_data()
    want = r.expect[role][0 if side_name == "own" else 1]
    got = outcome(resp)
    if want == "anon":
        with client.open(path, method=r.method, json=kwargs.get("json")) as anonymous:
            anonymous.get_data()
        want = outcome(anonymous) if anonymous.status_code < 500 else "a page without server error"
    if got != want:
        return f"{r.method} {path} as {role} ({side_name}): want {want}, got {got} {resp.data[:200]!r}"
    if want in CODES and path.startswith("/api/"):
        err = resp.get_json()["error"]
        if err["code"] != CODES[want] or not err["message"]:
            return f"{r.method} {path} as {role} ({side_name}): error body {err}"
    if r.endpoint == "api_workflow.rotate_token" and got == "ok":
        world.tokens[resp.get_json()["username"]] = resp.get_json()["token"]
    return None


@pytest.mark.parametrize("role", ROLES)
def test_authorization_matrix(world, role):
    client = create_app(world.sb, {"TESTING": True}).test_client()
    failures = [f for r in TABLE for side in ("own", "other") if (f := run_cell(client, world, role, r, side))]
    assert not failures, "\n".join(failures)


def test_every_endpoint_is_in_the_table(world):
    app = create_app(world.sb, {"TESTING": True})
    routes = {(rule.endpoint, m) for rule in app.url_map.iter_rules() for m in rule.methods - {"HEAD", "OPTIONS"}}
    table = {(r.endpoint, r.method) for r in TABLE}
    assert routes - table == set(), f"endpoints missing from the authorization table: {sorted(routes - table)}"
    assert table - routes == set(), f"rows for endpoints that do not exist: {sorted(table - routes)}"


HIDDEN = [  # (path, body) naming another user's object; the same with a missing id must read alike
    ("GET", "/api/v1/applications/{app_decided}", None),
    ("POST", "/api/v1/applications/{app_pending}/decision", APPROVE),
    ("GET", "/api/v1/approvals/{approval}", None),
    ("GET", "/api/v1/objections/{objection}", None),
    ("POST", "/api/v1/suspensions", {"approval_id": "{approval}", "reason": "x"}),
    ("POST", "/api/v1/suspensions/{suspension}/lift", {"reason": "x"}),
    ("POST", "/api/v1/objections", {"target_type": "application", "target_id": "{app_decided}", "text": "x"}),
    ("POST", "/api/v1/objections", {"target_type": "approval", "target_id": "{approval}", "text": "x"}),
]


def test_another_users_object_reads_like_a_missing_one(world):
    """SECURITY: status, code and message are those of an id that does not exist."""
    client = create_app(world.sb, {"TESTING": True}).test_client()
    missing = Side("x", "x", "x", *(10**6,) * 6)
    for (method, path, body), caller in itertools.product(HIDDEN, ("researcher", "owner")):
        answers = []
        for side in (world.other, missing):
            url = fill(path, side, caller)
            resp = client.open(url, method=method, json=fill(body, side, caller) if body else None,
                               headers=bearer(world.token(caller)))
            text = resp.get_json()["error"]["message"]
            for slot in ("approval", "app_decided", "app_pending", "objection", "suspension"):
                text = text.replace(str(getattr(side, slot)), "<id>")
            answers.append((resp.status_code, resp.get_json()["error"]["code"], text))
        assert answers[0] == answers[1], (method, path, caller, answers)
        assert answers[0][0] in (403, 404)
