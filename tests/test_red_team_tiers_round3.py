"""Red team, round 3, of the unconditional (无条件开放) de-identified derivative: differencing
across *datasets* (issue 14; 第十二条).

Round 2 left one strict xfail: yearly snapshots published as separate datasets are built
independently, and the 2026 file minus the 2025 file is the newcomer's row. This round attacks
every way an outsider can line up open files the per-dataset guard never compares: a union of
two files (a district's and the rest of the city's, or a split no column shows), the same
columns under other headers, a file with one more column, the same people at another k, a file
whose tier was lowered since (the public kept it), three versions of one dataset (v3 − v1),
and the row order. Defence: ``sandbox/governance/granular_counts.py`` (decision 0010, amendment 2).

Every assertion is about what an outsider downloads anonymously (the CSV), computed the way an
attacker would: a class, a projection on the columns two files share, a sum of files.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pyarrow as pa
import pytest

from sandbox.governance import deidentify, granular_counts, risk_scan
from sandbox.governance.policy import ColumnPolicy, DatasetPolicy
from tests.test_red_team_tiers import (
    DISTRICTS,
    Env,
    _env,
    decide,
    download,
    policy,
    publish_open,
    register,
)
from tests.test_red_team_tiers_round2 import (
    ZH,
    _band_counts,
    _clinic_registry,
    _span,
    submit,
    town,
    town_columns,
)

COLS = ["district", "sex", "age"]


@pytest.fixture
def env(demo_template, tmp_path) -> Env:
    return _env(demo_template, tmp_path)


@pytest.fixture(scope="module")
def shared(demo_template, tmp_path_factory) -> Env:
    return _env(demo_template, tmp_path_factory.mktemp("red-team-tiers-round3"))


def newcomer(pid: int = 1001, district: str = "历下区", sex: str = "女", age: int = 37) -> pa.Table:
    return pa.table({"pid": pa.array([pid], pa.int64()), "district": [district], "sex": [sex],
                     "age": pa.array([age], pa.int64())})


def counts(t: pa.Table, cols: list[str]) -> Counter:
    return Counter(zip(*(t.column(c).to_pylist() for c in cols), strict=True))


def small_differences(new: Counter, old: Iterable[Counter], k: int = 5) -> dict:
    """Classes whose count in ``new`` differs from the sum of ``old`` by 1 … k − 1 (either way)."""
    total: Counter = Counter()
    for o in old:
        total.update(o)
    return {c: new.get(c, 0) - total.get(c, 0) for c in set(new) | set(total)
            if 0 < abs(new.get(c, 0) - total.get(c, 0)) < k}


def publish(e: Env, name: str, table: pa.Table, columns: dict, k: int = 5) -> pa.Table:
    register(e, name, table, policy(name, columns))
    status, body = submit(e, name, k=k)
    assert status == 200, body
    return download(e, name).csv


# -- unions ------------------------------------------------------------------------------------------------
def test_a_district_file_plus_the_rest_of_the_city_minus_next_years_city_file(shared):
    """2025: 历下区 published on its own and the other districts on their own; 2026: the whole
    city with one newcomer. 2026 − (历下区 + rest) on every class and on (district, sex)."""
    city = town(300, seed=311)
    lixia = city.filter(pa.compute.equal(city.column("district"), "历下区"))
    rest = city.filter(pa.compute.not_equal(city.column("district"), "历下区"))
    a = publish(shared, "rt3_lixia_2025", lixia, town_columns())
    b = publish(shared, "rt3_rest_2025", rest, town_columns())
    n = publish(shared, "rt3_city_2026", pa.concat_tables([city, newcomer()]), town_columns())
    for cols in (COLS, ["district", "sex"]):
        assert not small_differences(counts(n, cols), [counts(a, cols), counts(b, cols)]), cols


def test_two_halves_no_column_shows_minus_next_years_file(shared):
    """2025 split by a column that is not published (odd and even registration numbers), each
    half a dataset; 2026 whole, with a newcomer. No class or projection differs by 1 … 4."""
    city = town(300, seed=321)
    odd = pa.compute.equal(pa.compute.bit_wise_and(city.column("pid"), 1), 1)
    a = publish(shared, "rt3_odd_2025", city.filter(odd), town_columns())
    b = publish(shared, "rt3_even_2025", city.filter(pa.compute.invert(odd)), town_columns())
    n = publish(shared, "rt3_whole_2026", pa.concat_tables([city, newcomer()]), town_columns())
    for cols in (COLS, ["district", "sex"], ["district"], ["sex"]):
        assert not small_differences(counts(n, cols), [counts(a, cols), counts(b, cols)]), cols


def test_three_district_files_minus_next_years_city_file(shared):
    """A union of three files (one per district) against next year's city file: no class or
    projection of 2026 − (three files) is 1 … 4 (granularity; sums of three files are not
    anchors, so only the multiple-of-5 rule is at work here)."""
    city = town(300, seed=391)
    parts = [publish(shared, f"rt3_d{i}_2025", city.filter(pa.compute.equal(city.column("district"), d)),
                     town_columns()) for i, d in enumerate(DISTRICTS)]
    n = publish(shared, "rt3_city3_2026", pa.concat_tables([city, newcomer(district="槐荫区")]), town_columns())
    for cols in (COLS, ["district", "sex"], ["sex"]):
        assert not small_differences(counts(n, cols), [counts(p, cols) for p in parts]), cols


def test_two_yearly_files_submitted_together(env):
    """2025 and 2026 submitted before either is co-signed: 2026 is built against the one
    awaiting the regulator, and both are then signed — the files are equal (newcomer held back)."""
    y25 = town(300, seed=401)
    reviews = []
    for name, table in (("together_2025", y25), ("together_2026", pa.concat_tables([y25, newcomer()]))):
        register(env, name, table, policy(name, town_columns()))
        r = env.client.post(f"/api/v1/datasets/{name}/risk/ack", headers=env.tok["owner"],
                            json={"note": "yearly file", "k_anonymity": 5})
        assert r.status_code == 202, r.json
        reviews.append(r.json["review_id"])
    for review in reversed(reviews):
        assert decide(env, review).status_code == 200
    a, n = (download(env, name).csv for name in ("together_2025", "together_2026"))
    assert counts(n, COLS) == counts(a, COLS)


# -- other headers, other columns, other k ---------------------------------------------------------------------
def test_next_years_file_under_chinese_headers(shared):
    """The 2026 file renames district, sex, age to 区县, 性别, 年龄 (a new dataset, so the
    per-dataset rule on renamed columns does not apply): matched by their values, and the newcomer
    held back — the attacker's column mapping finds the two files equal."""
    y25 = town(300, seed=331)
    a = publish(shared, "rt3_named_2025", y25, town_columns())
    y26 = pa.concat_tables([y25, newcomer()]).rename_columns(["pid", "区县", "性别", "年龄"])
    n = publish(shared, "rt3_named_2026", y26, town_columns(ZH))
    renamed = n.rename_columns([{v: k for k, v in ZH.items()}.get(c, c) for c in n.column_names])
    assert not small_differences(counts(renamed, COLS), [counts(a, COLS)])
    assert counts(renamed, COLS) == counts(a, COLS)


