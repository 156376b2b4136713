"""Attack suite through the JSON API (issue 8 "Must show"): each attack is refused or
harmless, the server stays alive, and nothing is charged unless something was released.

Every test ends with ``alive_and_unchanged`` (or an explicit charge check): ``GET /healthz``
answers 200, and the budget and the number of ``query.released`` entries are exactly as
before whenever nothing was released.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

import pyarrow.compute as pc
import pytest

from sandbox.governance import datasets
from tests.conftest import bearer

SQL = "SELECT COUNT(*) FROM residents"


# -- helpers ------------------------------------------------------------------------------------
def state(client, creds, demo):
    sb, _ = demo
    r = client.get(
        f"/api/v1/approvals/{creds['researcher']['approval_id']}/budget",
        headers=bearer(creds["researcher"]["token"]),
    )
    assert r.status_code == 200
    released = (
        sb.conn()
        .execute(
            "SELECT COUNT(*) FROM audit_entries WHERE json_extract(entry, '$.action') = 'query.released'"
        )
        .fetchone()[0]
    )
    ledger_rows = sb.conn().execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    return r.json["epsilon"]["spent"], r.json["delta"]["spent"], released, ledger_rows


@contextmanager
def nothing_released(client, creds, demo):
    """SECURITY: whatever happens inside, no release, no charge, and the server is alive."""
    before = state(client, creds, demo)
    yield
    assert client.get("/healthz").status_code == 200
    assert state(client, creds, demo) == before


def post(client, creds, body=None, *, data=None, path="/api/v1/queries", token=None):
    headers = bearer(token or creds["researcher"]["token"])
    if data is not None:
        return client.post(path, data=data, headers={**headers, "Content-Type": "application/json"})
    return client.post(path, json=body, headers=headers)


def assert_error(r, *statuses):
    assert r.status_code in statuses, (r.status_code, r.data[:300])
    err = r.json["error"]
    assert isinstance(err["code"], str) and err["code"] and isinstance(err["message"], str)
    # SECURITY: no stack trace and no raw engine error text reaches the caller
    for marker in (
        "Traceback",
        "Binder Error",
        "Catalog Error",
        "Parser Error",
        "IO Error",
        "sqlite3.",
    ):
        assert marker not in err["message"], err["message"]


# -- injection through every JSON field of POST /api/v1/queries ---------------------------------------
INJECTED_APPROVAL_IDS = [
    "1 OR 1=1",
    "1; DROP TABLE ledger; --",
    "1' OR '1'='1",
    "0x1",
    "1e0 UNION SELECT 1",
    [1],
    {"$ne": None},
    None,
    -1,
    2**70,
    "",
    "../1",
]


@pytest.mark.parametrize("approval_id", INJECTED_APPROVAL_IDS, ids=repr)
def test_sql_injection_through_approval_id_is_refused(client, creds, demo, approval_id):
    with nothing_released(client, creds, demo):
        r = post(client, creds, {"approval_id": approval_id, "sql": SQL})
        assert_error(r, 400, 404)
    sb, _ = demo
    assert (
        sb.conn().execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'ledger'").fetchone()[0]
        == 1
    )


@pytest.mark.parametrize("approval_id", ["1 OR 1=1", "1;DROP TABLE ledger", "%27%20OR%201=1"])
def test_sql_injection_through_the_budget_path_is_refused(client, creds, demo, approval_id):
    with nothing_released(client, creds, demo):
        r = client.get(
            f"/api/v1/approvals/{approval_id}/budget", headers=bearer(creds["researcher"]["token"])
        )
        assert_error(r, 400, 404)


def test_another_users_approval_is_unreachable_whatever_the_spelling(client, creds, demo):
    approval = creds["researcher"]["approval_id"]
    with nothing_released(client, creds, demo):
        for spelling in (approval, str(approval), f" {approval} ", float(approval)):
            assert_error(
                post(
                    client,
                    creds,
                    {"approval_id": spelling, "sql": SQL},
                    token=creds["owner"]["token"],
                ),
                403,
                404,
            )


@pytest.mark.parametrize("approval_id", [1.5, True, "١"])
def test_approval_id_must_be_an_exact_integer(client, creds, demo, approval_id):
    with nothing_released(client, creds, demo):
        assert_error(post(client, creds, {"approval_id": approval_id, "sql": SQL}), 400, 404)


BAD_EPSILONS = ["0.5", "1 OR 1=1", {"$gt": 0}, [0.5], True, False, 1e308, -1, 0, -0.0, 2**64, "NaN"]


@pytest.mark.parametrize("epsilon", BAD_EPSILONS, ids=repr)
def test_bad_epsilon_is_refused(client, creds, demo, epsilon):
    with nothing_released(client, creds, demo):
        r = post(
            client,
            creds,
            {"approval_id": creds["researcher"]["approval_id"], "sql": SQL, "epsilon": epsilon},
        )
        assert_error(r, 400)
        assert r.json["error"]["code"] == "bad_epsilon"


@pytest.mark.parametrize("field", ["epsilon", "confidence"])
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client, creds, demo, field, literal):
    """Python's JSON parser accepts NaN/Infinity (not JSON): they must still be refused."""
    raw = f'{{"approval_id": {creds["researcher"]["approval_id"]}, "sql": "{SQL}", "{field}": {literal}}}'
    with nothing_released(client, creds, demo):
        assert_error(post(client, creds, data=raw.encode()), 400)


