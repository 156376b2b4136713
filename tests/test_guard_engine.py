"""The rewritten engine queries run on DuckDB and give the exact statistics the plan
contract promises (query_guard/plan.py), checked against plain-Python references on
small Arrow tables with a ``__rowid`` column, as the sandbox engine registers them.

Data sets are built so that bounding has no effect (each person within L0/L∞) unless a
test adds a heavy contributor on purpose; then only the invariant "≤ L∞ rows per group,
≤ L0 groups per person" is checked, since which rows are kept is decided by the secret
seed.
"""

from __future__ import annotations

import datetime as dt
import math
import random

import duckdb
import pyarrow as pa
import pytest
from test_guard_support import CATALOG, SCENARIOS, run_engine

from query_guard import plan

DISTRICTS = ["历下区", "市中区", "槐荫区", "天桥区", "历城区", "长清区"]
DEPARTMENTS = ["内科", "外科", "儿科", "妇产科", "眼科", "口腔科", "急诊科", "中医科"]
START = dt.date(2023, 1, 1)


def residents(n: int = 300) -> pa.Table:
    rng = random.Random(7)
    ages = [
        None if i % 37 == 0 else (105 if i % 53 == 0 else rng.randint(0, 100)) for i in range(n)
    ]
    incomes = [
        None if i % 29 == 0 else (900_000.5 if i % 41 == 0 else rng.uniform(0, 400_000))
        for i in range(n)
    ]
    return pa.table(
        {
            "person_id": list(range(1, n + 1)),
            "name": [f"name{i}" for i in range(n)],
            "id_number": [f"id{i}" for i in range(n)],
            "phone": [f"p{i}" for i in range(n)],
            "district": [DISTRICTS[rng.randrange(len(DISTRICTS))] for _ in range(n)],
            "age": pa.array(ages, type=pa.int64()),
            "sex": [rng.choice(["男", "女"]) for _ in range(n)],
            "education": ["本科"] * n,
            "employment": ["在职"] * n,
            "income": pa.array(incomes, type=pa.float64()),
        }
    )


def visits(n_persons: int = 300, heavy: bool = False) -> pa.Table:
    """Light: each person ≤ 3 departments, ≤ 10 visits in each (bounding is a no-op)."""
    rng = random.Random(11)
    rows: dict[str, list] = {"person_id": [], "visit_date": [], "department": [], "cost": []}
    for person in range(1, n_persons + 1):
        for dept in rng.sample(DEPARTMENTS, rng.randint(0, 3)):
            for _ in range(rng.randint(1, 10)):
                rows["person_id"].append(person)
                rows["visit_date"].append(START + dt.timedelta(days=rng.randint(0, 730)))
                rows["department"].append(dept)
                cost = rng.uniform(0, 6000) if rng.random() > 0.05 else None
                rows["cost"].append(cost)
    if heavy:
        for dept in DEPARTMENTS[:5]:
            for k in range(50):
                rows["person_id"].append(9999)
                rows["visit_date"].append(START + dt.timedelta(days=k))
                rows["department"].append(dept)
                rows["cost"].append(4000.0)
    return pa.table(
        {
            "person_id": pa.array(rows["person_id"], type=pa.int64()),
            "visit_date": pa.array(rows["visit_date"], type=pa.date32()),
            "department": rows["department"],
            "cost": pa.array(rows["cost"], type=pa.float64()),
        }
    )


RES = residents()
VIS = visits()
TABLES = {"residents": RES, "clinic_visits": VIS}


def run(sql: str, tables: dict[str, pa.Table] | None = None) -> tuple[object, dict]:
    p = plan(sql, SCENARIOS["default"], CATALOG)
    return p, run_engine(p.engine_sql("duckdb"), tables or TABLES)


def by_key(result: dict, column: str, key: str = "__g0") -> dict:
    return dict(zip(result[key], result[column], strict=True))


