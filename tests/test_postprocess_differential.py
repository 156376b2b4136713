"""Post-processing in Python against the DuckDB query it replaced (issue 19).

``sandbox.service.postprocess.apply`` used to run HAVING, ORDER BY and LIMIT as a DuckDB
query over the released rows (``TRY(expr)``, NULLS LAST, ties in release order). It now
runs them on the guard's one evaluator (``query_guard.evaluate``). :func:`reference` is a
copy of the DuckDB path; on random noisy rows (ints, floats negative/zero/huge, NULLs,
text keys) both must keep the same rows, in the same order, with the same notes — for
every HAVING / ORDER BY of the guard fixtures, the SQL corpus, the tests' own SQL and
:data:`EXTRA` (the evaluator's former gaps: SUBSTRING, cast rounding, NaN, overflow).
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

import query_guard
from privacy import Release
from query_guard import GuardError, QueryPlan
from query_guard.rules import type_bounds
from sandbox.engine.embedded import Engine
from sandbox.service import postprocess
from tests.test_guard_support import CATALOG, SCENARIOS, all_cases
from tests.test_sql_corpus import corpus

TESTS = Path(__file__).parent

#: The evaluator's former gaps, and what DuckDB does that Python does not by itself.
EXTRA = [
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING SUBSTRING(district, 2, 1) > 'a'"
    " ORDER BY SUBSTRING(district, -2, 3), SUBSTRING(district, 0, 2) DESC",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY SUBSTRING(district, 3, -2)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING CAST(n / 2 AS INT) % 2 = 1"
    " ORDER BY CAST(n AS INT) DESC, CAST(-n AS BIGINT)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING CAST(2.5 AS INT) = 3 AND n > 0",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY CAST(district AS INT), n",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING CAST(district AS INT) > 2",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING CAST(n AS TINYINT) > 0",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING CAST(n AS SMALLINT) < 0",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY CAST(n * 2 AS INT)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY SQRT(n) DESC",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING SQRT(n) > 1 OR SQRT(n) = SQRT(n)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING SQRT(n) >= 1e308",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY n / 0, n",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY (n - n) / 0 DESC, n",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING n / 0 > 0",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING n % 0 > 0 ORDER BY n % 3",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING n // 0 > 0 ORDER BY n // 2",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY n * n * n DESC",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY n + 9223372036854775807, n",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY -n, ABS(n) DESC",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district"
    " ORDER BY GREATEST(SQRT(n), 1), LEAST(SQRT(n), 1) DESC",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING NULLIF(SQRT(n), SQRT(n)) IS NULL",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING SQRT(n) IN (SQRT(-1), 2)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING SQRT(n) BETWEEN 0 AND SQRT(-1)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY ROUND(n), FLOOR(n / 0) DESC",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY CAST(n AS VARCHAR)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district ORDER BY UPPER(district) || LOWER(district)",
    "SELECT district, COUNT(*) AS n FROM residents GROUP BY district HAVING LENGTH(district) > 1",
    "SELECT district, AVG(income) AS a, COUNT(*) AS n FROM residents GROUP BY district"
    " HAVING CASE WHEN a > n THEN TRUE WHEN a < 0 THEN NULL END ORDER BY a * n DESC LIMIT 4",
    "SELECT district, AVG(income) AS a FROM residents GROUP BY district ORDER BY POWER(a, 2) DESC, POWER(a, 0.5)",
    "SELECT district, AVG(income) AS a FROM residents GROUP BY district HAVING CAST(a AS BIGINT) > 0",
    "SELECT district, AVG(income) AS a FROM residents GROUP BY district HAVING CAST(a AS DECIMAL(10, 2)) > 0",
    "SELECT sex, COUNT(*) AS n FROM residents GROUP BY sex ORDER BY sex DESC LIMIT 1",
]


def _strings_in_tests() -> list[str]:
    """SQL string constants of the test modules with a HAVING or ORDER BY."""
    out = []
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text.lstrip().upper().startswith("SELECT") and ("HAVING" in text or "ORDER BY" in text):
                    out.append(text)
    return out


def _plans() -> list[tuple[str, QueryPlan, dict[str, str]]]:
    """(sql, plan, released key kinds) for each accepted query with HAVING / ORDER BY."""
    sqls = [(c.sql, c.expect.get("scenario", "default")) for c in all_cases() if c.outcome == "accept"]
    sqls += [(sql, "default") for _, sql in corpus()]
    sqls += [(sql, "default") for sql in _strings_in_tests() + EXTRA]
    kinds: dict[str, str] = {}
    real = type_bounds.check_post

    def spy(expr, columns, ctx):
        kinds.update(columns)
        return real(expr, columns, ctx)

    out, seen = [], set()
    type_bounds.check_post = spy
    try:
        for sql, scenario in sqls:
            kinds.clear()
            try:
                plan = query_guard.plan(sql, SCENARIOS[scenario], CATALOG)
            except GuardError:
                continue
            if (plan.having is None and not plan.order_by) or sql in seen:
                continue
            seen.add(sql)
            out.append((sql, plan, dict(kinds)))
    finally:
        type_bounds.check_post = real
    return out


PLANS = _plans()
ENGINE = Engine()


# -- the DuckDB path as it was (the reference) ------------------------------------------
def reference(plan: QueryPlan, rel: Release):
    """``postprocess.apply`` before issue 19: one DuckDB query over the released rows."""
    visible = [c for c in rel.columns if c not in rel.hidden]
    released, notes = postprocess._finite(rel.columns, rel.rows)
    order = list(range(len(released)))
    if plan.having is not None or plan.order_by or plan.limit is not None:
        data = {name: [row[i] for row in released] for i, name in enumerate(rel.columns)}
        data["__row"] = order
        table = pa.table({k: pa.array(v) for k, v in data.items()})
        keep = _try(plan.having) if plan.having is not None else exp.true()
        query = exp.select(exp.column("__row"), exp.alias_(keep, "__keep")).from_("released")
        for item in plan.order_by:
            key = (_try(item.expression) if getattr(item, "expression", None) is not None
                   else exp.column(item.column, quoted=True))
            query = query.order_by(exp.Ordered(this=key, desc=item.descending, nulls_first=False))
        query = query.order_by(exp.column("__row"), append=True)
        result = ENGINE.execute(query.sql(dialect="duckdb"), {"released": table}).to_pydict()
        undecided = sum(k is None for k in result["__keep"])
        order = [r for r, k in zip(result["__row"], result["__keep"], strict=True) if k is True]
        if plan.limit is not None:
            order = order[:plan.limit]
        if undecided:
            notes.append(f"HAVING was NULL or could not be evaluated on {undecided} row(s) of the "
                         "noisy result; those rows are left out")
    index = [rel.columns.index(c) for c in visible]
    rows = [[released[r][i] for i in index] for r in order]
    intervals = {c: [rel.intervals[c][r] for r in order] for c in visible}
    return visible, rows, intervals, notes


def _try(node: exp.Expression) -> exp.Expression:
    node = node.copy()
    for col in node.find_all(exp.Column):
        col.set("this", exp.to_identifier(col.name, quoted=True))
        col.set("table", None)
    return exp.func("TRY", node)


# -- random released rows ------------------------------------------------------------------
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.0, 2.5, -2.5, 3.5, 1.5, 127.5, 128.0, -129.0, 32767.5,
                     1e19, -1e19, 9.3e18, 1e300, -1e300, 1e308, math.nan, math.inf, -math.inf]),
    st.floats(-1e6, 1e6), st.floats(allow_nan=True, allow_infinity=True))
INTS = st.one_of(st.sampled_from([0, 1, -1, 2, 3, 5, 127, 128, -129, 2**31, 2**62, 2**63 - 1, -(2**63)]),
                 st.integers(-1000, 1000), st.integers(-(2**63), 2**63 - 1))
TEXTS = st.one_of(st.sampled_from(["", "a", "ab", "历下区", "男", "女", "2.5", "-2.5", "10", " 3 ", "1e2",
                                   "2024-05-01", "2023-12-31", "héllo", "Z", "abc"]),
                  st.text(max_size=6))


@st.composite
def releases(draw, plan: QueryPlan, kinds: dict[str, str]) -> Release:
    columns = [o.name for o in plan.outputs]
    groups = {o.name for o in plan.outputs if o.source == "group"}
    n = draw(st.integers(0, 12))
    data = {}
    for name in columns:
        if name in groups:
            kind = kinds.get(name) or draw(st.sampled_from(["text", "numeric"]))
            values = {"text": TEXTS, "bool": st.booleans(),
                      "numeric": draw(st.sampled_from([INTS, FLOATS]))}.get(kind, TEXTS)
        else:
            values = draw(st.sampled_from([INTS, FLOATS]))
        pool = draw(st.lists(st.one_of(st.none(), values), min_size=1, max_size=4))  # ties
        data[name] = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    rows = [[data[c][r] for c in columns] for r in range(n)]
    hidden = frozenset(o.name for o in plan.outputs if o.hidden)
    intervals = {c: [(r, r) for r in range(n)] for c in columns}
    return Release(columns, rows, intervals, {}, 0.95, 1.0, 0.0, hidden=hidden)


@pytest.mark.parametrize(("sql", "plan", "kinds"), PLANS, ids=[f"{i}" for i in range(len(PLANS))])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_python_post_processing_matches_the_duckdb_query(sql, plan, kinds, data):
    rel = data.draw(releases(plan, kinds))
    assert postprocess.apply(plan, rel) == reference(plan, rel), sql


def test_every_source_of_post_processing_is_covered():
    assert len(PLANS) >= len(EXTRA) + 10