@pytest.mark.parametrize(
    "confidence", [0, 1, 0.49, 2, -1, "0.95", None, True, [0.9], {"v": 0.9}, 1e308]
)
def test_bad_confidence_is_refused(client, creds, demo, confidence):
    with nothing_released(client, creds, demo):
        r = post(
            client,
            creds,
            {
                "approval_id": creds["researcher"]["approval_id"],
                "sql": SQL,
                "confidence": confidence,
            },
        )
        assert_error(r, 400)


INJECTED_SQL = [
    "SELECT COUNT(*) FROM residents; DROP TABLE residents",
    "SELECT COUNT(*) FROM residents; SELECT name FROM residents",
    "SELECT COUNT(*) FROM residents\x00; DROP TABLE x",
    "SELECT COUNT(*) FROM residents WHERE 1=1 UNION SELECT COUNT(*) FROM residents WHERE name = 'x'",
    "SELECT COUNT(*) FROM read_csv('/etc/passwd')",
    "SELECT COUNT(*) FROM 'data/residents-v1.parquet.enc'",
    'SELECT COUNT(*) FROM "residents"',
    "SELECT COUNT(*) FROM read_parquet('../sandbox.db')",
    "ATTACH 'sandbox.db' AS s",
    "PRAGMA database_list",
    "COPY residents TO '/tmp/out.csv'",
    "INSTALL httpfs",
    "SET enable_external_access = true",
    "SELECT current_setting('memory_limit')",
    "SELECT COUNT(*) FROM duckdb_tables()",
    "SELECT COUNT(*) FROM sqlite_master",
    "SELECT name FROM residents /* COUNT(*) */",
    "SELECT COUNT(*) FROM residents WHERE name LIKE '张%'",
    "WITH x AS (SELECT * FROM residents) SELECT * FROM x",
    "SELECT * FROM residents",
]


@pytest.mark.parametrize("sql", INJECTED_SQL)
def test_hostile_sql_is_refused_with_a_position(client, creds, demo, sql):
    with nothing_released(client, creds, demo):
        r = post(client, creds, {"approval_id": creds["researcher"]["approval_id"], "sql": sql})
        assert_error(r, 400)


@pytest.mark.parametrize("sql", [42, [SQL], {"text": SQL}, None, "", "   ", True])
def test_sql_of_the_wrong_type_is_refused(client, creds, demo, sql):
    with nothing_released(client, creds, demo):
        assert_error(
            post(client, creds, {"approval_id": creds["researcher"]["approval_id"], "sql": sql}),
            400,
        )


