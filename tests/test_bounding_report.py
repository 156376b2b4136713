"""The owner's bounding report (issue 13): shares on a table small enough to count by hand,
the suggestion rule, storage at registration, the CLI, the API's rights and the console card.
"""

from __future__ import annotations

import doctest
import json
import re

import pyarrow as pa
import pytest
from click.testing import CliRunner

from sandbox.cli.main import cli
from sandbox.service import bounding_report
from sandbox.service.bounding_report import build_report, round_away
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.conftest import bearer

# pid 1: departments a, b, c (one row each); pid 2: two rows in a; pid 3: one row in b.
SMALL = pa.table({"pid": [1, 1, 1, 2, 2, 3], "dept": ["a", "b", "c", "a", "a", "b"],
                  "cost": [1.0, 2.0, 3.0, 4.0, 5.0, 100.0]})


@pytest.fixture(scope="module")
def small() -> dict:
    return build_report(SMALL, privacy_unit="pid", group_keys=["dept"], numeric={"cost": (0.0, 10.0)},
                        declared_l0=1, declared_linf=1)


def by_bound(rows: list[dict]) -> dict[int, dict]:
    return {r["bound"]: r for r in rows}


def key(report: dict, name: str | None) -> dict:
    return next(k for k in report["group_keys"] if k["key"] == name)


def test_l0_shares_are_persons_above_and_expected_rows_dropped(small):
    l0 = by_bound(key(small, "dept")["l0"])
    # only pid 1 has more than 1 or 2 groups; with k = 3 groups it keeps each with p = L0/3
    assert l0[1]["persons_affected"] == 1 and l0[1]["persons_share"] == pytest.approx(1 / 3)
    assert l0[1]["rows_dropped_share"] == pytest.approx(3 * (1 - 1 / 3) / 6)
    assert l0[2]["rows_dropped_share"] == pytest.approx(3 * (1 - 2 / 3) / 6)
    assert l0[3]["persons_affected"] == 0 and l0[3]["rows_dropped_share"] == 0
    assert key(small, "dept")["max_groups_per_person"] == 3


def test_linf_shares_per_group_and_without_group_by(small):
    grouped = by_bound(key(small, "dept")["l_inf"])
    assert grouped[1]["persons_share"] == pytest.approx(1 / 3)  # pid 2: two rows in a
    assert grouped[1]["rows_dropped_share"] == pytest.approx(1 / 6)
    assert grouped[2]["rows_dropped_share"] == 0
    whole = by_bound(key(small, None)["l_inf"])
    assert whole[1]["persons_share"] == pytest.approx(2 / 3)  # pids 1 and 2 have 3 and 2 rows
    assert whole[1]["rows_dropped_share"] == pytest.approx(3 / 6)
    assert whole[2]["rows_dropped_share"] == pytest.approx(1 / 6)
    assert "l0" not in key(small, None)


def test_declared_bounds_together(small):
    # L0 = 1, L∞ = 1 by dept: pid 1 keeps 3 × 1/3 rows, pids 2 and 3 one each → 3 of 6
    assert key(small, "dept")["declared_rows_kept_share"] == pytest.approx(0.5)
    assert key(small, None)["declared_rows_kept_share"] == pytest.approx(3 / 6)


def test_clamp_ranges_rows_clamped_and_mass_removed(small):
    (cost,) = small["columns"]
    ranges = {r["candidate"]: r for r in cost["ranges"]}
    assert list(ranges) == ["declared", "p90", "p95", "p99", "p99.9", "max"]
    assert ranges["declared"]["rows_clamped_share"] == pytest.approx(1 / 6)
    assert ranges["declared"]["mass_removed_share"] == pytest.approx(90 / 115)
    assert ranges["max"] == {"candidate": "max", "lower": 0.0, "upper": 100.0, "rows_clamped_share": 0.0,
                             "mass_removed_share": 0.0}
    p99 = ranges["p99"]  # QUANTILE_CONT: 5 + 0.95 × (100 − 5) = 95.25
    assert p99["upper"] == pytest.approx(95.25)
    assert p99["mass_removed_share"] == pytest.approx((100 - 95.25) / 115)
    assert [ranges[c]["upper"] for c in ("p90", "p95", "p99", "p99.9", "max")] == sorted(
        ranges[c]["upper"] for c in ("p90", "p95", "p99", "p99.9", "max"))


def test_suggestions_follow_the_rule(small):
    """Smallest candidate keeping ≥ 99 % of rows (L0, L∞: the largest over keys) or of mass."""
    assert small["target"] == 0.99
    # L0: 1 and 2 drop rows, 3 drops none; L∞: none → 5 (2 drops 1/6), dept → 2; the larger wins
    assert small["suggested"] == {"max_partitions": 3, "max_rows_per_partition": 5, "meets_target": True}
    # clamps: P99 removes 4.1 % of the mass, P99.9 0.41 %: P99.9's 99.525 widened to 2 digits
    assert small["columns"][0]["suggested"] == {"lower": 0.0, "upper": 100.0, "from": "p99.9",
                                                "meets_target": True}


