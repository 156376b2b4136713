"""Schemathesis against the served OpenAPI document (issue 8): generated requests for every
operation, a bounded number of examples each; no 5xx, and every response matches the
document (status code declared, body valid against its schema)."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)

from sandbox.web import create_app  # noqa: E402

MAX_EXAMPLES = 15


def _authorised(case, token: str):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    return case


def test_generated_requests_get_documented_answers(demo):
    sb, creds = demo
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/openapi.json", create_app(sb, {"TESTING": True})
    )
    token = creds["researcher"]["token"]
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:

        @given(operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case):
            response = _authorised(case, token).call()
            case.validate_response(
                response,
                checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
            )

        check()


def test_generated_queries_on_a_real_approval_charge_only_releases(demo):
    """The query operations again with the caller's real approval id, so generated SQL,
    ε and confidence reach the guard and the privacy layer: no 5xx, documented answers, and
    the budget moves only by what 200 answers report as spent."""
    sb, creds = demo
    app = create_app(sb, {"TESTING": True})
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    token, approval = creds["researcher"]["token"], creds["researcher"]["approval_id"]
    client = app.test_client()

    def spent() -> float:
        r = client.get(
            f"/api/v1/approvals/{approval}/budget", headers={"Authorization": f"Bearer {token}"}
        )
        return float(r.json["epsilon"]["spent"])

    for path in ("/api/v1/queries", "/api/v1/queries/preview", "/api/v1/queries/dummy"):
        _fuzz_with_approval(
            schema[path]["POST"], token, approval, spent, charges=path == "/api/v1/queries"
        )


def _fuzz_with_approval(operation, token: str, approval: int, spent, *, charges: bool) -> None:
    @given(operation.as_strategy())
    @settings(
        max_examples=2 * MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case):
        if isinstance(case.body, dict):
            case.body["approval_id"] = approval
        before = spent()
        response = _authorised(case, token).call()
        case.validate_response(
            response,
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        )
        charged = (
            response.json().get("epsilon_spent", 0.0)
            if charges and response.status_code == 200
            else 0.0
        )
        assert spent() == pytest.approx(before + charged, abs=1e-9)

    check()