def clamp(v: float, lo: float, hi: float) -> float:
    return min(max(v, lo), hi)


def fixed(v: float, fp: int) -> int:
    return int(round(v * fp))


def test_count_star_residents():
    p, out = run("SELECT COUNT(*) FROM residents")
    m = p.measurements[0]
    assert out["__rows"] == [RES.num_rows]
    assert out[m.stats["count"]] == [RES.num_rows]


def test_count_by_district_includes_only_domain_keys():
    p, out = run("SELECT district, COUNT(*) AS n FROM residents GROUP BY district")
    expected: dict[str, int] = {}
    for d in RES.column("district").to_pylist():
        expected[d] = expected.get(d, 0) + 1
    assert by_key(out, p.measurements[0].stats["count"]) == expected
    assert p.group_keys[0].public_domain is not None
    assert set(expected) <= set(p.group_keys[0].public_domain)


def test_avg_income_by_district_fixed_point_sum_and_count():
    p, out = run("SELECT district, AVG(income) FROM residents GROUP BY district")
    m = p.measurements[0]
    assert (m.kind, m.lower, m.upper, m.fixed_point) == ("mean", 0.0, 500000.0, 2)
    sums: dict[str, int] = {}
    counts: dict[str, int] = {}
    for d, inc in zip(
        RES.column("district").to_pylist(), RES.column("income").to_pylist(), strict=True
    ):
        if inc is None:
            continue
        sums[d] = sums.get(d, 0) + fixed(clamp(inc, 0, 500000), m.fixed_point)
        counts[d] = counts.get(d, 0) + 1
    assert by_key(out, m.stats["sum"]) == sums
    assert by_key(out, m.stats["count"]) == counts


def test_count_clinic_visits_light_data_unchanged_by_bounding():
    p, out = run("SELECT COUNT(*) FROM clinic_visits")
    m = p.measurements[0]
    assert (m.max_partitions, m.max_rows_per_partition) == (1, 10)
    # no GROUP BY: L0 = 1, each person keeps ≤ 10 rows overall
    per_person: dict[int, int] = {}
    for pid in VIS.column("person_id").to_pylist():
        per_person[pid] = per_person.get(pid, 0) + 1
    assert out[m.stats["count"]] == [sum(min(c, 10) for c in per_person.values())]


def test_count_by_department_light_data_exact():
    p, out = run("SELECT department, COUNT(*) FROM clinic_visits GROUP BY department")
    m = p.measurements[0]
    assert (m.max_partitions, m.max_rows_per_partition) == (3, 10)
    expected: dict[str, int] = {}
    for d in VIS.column("department").to_pylist():
        expected[d] = expected.get(d, 0) + 1
    assert by_key(out, m.stats["count"]) == expected


def test_avg_cost_by_department_light_data_exact():
    p, out = run("SELECT department, AVG(cost) FROM clinic_visits GROUP BY department")
    m = p.measurements[0]
    sums: dict[str, int] = {}
    counts: dict[str, int] = {}
    for d, c in zip(
        VIS.column("department").to_pylist(), VIS.column("cost").to_pylist(), strict=True
    ):
        if c is not None:
            sums[d] = sums.get(d, 0) + fixed(clamp(c, 0, 5000), m.fixed_point)
            counts[d] = counts.get(d, 0) + 1
    assert by_key(out, m.stats["sum"]) == sums
    assert by_key(out, m.stats["count"]) == counts