def test_unknown_fields_change_nothing(client, creds, demo):
    """Extra fields (a forged user, role, dataset or a second SQL) are ignored: the release
    is the same cached release as without them, charged once, to the caller's approval."""
    approval = creds["researcher"]["approval_id"]
    first = post(client, creds, {"approval_id": approval, "sql": SQL, "epsilon": 0.2})
    assert first.status_code == 200
    with nothing_released(client, creds, demo):
        r = post(
            client,
            creds,
            {
                "approval_id": approval,
                "sql": SQL,
                "epsilon": 0.2,
                "user": "regulator",
                "role": "regulator",
                "dataset": "residents'; DROP TABLE ledger; --",
                "sql2": "SELECT name FROM residents",
                "dummy": False,
            },
        )
        assert (
            r.status_code == 200
            and r.json["cached"] is True
            and r.json["rows"] == first.json["rows"]
        )


@pytest.mark.parametrize(
    "accuracy",
    [
        "x",
        [],
        {"column": 1},
        {"column": "COUNT(*)"},
        {"column": "COUNT(*)", "half_width": "1 OR 1=1"},
        {"column": "COUNT(*)", "half_width": -1},
        {"column": "'; DROP TABLE ledger; --", "half_width": 1},
    ],
)
def test_preview_fields_are_checked_and_never_charge(client, creds, demo, accuracy):
    with nothing_released(client, creds, demo):
        r = post(
            client,
            creds,
            {"approval_id": creds["researcher"]["approval_id"], "sql": SQL, "accuracy": accuracy},
            path="/api/v1/queries/preview",
        )
        assert_error(r, 400, 404, 409)


@pytest.mark.parametrize(
    "token", ["' OR 1=1 --", "sbx_" + "A" * 5000, "sbx_\u0430bc", "Bearer sbx_x"]
)
def test_hostile_tokens_are_refused(client, creds, demo, token):
    with nothing_released(client, creds, demo):
        assert_error(post(client, creds, {"approval_id": 1, "sql": SQL}, token=token), 401)


# -- oversized and deeply nested input -----------------------------------------------------------------
def test_oversized_body_is_refused_with_the_error_shape(client, creds, demo):
    limit = client.application.config["MAX_CONTENT_LENGTH"]
    body = json.dumps(
        {"approval_id": creds["researcher"]["approval_id"], "sql": "SELECT " + "1+" * limit}
    )
    with nothing_released(client, creds, demo):
        assert_error(post(client, creds, data=body.encode()), 413)


@pytest.mark.parametrize("depth", [50, 500])
def test_moderately_nested_json_is_harmless(client, creds, demo, depth):
    nested = "[" * depth + "]" * depth
    raw = f'{{"approval_id": {creds["researcher"]["approval_id"]}, "sql": "{SQL}", "epsilon": {nested}}}'
    with nothing_released(client, creds, demo):
        assert_error(post(client, creds, data=raw.encode()), 400)


@pytest.mark.parametrize("opener,closer", [("[", "]"), ('{"a":', "}")])
def test_deeply_nested_json_is_a_client_error(client, creds, demo, opener, closer):
    depth = 100_000
    with nothing_released(client, creds, demo):
        r = post(client, creds, data=(opener * depth + "1" + closer * depth).encode())
        assert_error(r, 400)


def test_deeply_nested_json_does_not_kill_the_server(client, creds, demo):
    depth = 100_000
    with nothing_released(client, creds, demo):
        r = post(client, creds, data=("[" * depth + "]" * depth).encode())
        assert_error(r, 400)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) FROM residents WHERE " + " OR ".join(f"age = {i}" for i in range(5000)),
        "SELECT COUNT(*) FROM residents WHERE " + "(" * 3000 + "age > 1" + ")" * 3000,
        "SELECT COUNT(*) FROM " + "(SELECT * FROM " * 200 + "residents" + ") t" * 200,
        "SELECT COUNT(*) FROM residents WHERE age > 1 " + "AND NOT " * 2000 + "age < 0",
        "SELECT " + "+".join(["COUNT(*)"] * 3000) + " FROM residents",
    ],
)
def test_very_long_or_deep_sql_is_refused_cheaply(client, creds, demo, sql):
    with nothing_released(client, creds, demo):
        r = post(client, creds, {"approval_id": creds["researcher"]["approval_id"], "sql": sql})
        assert_error(r, 400)