def test_next_years_file_with_one_more_column(shared):
    """2026 adds an education column: projected on the columns both files have, 2026 − 2025."""
    y25 = town(300, seed=341)
    a = publish(shared, "rt3_wider_2025", y25, town_columns())
    y26 = pa.concat_tables([y25, newcomer()])
    y26 = y26.append_column("education", pa.array([("小学", "中学", "大学")[i % 3] for i in range(y26.num_rows)]))
    n = publish(shared, "rt3_wider_2026", y26, town_columns(education=("text", "sensitive")))
    assert "education" in n.column_names
    for cols in (COLS, ["district", "sex"]):
        assert not small_differences(counts(n, cols), [counts(a, cols)]), cols


@pytest.mark.parametrize("ks", [(5, 10), (10, 5)])
def test_the_same_registry_at_two_k_as_two_datasets(shared, ks):
    """The round-2 band-intersection attack across datasets: the same people at k = 5 and k = 10,
    each a dataset of its own (no floor between them); nested bands subtracted. Defended (also
    without granular counts, by the levels Datafly picks for this registry); kept as a regression."""
    table = _clinic_registry()
    cols = {"pid": ("int", "sensitive"), "district": ("text", "quasi_identifier"),
            "sex": ("text", "quasi_identifier"), "age": ("int", "quasi_identifier", "bounds = [0, 100]"),
            "diagnosis": ("text", "sensitive")}
    fine, coarse = sorted(ks)
    got = {k: _band_counts(publish(shared, f"rt3_registry_{ks[0]}_{ks[1]}_k{k}", table, cols, k=k)) for k in ks}
    derived = {}
    for (d, s, diag, band), n in got[coarse].items():
        lo, hi = _span(band)
        inside = sum(m for (d_, s_, g_, b), m in got[fine].items()
                     if (d_, s_, g_) == (d, s, diag) and lo <= _span(b)[0] and _span(b)[1] <= hi)
        if 0 < abs(n - inside) < 5 and inside:
            derived[(d, s, diag, band)] = n - inside
    assert not derived, derived