def test_when_no_candidate_keeps_99_percent_the_largest_is_suggested():
    heavy = pa.table({"pid": [1] * 200 + [2], "x": [1.0] * 201})
    report = build_report(heavy, privacy_unit="pid", numeric={"x": None})
    assert report["suggested"]["max_rows_per_partition"] == 50
    assert report["suggested"]["meets_target"] is False
    assert report["columns"][0]["declared"] is None


def test_negative_values_mirror_the_lower_end_and_integers_round_outwards():
    values = list(range(-500, 501))
    table = pa.table({"pid": list(range(len(values))), "delta": values})
    report = build_report(table, privacy_unit="pid", numeric={"delta": None}, integer_columns=["delta"])
    (col,) = report["columns"]
    p90 = next(r for r in col["ranges"] if r["candidate"] == "p90")
    assert p90["lower"] == pytest.approx(-400) and p90["upper"] == pytest.approx(400)
    # P95 = [-450, 450] removes 2 × Σ1..50 / 2 × Σ1..500 = 1.02 % of the mass; P99 = [-490, 490] 0.04 %
    assert col["suggested"] == {"lower": -490, "upper": 490, "from": "p99", "meets_target": True}
    assert isinstance(col["suggested"]["lower"], int)
    assert report["suggested"]["max_rows_per_partition"] == 1


def test_round_away_only_widens():
    assert round_away(4873.2) == 4900 and round_away(-1234) == -1300 and round_away(0.0) == 0.0
    assert doctest.testmod(bounding_report).failed == 0


# -- stored with the registration; the CLI, the API and the console -------------------------------
def test_registration_stores_the_report_and_keeps_it_out_of_the_audit_log(demo):
    sb, _creds = demo
    owner = find_user(sb.conn(), "owner")
    result = bounding_report.read(sb, owner, "clinic_visits")
    assert result["stored"] is True
    report = result["report"]
    assert report["declared"] == {"max_partitions": 3, "max_rows_per_partition": 10, "one_row_per_unit": False}
    assert [k["key"] for k in report["group_keys"]] == [None, "department"]
    assert [c["column"] for c in report["columns"]] == ["cost"]
    # PRIVACY: the audit log (regulator-readable, exported) carries no exact figures
    registered = sb.conn().execute("SELECT entry FROM audit_entries WHERE action = 'dataset.registered'").fetchall()
    assert registered and all("bounding" not in r[0] and "rows_dropped_share" not in r[0] for r in registered)


def test_computed_on_request_for_versions_registered_without_it(demo):
    sb, _creds = demo
    owner = find_user(sb.conn(), "owner")
    stored = bounding_report.read(sb, owner, "residents")["report"]
    conn = sb.conn()
    row = conn.execute("SELECT v.id, v.risk_report FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id "
                       "WHERE d.name = 'residents'").fetchone()
    risk = json.loads(row[1])
    risk.pop("bounding")
    with conn:
        conn.execute("UPDATE dataset_versions SET risk_report = ? WHERE id = ?", (json.dumps(risk), row[0]))
    again = bounding_report.read(sb, owner, "residents")
    assert again["stored"] is False and again["report"] == stored
    assert again["report"]["suggested"] == {"max_partitions": 1, "max_rows_per_partition": 1, "meets_target": True}


def test_cli_shows_the_report(demo):
    sb, creds = demo
    token = ["--token", creds["owner"]["token"]]  # the CLI acts as an authenticated user
    args = ["datasets", "bounds", "clinic_visits", "--data-dir", str(sb.ws.root), *token]
    as_json = CliRunner().invoke(cli, [*args, "--json"], catch_exceptions=False)
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["dataset"] == "clinic_visits" and set(body["report"]["suggested"]) == {
        "max_partitions", "max_rows_per_partition", "meets_target"}
    plain = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert plain.exit_code == 0 and "suggested: L0 = " in plain.output and "GROUP BY department" in plain.output
    assert re.search(r"cost: suggested clamp \[0, \d+\]", plain.output)
    missing = CliRunner().invoke(cli, ["datasets", "bounds", "nope", "--data-dir", str(sb.ws.root), *token])
    assert missing.exit_code == 1


@pytest.mark.parametrize("role,status", [("owner", 200), ("regulator", 200), ("researcher", 403),
                                         (None, 401)])
def test_api_is_for_the_owner_and_the_regulator(demo, role, status):
    sb, creds = demo
    client = create_app(sb, {"TESTING": True}).test_client()
    headers = bearer(creds[role]["token"]) if role else {}
    resp = client.get("/api/v1/datasets/clinic_visits/bounding-report", headers=headers)
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    if status == 200:
        assert body["report"]["suggested"]["max_rows_per_partition"] >= 1
    else:
        assert set(body) == {"error"} and "rows_dropped_share" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("lang,title", [("en", "Bounding report"), ("zh-CN", "有界化报告")])
def test_console_card_renders_for_the_owner(demo, lang, title):
    from tests.test_console import client_for

    sb, _creds = demo
    app = create_app(sb, {"TESTING": True})
    page = client_for(app, "owner", lang=lang).get("/owner/datasets/clinic_visits")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="bounding-report"' in html and title in html
    assert "L0 = 5" in html and 'class="clamp-table"' in html
    researcher = client_for(app, "researcher", lang=lang).get("/owner/datasets/clinic_visits")
    assert researcher.status_code == 403 and "bounding-report" not in researcher.get_data(as_text=True)