# -- Unicode look-alikes -------------------------------------------------------------------------------
LOOKALIKES = [
    "SELECT COUNT(*) FROM r\u0435sidents",  # Cyrillic е
    "SELECT COUNT(*) FROM residents WHERE \u0430ge > 1",  # Cyrillic а in age
    "SELECT COUNT(*) FROM \uff52\uff45\uff53\uff49\uff44\uff45\uff4e\uff54\uff53",  # fullwidth
    "SELECT AVG(\uff49ncome) FROM residents",
    "SELECT COUNT(*) FROM resi\u200bdents",  # zero-width space
    "SELECT COUNT(*) FROM resid\u0435nts",
    "SELECT n\u0430me, COUNT(*) FROM residents GROUP BY n\u0430me",  # a look-alike of an identifier column
    "SELECT COUNT(*) FROM residents WHERE name\u200b = 'x'",
    "SELECT COUNT(*) FROM re\u0301sidents",  # combining accent
    "SELECT COUNT(*) FROM residents\u037e SELECT name FROM residents",  # Greek question mark (looks like ;)
]


@pytest.mark.parametrize("sql", LOOKALIKES)
def test_unicode_lookalike_identifiers_are_refused(client, creds, demo, sql):
    with nothing_released(client, creds, demo):
        r = post(client, creds, {"approval_id": creds["researcher"]["approval_id"], "sql": sql})
        assert_error(r, 400)


# -- averaging, differencing, rare keys --------------------------------------------------------------
def test_averaging_by_repetition_gets_the_same_answer_for_free(client, creds, demo):
    approval = creds["researcher"]["approval_id"]
    first = post(client, creds, {"approval_id": approval, "sql": SQL, "epsilon": 0.5})
    assert first.status_code == 200
    with nothing_released(client, creds, demo):
        for sql in [
            SQL,
            SQL.lower(),
            "select  count(*)\nfrom   RESIDENTS",
            SQL + ";",
            SQL + " -- again",
        ]:
            r = post(client, creds, {"approval_id": approval, "sql": sql, "epsilon": 0.5})
            assert r.status_code == 200, r.json
            assert r.json["cached"] is True and r.json["rows"] == first.json["rows"]
            assert r.json["epsilon_spent"] == 0


def test_averaging_with_equivalent_rewrites_pays_for_each(client, creds, demo):
    """Rewrites the cache cannot recognise as equal are new releases: each one is charged,
    so averaging them costs exactly what composition says."""
    approval = creds["researcher"]["approval_id"]
    spent0 = state(client, creds, demo)[0]
    charged = 0.0
    for sql in [
        "SELECT COUNT(*) FROM residents WHERE age >= 0",
        "SELECT COUNT(*) FROM residents WHERE age > -1",
        "SELECT COUNT(*) FROM residents WHERE age < 1000",
    ]:
        r = post(client, creds, {"approval_id": approval, "sql": sql, "epsilon": 0.5})
        assert r.status_code in (200, 400), r.json
        if r.status_code == 200:
            charged += r.json["epsilon_spent"]
            assert r.json["epsilon_spent"] > 0 or r.json["cached"]
    assert state(client, creds, demo)[0] == pytest.approx(spent0 + charged, abs=1e-9)


def _residents(demo):
    sb, _ = demo
    version = next(v for v in datasets.latest_versions(sb.conn()) if v.name == "residents")
    return sb.tables.get(version)