def test_heavy_contributor_is_bounded_and_choice_is_stable():
    heavy = visits(heavy=True)
    tables = {"residents": RES, "clinic_visits": heavy}
    sql = "SELECT department, COUNT(*), SUM(cost) FROM clinic_visits GROUP BY department"
    p, out = run(sql, tables)
    light = run(sql)[1]
    extra = {
        d: out["__rows"][i] - by_key(light, "__rows").get(d, 0) for i, d in enumerate(out["__g0"])
    }
    # the heavy person (50 visits in each of 5 departments) keeps 3 groups × 10 rows
    assert sorted(v for v in extra.values() if v) == [10, 10, 10]
    again = run(sql, tables)[1]
    for column in out:
        assert by_key(again, column) == by_key(out, column)
    # same rows in another physical order (same __rowid): same kept rows
    order = list(reversed(range(heavy.num_rows)))
    shuffled = heavy.take(pa.array(order))
    import duckdb

    con = duckdb.connect()
    con.register(
        "clinic_visits", shuffled.append_column("__rowid", pa.array(order, type=pa.int64()))
    )
    con.register("residents", RES)
    reordered = con.sql(p.engine_sql()).to_arrow_table().to_pydict()
    assert by_key(reordered, "__rows") == by_key(out, "__rows")


def test_variance_and_stddev_sum_of_squares():
    p, out = run("SELECT VARIANCE(age), STDDEV(age) FROM residents")
    m = p.measurements[0]
    assert m.kind == "variance" and p.measurements[1].kind == "stddev"
    ages = [clamp(a, 0, 100) for a in RES.column("age").to_pylist() if a is not None]
    assert out[m.stats["sum"]] == [sum(int(a) for a in ages)]
    assert out[m.stats["sumsq"]] == [sum(int(a * a) for a in ages)]
    assert out[m.stats["count"]] == [len(ages)]


def test_median_histogram_counts_every_value():
    p, out = run("SELECT MEDIAN(income), QUANTILE_CONT(age, [0.25, 0.75]) FROM residents")
    hist = dict(out[p.measurements[0].stats["hist"]][0])
    incomes = [i for i in RES.column("income").to_pylist() if i is not None]
    assert sum(hist.values()) == len(incomes)
    assert all(0 <= b < p.measurements[0].bins for b in hist)
    lo, hi, bins = 0.0, 500000.0, p.measurements[0].bins
    expected_top = sum(1 for i in incomes if clamp(i, lo, hi) == hi)
    assert hist.get(bins - 1, 0) >= expected_top
    assert p.measurements[1].quantiles == (0.25, 0.75)
    assert [o.name for o in p.outputs][1:] == [
        "QUANTILE_CONT(age, [0.25, 0.75])_0.25",
        "QUANTILE_CONT(age, [0.25, 0.75])_0.75",
    ]


def test_count_distinct_persons_by_department():
    p, out = run(
        "SELECT department, COUNT(DISTINCT person_id) FROM clinic_visits GROUP BY department"
    )
    expected: dict[str, set] = {}
    for d, pid in zip(
        VIS.column("department").to_pylist(), VIS.column("person_id").to_pylist(), strict=True
    ):
        expected.setdefault(d, set()).add(pid)
    assert by_key(out, p.measurements[0].stats["count"]) == {d: len(s) for d, s in expected.items()}


def test_join_visits_by_resident_district():
    p, out = run(
        "SELECT r.district, COUNT(*), SUM(v.cost) FROM residents r "
        "JOIN clinic_visits v ON r.person_id = v.person_id GROUP BY r.district"
    )
    district = dict(
        zip(RES.column("person_id").to_pylist(), RES.column("district").to_pylist(), strict=True)
    )
    counts: dict[str, int] = {}
    sums: dict[str, int] = {}
    fp = p.measurements[1].fixed_point
    for pid, c in zip(
        VIS.column("person_id").to_pylist(), VIS.column("cost").to_pylist(), strict=True
    ):
        d = district[pid]
        counts[d] = counts.get(d, 0) + 1
        if c is not None:
            sums[d] = sums.get(d, 0) + fixed(clamp(c, 0, 5000), fp)
    assert p.measurements[0].dataset == "clinic_visits"
    # light data has ≤ 3 departments × 10 visits, but a person may have up to 30 rows in
    # one district group: L∞ = 10 keeps at most 10 of them.
    per_person: dict[int, int] = {}
    for pid in VIS.column("person_id").to_pylist():
        per_person[pid] = per_person.get(pid, 0) + 1
    bounded: dict[str, int] = {}
    for pid, n in per_person.items():
        bounded[district[pid]] = bounded.get(district[pid], 0) + min(n, 10)
    assert by_key(out, p.measurements[0].stats["count"]) == bounded
    assert sum(counts.values()) >= sum(bounded.values())