# -- files the public kept ------------------------------------------------------------------------------------
def test_a_file_whose_tier_was_lowered_is_still_compared(env):
    """2025 was open, then lowered to conditional (no longer downloadable, but the public kept
    the file); 2026 is published as a new dataset: built against it all the same."""
    y25 = town(300, seed=351)
    a = publish(env, "lowered_2025", y25, town_columns())
    r = env.client.post("/api/v1/datasets/lowered_2025/tier", headers=env.tok["owner"],
                        json={"tier": "conditional", "basis": "reassessed (第十条)"})
    assert r.status_code == 200, r.json
    assert env.client.get("/api/v1/datasets/lowered_2025/download?format=csv").status_code != 200
    n = publish(env, "lowered_2026", pa.concat_tables([y25, newcomer()]), town_columns())
    assert counts(n, COLS) == counts(a, COLS)


def _cells(sizes: dict[tuple[str, str], int], start: int = 1) -> pa.Table:
    rows = [(d, s) for (d, s), m in sizes.items() for _ in range(m)]
    return pa.table({"pid": pa.array(range(start, start + len(rows)), pa.int64()), "district": [r[0] for r in rows],
                     "sex": [r[1] for r in rows]})


CELL_COLUMNS = {"pid": ("int", "sensitive"), "district": ("text", "quasi_identifier"),
                "sex": ("text", "quasi_identifier")}


def test_three_versions_of_one_dataset_v3_minus_v1(env):
    """Was a LEAK before granular counts: each version is compared with the last one only. v2 adds
    6 women in 历下区 (≥ k: shown), v3 loses 5 of the first ten (≥ k: shown): v3 − v1 = 1."""
    sizes = {(d, s): 20 for d in DISTRICTS for s in ("女", "男")}
    sizes[("历下区", "女")] = 10
    v1 = _cells(sizes)
    six = _cells({("历下区", "女"): 6}, start=1001)
    v2 = pa.concat_tables([v1, six])
    first_ten = [p for p, d, s in zip(*(v1.column(c).to_pylist() for c in ("pid", "district", "sex")), strict=True)
                 if (d, s) == ("历下区", "女")]
    v3 = v2.filter(pa.compute.invert(pa.compute.is_in(v2.column("pid"), pa.array(first_ten[:5], pa.int64()))))
    got = []
    for v in (v1, v2, v3):
        register(env, "chain", v, policy("chain", CELL_COLUMNS))
        publish_open(env, "chain", k=5)
        got.append(counts(download(env, "chain").csv, ["district", "sex"]))
    for i, j in ((0, 1), (1, 2), (0, 2)):
        assert not small_differences(got[j], [got[i]]), (i + 1, j + 1, got)