@pytest.mark.statistical
def test_differencing_two_filters_one_person_apart_is_charged_and_noisy(client, creds, demo):
    """Six pairs of counts whose filters differ by exactly one person (a unique income).
    Each query is charged; the exact difference (1) is not revealed by every pair.
    Trials: 6 pairs at ε = 0.3 (discrete Laplace, scale 1/0.3): P(a pair's two noises are
    equal) ≈ 0.076, so P(all six differences exact) ≈ 2e-7."""
    table = _residents(demo)
    incomes = table.column("income").to_pylist()
    ages = table.column("age").to_pylist()
    counts: dict[float, int] = {}
    for v in incomes:
        counts[v] = counts.get(v, 0) + 1
    approval = creds["researcher"]["approval_id"]
    spent0 = state(client, creds, demo)[0]
    charged, exact_differences, pairs = 0.0, 0, 0
    for threshold in range(30, 60, 5):
        person = next(
            i
            for i, (a, v) in enumerate(zip(ages, incomes, strict=True))
            if a > threshold and counts[v] == 1 and v == round(v, 2)
        )
        income = incomes[person]
        a = post(
            client,
            creds,
            {
                "approval_id": approval,
                "epsilon": 0.3,
                "sql": f"SELECT COUNT(*) FROM residents WHERE age > {threshold}",
            },
        )
        b = post(
            client,
            creds,
            {
                "approval_id": approval,
                "epsilon": 0.3,
                "sql": f"SELECT COUNT(*) FROM residents WHERE age > {threshold} AND income <> {income!r}",
            },
        )
        assert a.status_code == 200 and b.status_code == 200, (a.json, b.json)
        assert a.json["epsilon_spent"] > 0 and b.json["epsilon_spent"] > 0
        charged += a.json["epsilon_spent"] + b.json["epsilon_spent"]
        exact = int(pc.sum(pc.greater(table.column("age"), threshold)).as_py())
        exact_differences += (a.json["rows"][0][0] - b.json["rows"][0][0]) == exact - (exact - 1)
        pairs += 1
    assert pairs == 6
    assert exact_differences < pairs
    assert state(client, creds, demo)[0] == pytest.approx(spent0 + charged, abs=1e-9)
    assert client.get("/healthz").status_code == 200


def test_rare_group_keys_are_not_echoed(client, creds, demo):
    """GROUP BY a column without a public domain keeps keys only through DP partition
    selection: a key held by one person is never released (fails with probability ≤ δ)."""
    table = _residents(demo)
    counts: dict[float, int] = {}
    for v in table.column("income").to_pylist():
        counts[v] = counts.get(v, 0) + 1
    r = post(
        client,
        creds,
        {
            "approval_id": creds["researcher"]["approval_id"],
            "epsilon": 1.0,
            "sql": "SELECT income, COUNT(*) FROM residents GROUP BY income",
        },
    )
    if r.status_code == 400:  # refusing is also acceptable
        assert_error(r, 400)
        return
    assert r.status_code == 200, r.json
    released = [row[0] for row in r.json["rows"]]
    assert all(counts.get(float(k), 0) > 1 for k in released), released


def test_probing_a_single_person_is_refused(client, creds, demo):
    with nothing_released(client, creds, demo):
        for sql in [
            "SELECT COUNT(*) FROM residents WHERE person_id = 17",
            "SELECT COUNT(*) FROM residents WHERE id_number = '370102199001011234'",
            "SELECT AVG(income) FROM residents WHERE phone = '13800000000'",
            "SELECT COUNT(DISTINCT name) FROM residents",
        ]:
            assert_error(
                post(
                    client, creds, {"approval_id": creds["researcher"]["approval_id"], "sql": sql}
                ),
                400,
            )


# -- path traversal in dataset names --------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fsandbox.db",
        "..%2Fkeys%2Fkeyring.json",
        "%2Fetc%2Fpasswd",
        "residents%00.csv",
        "residents'%20OR%201=1",
    ],
)
def test_path_traversal_in_dataset_names(client, creds, demo, name):
    h = bearer(creds["researcher"]["token"])
    with nothing_released(client, creds, demo):
        for path in (
            f"/api/v1/datasets/{name}/download",
            f"/api/v1/catalog/{name}",
            f"/api/v1/datasets/{name}/risk",
        ):
            r = client.get(path, headers=h)
            assert r.status_code in (400, 403, 404), (path, r.status_code)
            assert (
                b"BEGIN" not in r.data and b"root:" not in r.data and b"SQLite format" not in r.data
            )