@pytest.mark.parametrize(
    ("key_sql", "fn"),
    [
        ("FLOOR(age / 10) * 10", lambda a: int(math.floor(a / 10) * 10)),
        ("age // 10", lambda a: int(a // 10)),
        (
            "CASE WHEN age >= 60 THEN 'old' ELSE 'young' END",
            lambda a: "old" if a >= 60 else "young",
        ),
    ],
)
def test_computed_age_keys_match_public_domain(key_sql, fn):
    p, out = run(f"SELECT {key_sql} AS k, COUNT(*) FROM residents GROUP BY 1")
    domain = p.group_keys[0].public_domain
    assert domain is not None
    expected: dict[object, int] = {}
    for a in RES.column("age").to_pylist():
        if a is not None and 0 <= a <= 100:
            expected[fn(a)] = expected.get(fn(a), 0) + 1
    got = {k: v for k, v in by_key(out, "__rows").items() if k is not None}
    for key, count in expected.items():
        assert key in domain
        assert got.get(key, 0) >= count


@pytest.mark.parametrize(
    "key_sql",
    [
        "CAST(age / 2 AS INT)",  # a DOUBLE: DuckDB rounds half to even
        "CAST(age * 0.5 AS INT)",  # a DECIMAL: half away from zero
        "CAST(age / 2 + 0.5 AS INT)",
        "CAST(CAST(age AS DECIMAL(5, 1)) / 4 AS INT)",
        "ROUND(age / 4)",
        "CAST(CAST(age AS VARCHAR) || '.5' AS INT)",  # text: half away from zero
    ],
)
def test_rounded_keys_have_the_engines_public_domain(key_sql):
    """The guard computes a key's public domain in Python; over the declared bounds of
    age (0 to 100) it must be exactly what DuckDB computes (issue 19: casts to integers)."""
    p, out = run(f"SELECT {key_sql} AS k, COUNT(*) FROM residents GROUP BY 1")
    domain = p.group_keys[0].public_domain
    assert domain is not None
    engine = duckdb.connect().execute(f"SELECT DISTINCT {key_sql} FROM range(0, 101) AS t(age)").fetchall()
    assert sorted(v for v in domain if v is not None) == sorted(v for (v,) in engine)  # NULL: no age


@pytest.mark.parametrize(
    "key_sql",
    [
        "year(visit_date)",
        "month(visit_date)",
        "EXTRACT(QUARTER FROM visit_date)",
        "date_trunc('month', visit_date)",
    ],
)
def test_date_keys_are_inside_their_public_domain(key_sql):
    p, out = run(f"SELECT {key_sql}, COUNT(*) FROM clinic_visits GROUP BY 1")
    domain = p.group_keys[0].public_domain
    assert domain is not None
    assert set(out["__g0"]) <= set(domain)
    assert sum(out["__rows"]) > 0


def test_fixed_point_sum_of_derived_ratio_output():
    p, out = run("SELECT SUM(income) / COUNT(*) AS per_head FROM residents")
    assert p.outputs[0].source == "derived"
    assert p.outputs[0].expression.sql() == "m0 / m1"


def test_division_by_zero_and_bad_cast_in_data_do_not_raise():
    p, out = run(
        "SELECT COUNT(*) FROM residents WHERE income / (age - age) > 1 "
        "OR CAST(district AS INTEGER) = 3 OR age % 0 = 1 OR age // 0 = 1"
    )
    assert out["__rows"] == [0]