# -- row order -------------------------------------------------------------------------------------------------
def test_row_positions_of_two_yearly_files_do_not_line_up(shared):
    """Both files stored sorted by registration number, the newcomer inserted in the middle: the
    rows at the same position of the two downloads differ almost everywhere (independent secure
    shuffles), so aligning them finds no single inserted row.

    Failure probability: two independent uniform shuffles of the same ≥ 300 rows in classes of
    at most 300 rows agree at a position with probability Σ n_c² / N² ≤ 1/2 per position under
    the coarsest possible release (two classes); fewer than 5 disagreements among 300 positions
    has probability below C(300, 5) · 2^-295 < 1e-75."""
    y25 = town(300, seed=361)
    a = publish(shared, "rt3_order_2025", y25, town_columns())
    y26 = pa.concat_tables([y25.slice(0, 150), newcomer(pid=1150), y25.slice(150)])
    n = publish(shared, "rt3_order_2026", y26, town_columns())
    ra = list(zip(*(a.column(c).to_pylist() for c in COLS), strict=True))
    rn = list(zip(*(n.column(c).to_pylist() for c in COLS), strict=True))
    assert counts(n, COLS) == counts(a, COLS)  # the newcomer is held back: the same multiset
    assert sum(x != y for x, y in zip(ra, rn, strict=False)) >= 5


# -- the rule itself, at the public function ------------------------------------------------------------------
def _policy(columns: dict[str, ColumnPolicy]) -> DatasetPolicy:
    cols = {"pid": ColumnPolicy("pid", "int", "sensitive"), **columns}
    return DatasetPolicy(name="t", title="t", owner="owner", tier="unconditional", privacy_unit="pid",
                         update_frequency="monthly", one_row_per_unit=True, max_partitions=1000,
                         max_rows_per_partition=1, columns=cols)


@pytest.mark.parametrize("k", [5, 7, 10])
def test_every_combination_is_a_multiple_of_the_granularity(k):
    t = town(500, seed=371)
    pol = _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "sex": ColumnPolicy("sex", "text", "quasi_identifier"),
                   "age": ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))})
    raw = risk_scan.scan(t, {c.name: c.sensitivity for c in pol.columns.values()}, privacy_unit="pid")
    der = deidentify.make_derivative(t, pol, raw, k_target=k)
    g = granular_counts.granularity(k)
    assert der.recipe["counts"]["granularity"] == g and g >= k
    assert all(m % g == 0 and m >= k for m in counts(der.table, COLS).values())


def test_the_public_recipe_shows_the_granularity_not_the_rows_moved(env):
    publish(env, "granular_public", town(300, seed=381), town_columns())
    recipe = env.client.get("/api/v1/catalog/granular_public").json["open_release"]["recipe"]
    assert recipe["counts"]["granularity"] == 5 and recipe["counts"]["aligned"] == "multiples"
    assert not {"added_rows", "removed_rows", "suppressed_rows", "anchored"} & set(recipe["counts"])


def _derive(t: pa.Table, k: int = 5, previous: deidentify.Previous | None = None,
            published: list[deidentify.Previous] | None = None) -> deidentify.Derivative:
    pol = _policy({"district": ColumnPolicy("district", "text", "quasi_identifier"),
                   "sex": ColumnPolicy("sex", "text", "quasi_identifier"),
                   "age": ColumnPolicy("age", "int", "quasi_identifier", bounds=(0, 100))})
    raw = risk_scan.scan(t, {c.name: c.sensitivity for c in pol.columns.values()}, privacy_unit="pid")
    return deidentify.make_derivative(t, pol, raw, k_target=k, previous=previous, published=published or [])


def test_a_release_signed_before_granular_counts_keeps_its_residues():
    """The dataset's previous release has exact counts (signed before this rule: no ``counts`` in
    its recipe): the next keeps each combination's count modulo 5, so the two still differ by 0 or
    at least 5; the new release says it is aligned to exact counts (not an anchor for others)."""
    t = town(300, seed=411)
    first = _derive(t)
    keys = list(zip(*(first.table.column(c).to_pylist() for c in COLS), strict=True))
    target = Counter(keys).most_common(1)[0][0]
    drop = [i for i, kv in enumerate(keys) if kv == target][:2]  # an exact count, not a multiple of 5
    legacy_table = first.table.filter(pa.array([i not in drop for i in range(len(keys))]))
    legacy_recipe = {k: v for k, v in first.recipe.items() if k != "counts"}
    second = _derive(pa.concat_tables([t, newcomer(pid=901)]),
                     previous=deidentify.Previous(legacy_table, legacy_recipe))
    assert second.recipe["counts"]["aligned"] == "previous exact counts"
    assert not small_differences(counts(second.table, COLS), [counts(legacy_table, COLS)])

