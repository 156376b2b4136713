"""Clean input (issue 12, finding 5 and "Deliver → Clean input"): every number in a query
request has one documented range (``sandbox.store.request_limits``), is checked before use, and
a malformed one is a 400 with a stable code — never a 500, never a hang. SQL text that is
not valid Unicode is refused and logged. Calibration ends in bounded time whatever ε."""

from __future__ import annotations

import json
import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privacy import calibrate
from privacy.errors import PrivacyError
from privacy.mechanisms import scale_for_epsilon, scale_for_rho
from privacy.zcdp import rho_for_epsilon
from sandbox.errors import BadRequest
from sandbox.store import request_limits
from sandbox.web.api.openapi import SCHEMAS
from tests.conftest import bearer
from tests.test_privacy_preview import PLAN

SQL = "SELECT COUNT(*) FROM residents"
AVG_SQL = "SELECT AVG(income) AS a FROM residents"
HUGE = 10**400  # 401 digits: float() raises OverflowError
ENDPOINTS = ["/api/v1/queries", "/api/v1/queries/preview", "/api/v1/queries/dummy"]


@contextmanager
def within(seconds: int):
    """Fail (instead of hanging the suite) if the block takes longer than ``seconds``."""
    def expired(_signum, _frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def send(client, creds, path, raw: str):
    """POST a raw JSON text (so that 1e-300, 5e-324, huge integers and \\ud800 escapes
    reach the server exactly as an attacker writes them)."""
    return client.post(path, data=raw.encode(), headers={
        **bearer(creds["researcher"]["token"]), "Content-Type": "application/json"})


def body(creds, sql=SQL, **fields) -> str:
    extra = "".join(f', "{k}": {v}' for k, v in fields.items())
    return f'{{"approval_id": {creds["researcher"]["approval_id"]}, "sql": {sql}{extra}}}'


def refused(demo) -> int:
    sb, _ = demo
    return sb.conn().execute(
        "SELECT COUNT(*) FROM audit_entries WHERE json_extract(entry, '$.action') = 'query.refused'"
    ).fetchone()[0]


# -- the module: ranges and codes ----------------------------------------------------------
@pytest.mark.parametrize("value", [1e-300, 5e-324, 0, -1, 0.0009, HUGE, -HUGE, float("nan"),
                                   float("inf"), True, False, "0.5", [0.5], {"v": 1}, 1.5, 2])
def test_epsilon_outside_its_range_is_bad_epsilon(value):
    with pytest.raises(BadRequest) as err:
        request_limits.epsilon(value, 1.0)
    assert err.value.code == "bad_epsilon" and "0.001" in err.value.message


@pytest.mark.parametrize("value,cap,expected", [(None, 4.0, 1.0), (None, 0.25, 0.25), (0.001, 1, 0.001),
                                                (1, 1.0, 1.0), (0.5, 1.0, 0.5)])
def test_epsilon_in_range_is_a_float(value, cap, expected):
    got = request_limits.epsilon(value, cap)
    assert got == expected and type(got) is float


def test_epsilon_default_below_the_floor_is_refused():
    with pytest.raises(BadRequest) as err:
        request_limits.epsilon(None, 1e-4)
    assert err.value.code == "bad_epsilon"


@pytest.mark.parametrize("value", [0.49, 1, 0.9991, 2, -1, HUGE, float("nan"), None, True, "0.95", [0.9]])
def test_confidence_outside_its_range_is_bad_confidence(value):
    with pytest.raises(BadRequest) as err:
        request_limits.confidence(value)
    assert err.value.code == "bad_confidence" and "0.999" in err.value.message


@pytest.mark.parametrize("value", [0, -1, 10**9 + 1, HUGE, 1.5, float("inf"), float("nan"), True, "3", [3]])
def test_expected_rows_outside_its_range_is_bad_expected_rows(value):
    with pytest.raises(BadRequest) as err:
        request_limits.expected_rows(value)
    assert err.value.code == "bad_expected_rows"


def test_expected_rows_in_range():
    assert request_limits.expected_rows(None) is None
    assert request_limits.expected_rows(1) == 1 and request_limits.expected_rows(3000.0) == 3000
    assert request_limits.expected_rows(10**9) == 10**9


@pytest.mark.parametrize("value", [0, -1, HUGE, 1e16, float("nan"), True, "3", None])
def test_half_width_outside_its_range_is_bad_accuracy(value):
    with pytest.raises(BadRequest) as err:
        request_limits.half_width(value)
    assert err.value.code == "bad_accuracy"


@pytest.mark.parametrize("value,code", [
    (None, "missing_sql"), (42, "missing_sql"), ("", "missing_sql"), ("  \n", "missing_sql"),
    (["SELECT 1"], "missing_sql"), ("SELECT 1 -- \ud800", "invalid_sql_text"),
    ("\udfff", "invalid_sql_text"), ("x" * (request_limits.SQL_MAX_CHARS + 1), "invalid_sql_text"),
])
def test_sql_text_refusals(value, code):
    with pytest.raises(BadRequest) as err:
        request_limits.sql_text(value)
    assert err.value.code == code


def test_sql_text_accepts_any_unicode_scalar_values():
    sql = "SELECT COUNT(*) FROM residents -- 你好 😀 \u0000 \uffff"
    assert request_limits.sql_text(sql) is sql
    assert request_limits.sql_text("x" * request_limits.SQL_MAX_CHARS)


def test_printable_makes_any_text_storable():
    assert request_limits.printable("SELECT 1 -- \ud800") == "SELECT 1 -- \\ud800"
    assert request_limits.printable("你好") == "你好"
    assert request_limits.printable(None) == ""
    for value in ["\ud800\udfff\udc00", 42, ["a"], "x" * 10**6]:
        request_limits.printable(value).encode("utf-8")  # never raises


# -- calibration ends, whatever ε ------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [1e-300, 5e-324, 1e-160, 1e-20, 1e-7, 1e300])
@pytest.mark.parametrize("delta", [0.0, 1e-7])
@pytest.mark.parametrize("family", ["auto", "laplace", "gaussian"])
def test_calibrate_returns_or_raises_within_a_second(epsilon, delta, family):
    """ε = 1e-300 looped forever in rho_for_epsilon (the root of ε = ρ + 2√(ρ ln 1/δ)
    cancelled to 0, and 0 was doubled forever): now every search is bounded."""
    start = time.monotonic()
    with within(5):
        try:
            calibrate(PLAN, epsilon, delta, family=family)
        except PrivacyError:
            pass
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("epsilon", [1e-300, 5e-324, 1e-20, 1e300])
def test_each_calibration_search_is_bounded(epsilon):
    start = time.monotonic()
    with within(5):
        for search in (lambda: rho_for_epsilon(epsilon, 1e-7), lambda: scale_for_epsilon(1, epsilon),
                       lambda: scale_for_rho(1.0, epsilon)):
            try:
                assert search() > 0
            except PrivacyError:
                pass
    assert time.monotonic() - start < 1.0


def test_tiny_epsilon_the_gaussian_cannot_serve_is_a_clear_error():
    with pytest.raises(PrivacyError) as err:
        rho_for_epsilon(1e-300, 1e-7)
    assert err.value.code == "bad_epsilon"


# -- the API: 400 with the code, never 500, never a hang (issue 12, finding 5) ----------------
NUMBER_CASES = [
    ("epsilon", "1e-300", "bad_epsilon"),
    ("epsilon", "5e-324", "bad_epsilon"),
    ("epsilon", "1" + "0" * 400, "bad_epsilon"),
    ("epsilon", "-" + "9" * 401, "bad_epsilon"),
    ("epsilon", "1e999", "bad_epsilon"),
    ("confidence", "1" + "0" * 400, "bad_confidence"),
    ("confidence", "0.9999", "bad_confidence"),
    ("confidence", "null", "bad_confidence"),
]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("field,literal,code", NUMBER_CASES)
def test_malformed_numbers_are_400_with_their_code(client, creds, path, field, literal, code):
    with within(10):
        r = send(client, creds, path, body(creds, json.dumps(SQL), **{field: literal}))
    assert r.status_code == 400, r.json
    assert r.json["error"]["code"] == code


@pytest.mark.parametrize("literal", ["1" + "0" * 400, "0", "-3", "1.5", "1e999", "true", '"12"',
                                     str(10**9 + 1)])
def test_preview_expected_rows_out_of_range_is_400(client, creds, literal):
    r = send(client, creds, "/api/v1/queries/preview",
             body(creds, json.dumps(AVG_SQL), expected_rows=literal))
    assert r.status_code == 400, r.json
    assert r.json["error"]["code"] == "bad_expected_rows"


@pytest.mark.parametrize("accuracy,code", [
    ('{"column": "a", "half_width": ' + "1" * 401 + "}", "bad_accuracy"),
    ('{"column": "a", "half_width": 0}', "bad_accuracy"),
    ('{"column": "a", "half_width": 5, "confidence": ' + "1" * 401 + "}", "bad_confidence"),
    ('{"column": "a", "half_width": 5, "confidence": 1}', "bad_confidence"),
])
def test_preview_accuracy_target_numbers_are_checked(client, creds, accuracy, code):
    r = send(client, creds, "/api/v1/queries/preview",
             body(creds, json.dumps(AVG_SQL), accuracy=accuracy, expected_rows="3000"))
    assert r.status_code == 400, r.json
    assert r.json["error"]["code"] == code


def test_smallest_epsilon_is_served(client, creds):
    r = send(client, creds, "/api/v1/queries", body(creds, json.dumps(SQL), epsilon="0.001"))
    assert r.status_code == 200, r.json
    assert 0 < r.json["epsilon_spent"] <= 0.001


def test_loose_accuracy_target_previews_the_smallest_epsilon(client, creds):
    r = send(client, creds, "/api/v1/queries/preview",
             body(creds, json.dumps(SQL), accuracy='{"column": "COUNT(*)", "half_width": 1e12}'))
    assert r.status_code == 200, r.json
    assert r.json["epsilon"] == request_limits.EPSILON_MIN
    assert any("at least" in note for note in r.json["notes"])


# -- SQL that is not valid Unicode: 400, and logged like any refusal (finding 4) --------------
SURROGATE_SQL = [
    '"SELECT COUNT(*) FROM residents -- \\ud800"',
    '"SELECT COUNT(*) FROM resid\\ud800ents"',
    "\"SELECT '\\udfff' AS x, COUNT(*) FROM residents\"",
    '"\\ud800"',
]


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("sql", SURROGATE_SQL)
def test_lone_surrogate_is_refused_and_logged(client, creds, demo, path, sql):
    before = refused(demo)
    r = send(client, creds, path, body(creds, sql))
    assert r.status_code == 400, r.json
    assert r.json["error"]["code"] == "invalid_sql_text"
    assert refused(demo) == before + 1
    sb, _ = demo
    stored = sb.conn().execute("SELECT sql FROM queries ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    assert "\\ud" in stored or "\\ud" in stored.lower()


@pytest.mark.parametrize("path", ENDPOINTS)
def test_over_long_sql_is_refused(client, creds, path):
    sql = json.dumps(SQL + " --" + "x" * request_limits.SQL_MAX_CHARS)
    r = send(client, creds, path, body(creds, sql))
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_sql_text"


def test_console_query_form_refuses_tiny_epsilon_quickly(client, creds):
    from tests.test_console import login, post

    assert login(client, creds["researcher"]["username"], creds["researcher"]["password"]).status_code == 302
    for epsilon in ["1e-300", "5e-324", "1" * 401, "nan"]:
        with within(10):
            r = post(client, "/query", {"approval_id": str(creds["researcher"]["approval_id"]),
                                        "sql": SQL, "epsilon": epsilon, "confidence": "0.95"})
        assert r.status_code == 400, epsilon


# -- any JSON value for a number: never a 5xx ---------------------------------------------------
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**420)
    | st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=0, max_value=1e-3)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)


