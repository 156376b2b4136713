"""Issue 13, "aggregates researchers write": ROUND, CAST, FLOOR, CEIL, ABS and SQRT of released
aggregates are post-processing of the noisy figures, computed by the release (free, total),
with their intervals mapped through the function. What it cannot compute is refused before
the charge (``privacy.check_plan``)."""

from __future__ import annotations

import math

import pytest

from sandbox.errors import BadRequest
from sandbox.service.pipeline import QueryRequest
from sandbox.store.users import find_user


@pytest.fixture
def run(demo):
    sb, creds = demo
    researcher = find_user(sb.conn(), "researcher")

    def query(sql: str) -> dict:
        return sb.run_query(researcher, QueryRequest(creds["researcher"]["approval_id"], sql, 0.2))
    return query


def test_round_and_casts_of_released_aggregates(run):
    out = run("SELECT CAST(COUNT(*) AS INTEGER) AS n, ROUND(SUM(income) / COUNT(*), 1) AS m, "
              "ROUND(AVG(income), -2) AS h, CAST(AVG(age) AS DECIMAL(10, 2)) AS a FROM residents")
    n, m, h, a = out["rows"][0]
    assert float(n).is_integer() and round(m, 1) == m and h % 100 == 0 and round(a, 2) == a
    for col, value in zip(out["columns"], out["rows"][0], strict=True):
        lo, hi = out["accuracy"][col]["intervals"][0]
        assert lo <= value <= hi, (col, value, lo, hi)


def test_sqrt_abs_floor_ceil_are_total(run):
    out = run("SELECT district, SQRT(COUNT(*) - 250) AS s, ABS(COUNT(*) - 250) AS a, FLOOR(AVG(age)) AS f, "
              "CEIL(AVG(age)) AS c FROM residents GROUP BY district")
    for row, s_iv, a_iv in zip(out["rows"], out["accuracy"]["s"]["intervals"], out["accuracy"]["a"]["intervals"],
                               strict=True):
        _district, s, a, f, c = row
        assert s is None or s >= 0  # SQRT of a negative noisy figure is NULL, never an error
        assert a >= 0 and a_iv[0] >= 0 and s_iv[0] >= 0
        assert f <= c and f == math.floor(f) and c == math.ceil(c)


@pytest.mark.parametrize("sql", ["SELECT CAST(SUM(income) AS DATE) FROM residents",
                                 "SELECT POWER(SUM(age), 2) FROM residents",
                                 "SELECT ROUND(AVG(income), COUNT(*)) FROM residents"])
def test_what_the_release_cannot_compute_is_refused_before_the_charge(demo, run, sql):
    sb, creds = demo
    with pytest.raises(Exception) as err:
        run(sql)
    assert getattr(err.value, "code", "") in ("unsupported_expression", "not_allowed", "type_error",
                                              "nested_aggregate") or isinstance(err.value, BadRequest)
    assert sb.conn().execute("SELECT COUNT(*) FROM ledger WHERE approval_id = ?",
                             (creds["researcher"]["approval_id"],)).fetchone()[0] == 0