def test_any_json_value_for_a_number_never_gives_5xx(client, creds):
    approval = creds["researcher"]["approval_id"]

    @given(path=st.sampled_from(ENDPOINTS), field=st.sampled_from(["epsilon", "confidence", "expected_rows"]),
           value=JSON_VALUES)
    @settings(max_examples=120, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(path, field, value):
        sql = AVG_SQL if field == "expected_rows" else SQL
        raw = json.dumps({"approval_id": approval, "sql": sql, field: value})  # NaN, Infinity too
        with within(10):
            r = send(client, creds, path, raw)
        assert r.status_code < 500, (path, field, value, r.json)
        if r.status_code >= 400:
            assert set(r.json["error"]) >= {"code", "message"}

    check()


# -- one definition: the docs and the OpenAPI schemas state the same ranges ----------------------
def test_docs_list_every_range():
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    section = text[text.index("## Input ranges"):]
    section = section[:section.find("\n## ", 5)] if "\n## " in section[5:] else section
    for needle in ["epsilon", "confidence", "expected_rows", "half_width", "sql",
                   f"{request_limits.EPSILON_MIN:g}", f"{request_limits.CONFIDENCE_MAX:g}",
                   "invalid_sql_text", "bad_epsilon", "bad_confidence", "bad_expected_rows"]:
        assert needle in section, needle
    assert re.search(r"10\^?9|1 ?000 ?000 ?000|10⁹", section)
    assert re.search(r"100[ ,_]?000", section)


def test_openapi_schemas_state_the_ranges():
    query = SCHEMAS["QueryRequest"]["properties"]
    assert query["epsilon"]["minimum"] == request_limits.EPSILON_MIN
    assert query["epsilon"]["maximum"] == request_limits.EPSILON_MAX
    assert query["confidence"]["minimum"] == request_limits.CONFIDENCE_MIN
    assert query["confidence"]["maximum"] == request_limits.CONFIDENCE_MAX
    assert query["sql"]["maxLength"] == request_limits.SQL_MAX_CHARS
    preview = SCHEMAS["PreviewRequest"]["properties"]
    assert preview["expected_rows"]["minimum"] == request_limits.EXPECTED_ROWS_MIN
    assert preview["expected_rows"]["maximum"] == request_limits.EXPECTED_ROWS_MAX
