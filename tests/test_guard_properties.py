"""Property tests: whatever text arrives, ``plan`` returns a plan or raises GuardError.

Three generators (hypothesis, bounded example counts so the suite stays fast):

* random text, including SQL-ish alphabets;
* random trees built from sqlglot expression classes — allowed and refused functions,
  identifier / unit / reserved / out-of-scope columns, tables, joins, subqueries, nesting
  — printed as DuckDB SQL;
* random token-level mutations (drop, duplicate, swap, insert) of the fixture cases.

Never another exception (``internal_error`` counts as a failure: it is the guard's
fail-closed wrapper for bugs), never RecursionError. Every accepted plan's engine query
reads only scenario datasets and their allowed, non-identifier columns, and runs on
DuckDB over small tables full of NULLs, zeros and out-of-bounds values without error.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp
from test_guard_support import CATALOG, SCENARIOS, all_cases, run_engine

from query_guard import GuardError, QueryPlan, plan

SCENARIO = SCENARIOS["default"]
INTERNAL = {"__src", "__ksrc", "__keyed", "__groups", "__kept", "__keep_ids"}
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
FEWER = settings(SETTINGS, max_examples=100)


def edge_tables() -> dict[str, pa.Table]:
    """Few rows, every awkward value: NULLs, zeros, negatives, out-of-bounds, big."""
    ages = [None, 0, -5, 100, 250, 2**31 - 1, 37]
    incomes = [None, 0.0, -1.0, 1e300, float("nan"), 500000.0, 12.5]
    n = len(ages)
    residents = pa.table(
        {
            "person_id": pa.array([1, 2, 3, 4, None, 6, 6], type=pa.int64()),
            "name": ["a", None, "c", "d", "e", "f", "g"],
            "id_number": ["1"] * n,
            "phone": ["2"] * n,
            "district": ["历下区", None, "x", "", "历下区", "市中区", "0"],
            "age": pa.array(ages, type=pa.int64()),
            "sex": ["男", "女", None, "男", "女", "x", "男"],
            "education": ["本科", None, "1", "2", "3", "本科", "研究生"],
            "employment": ["在职", "学生", None, "x", "在职", "在职", "退休"],
            "income": pa.array(incomes, type=pa.float64()),
        }
    )
    visits = pa.table(
        {
            "person_id": pa.array([1, 1, 1, 2, None, 6, 6, 9], type=pa.int64()),
            "visit_date": pa.array(
                [
                    dt.date(2023, 1, 1),
                    None,
                    dt.date(1900, 1, 1),
                    dt.date(2024, 12, 31),
                    dt.date(2024, 2, 29),
                    dt.date(2030, 1, 1),
                    dt.date(2023, 6, 1),
                    dt.date(2023, 6, 2),
                ],
                type=pa.date32(),
            ),
            "department": ["内科", "外科", None, "内科", "x", "儿科", "内科", "内科"],
            "cost": pa.array(
                [None, 0.0, -3.0, 5000.0, 1e9, 12.0, 0.5, float("inf")], type=pa.float64()
            ),
        }
    )
    return {"residents": residents, "clinic_visits": visits}


TABLES = edge_tables()


def allowed_columns() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name in SCENARIO.datasets:
        info = CATALOG.table(name)
        assert info is not None
        out[name] = {
            c
            for c, ci in info.columns.items()
            if not ci.is_identifier and SCENARIO.allows_column(name, c)
        }
        out[name] |= {info.privacy_unit, "__rowid"}
    return out


ALLOWED = allowed_columns()


def check_engine_scope(p: QueryPlan) -> None:
    """Walk the engine queries: only scenario tables, their allowed columns, or ``__*``."""
    check_query_scope(p.engine_query)
    if p.materialisation is not None:
        check_query_scope(p.materialisation.keep_query)
        check_query_scope(p.materialisation.materialised_query, p.materialisation.column)


def check_query_scope(query: exp.Expr, keep_column: str = "") -> None:
    aliases: dict[str, str] = {}
    for table in query.find_all(exp.Table):
        name = table.name.lower()
        assert name in INTERNAL or name in SCENARIO.datasets, name
        aliases[(table.alias or name).lower()] = name
    for sub in query.find_all(exp.Subquery):
        aliases[sub.alias.lower()] = "__subquery"
    for col in query.find_all(exp.Column):
        dataset = aliases[col.table.lower()] if col.table else None
        if dataset is None or dataset.startswith("__"):
            assert col.name.startswith("__"), col.sql()
            continue
        if keep_column and col.name == keep_column:
            continue  # the sandbox-made keep flag of the materialised query
        assert col.name.lower() in ALLOWED[dataset], (dataset, col.name)


def must_plan_or_refuse(sql: str) -> QueryPlan | None:
    try:
        p = plan(sql, SCENARIO, CATALOG)
    except GuardError as err:
        assert err.code != "internal_error", (sql, repr(err.__cause__))
        return None
    check_engine_scope(p)
    return p


# -- 1. random text ------------------------------------------------------------------

SQLISH = st.lists(
    st.sampled_from(
        list("SELECTFROMWHEREGROUPBYcountsumavg(*),.;'\"-/+ \n_0123456789")
        + [
            "residents",
            "clinic_visits",
            "income",
            "age",
            "district",
            "person_id",
            "name",
            " JOIN ",
            " ON ",
            "__rowid",
            "NOT ",
            "(",
            ")",
            "--",
            "/*",
            "*/",
            "$$",
            "历下区",
        ]
    ),
    max_size=60,
).map("".join)


@SETTINGS
@given(st.one_of(st.text(max_size=200), SQLISH.map(lambda s: "SELECT " + s)))
def test_random_text_plans_or_refuses(text):
    must_plan_or_refuse(text)


# -- 2. random sqlglot trees ---------------------------------------------------------

COLUMNS = [
    "age",
    "income",
    "district",
    "sex",
    "education",
    "employment",
    "person_id",
    "name",
    "phone",
    "__rowid",
    "cost",
    "department",
    "visit_date",
    "nope",
    "tax_paid",
]
TABLE_NAMES = ["residents", "clinic_visits", "tax_records", "information_schema.tables", "other"]

leaves = st.one_of(
    st.sampled_from(COLUMNS).map(exp.column),
    st.integers(-10, 10**6).map(exp.Literal.number),
    st.sampled_from([0, 0.5, -1, 1e20]).map(exp.Literal.number),
    st.sampled_from(["历下区", "x", "2024-01-01", "%a%", ""]).map(exp.Literal.string),
    st.just(exp.Null()),
    st.booleans().map(lambda b: exp.Boolean(this=b)),
)

BINARY = [
    exp.Add,
    exp.Sub,
    exp.Mul,
    exp.Div,
    exp.IntDiv,
    exp.Mod,
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.LT,
    exp.GTE,
    exp.And,
    exp.Or,
    exp.Like,
    exp.DPipe,
    exp.Pow,
]
UNARY = [
    exp.Neg,
    exp.Not,
    exp.Abs,
    exp.Floor,
    exp.Ceil,
    exp.Sqrt,
    exp.Upper,
    exp.Length,
    exp.Year,
    exp.Month,
    exp.Paren,
]
ANONYMOUS = [
    "getenv",
    "random",
    "hash",
    "read_text",
    "date_part",
    "var",
    "repeat",
    "error",
    "md5",
    "current_setting",
]
AGGS = [exp.Count, exp.Sum, exp.Avg, exp.Variance, exp.Stddev, exp.Median, exp.Max]


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(BINARY), children, children).map(
            lambda t: t[0](this=t[1], expression=t[2])
        ),
        st.tuples(st.sampled_from(UNARY), children).map(lambda t: t[0](this=t[1])),
        st.tuples(children, children, children).map(
            lambda t: exp.Case(ifs=[exp.If(this=t[0], true=t[1])], default=t[2])
        ),
        st.tuples(children, st.sampled_from(["INT", "DOUBLE", "VARCHAR", "DATE", "BLOB"])).map(
            lambda t: exp.Cast(this=t[0], to=exp.DataType.build(t[1]))
        ),
        st.tuples(st.sampled_from(ANONYMOUS), st.lists(children, max_size=2)).map(
            lambda t: exp.Anonymous(this=t[0], expressions=t[1])
        ),
        st.tuples(children, st.lists(leaves, min_size=1, max_size=3)).map(
            lambda t: exp.In(this=t[0], expressions=t[1])
        ),
        st.tuples(children, children).map(lambda t: exp.Coalesce(this=t[0], expressions=[t[1]])),
    )


scalars = st.recursive(leaves, _extend, max_leaves=12)


def _aggregate(arg, kind, distinct):
    if arg is None:
        return exp.Count(this=exp.Star())
    if distinct:
        return kind(this=exp.Distinct(expressions=[arg]))
    return kind(this=arg)


aggregates = st.builds(
    _aggregate, st.one_of(st.none(), scalars), st.sampled_from(AGGS), st.booleans()
)
select_items = st.one_of(
    aggregates,
    aggregates,
    scalars,
    st.tuples(aggregates, scalars).map(lambda t: exp.Div(this=t[0], expression=t[1])),
)


@st.composite
def queries(draw):
    tables = draw(st.lists(st.sampled_from(TABLE_NAMES), min_size=1, max_size=2))
    items = draw(st.lists(select_items, min_size=1, max_size=3))
    query = exp.select(*items)
    source: exp.Expression = exp.to_table(tables[0]).as_("a")
    if draw(st.booleans()):
        inner = exp.select(*draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=4)))
        inner = inner.from_(tables[0])
        if draw(st.booleans()):
            inner = inner.where(draw(scalars))
        source = inner.subquery("a")
    query = query.from_(source)
    if len(tables) > 1:
        on = draw(st.sampled_from(["a.person_id = b.person_id", "a.age = b.cost", "TRUE"]))
        query = query.join(
            exp.to_table(tables[1]).as_("b"),
            on=on,
            join_type=draw(st.sampled_from(["", "left", "cross", "full"])),
        )
    if draw(st.booleans()):
        query = query.where(draw(scalars))
    if draw(st.booleans()):
        query = query.group_by(*draw(st.lists(scalars, min_size=1, max_size=2)))
    if draw(st.booleans()):
        query = query.having(draw(scalars))
    if draw(st.booleans()):
        query = query.order_by(draw(scalars)).limit(draw(st.integers(0, 10)))
    return query.sql(dialect="duckdb")


@FEWER
@given(queries())
def test_random_trees_plan_or_refuse_and_run(sql):
    p = must_plan_or_refuse(sql)
    if p is not None:
        run_engine(p.engine_sql("duckdb"), TABLES)


# -- 3. mutations of the fixture cases ------------------------------------------------

CASES = [c.sql for c in all_cases() if len(c.sql) < 2000]
PIECES = [
    "(",
    ")",
    ",",
    ";",
    "--",
    "'",
    '"',
    "*",
    "name",
    "person_id",
    "__rowid",
    "SELECT",
    "FROM",
    "JOIN",
    "UNION",
    "OVER ()",
    "/*",
    "*/",
    "0",
    "/ 0",
    "tax_records",
]


@st.composite
def mutated(draw):
    tokens = draw(st.sampled_from(CASES)).split(" ")
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["drop", "dup", "swap", "insert"]))
        i = draw(st.integers(0, max(0, len(tokens) - 1)))
        if op == "drop" and len(tokens) > 1:
            tokens.pop(i)
        elif op == "dup":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens.insert(i, draw(st.sampled_from(PIECES)))
    return " ".join(tokens)


@SETTINGS
@given(mutated())
def test_mutated_fixtures_plan_or_refuse_and_run(sql):
    p = must_plan_or_refuse(sql)
    if p is not None:
        run_engine(p.engine_sql("duckdb"), TABLES)


def test_accepted_fixtures_run_on_edge_data():
    """Every accepted fixture's engine query runs without error on awkward data."""
    for case in all_cases():
        if case.outcome != "accept":
            continue
        p = plan(case.sql, SCENARIOS[case.expect.get("scenario", "default")], CATALOG)
        check_engine_scope(p)
        run_engine(p.engine_sql("duckdb"), TABLES)


def test_deep_nesting_never_recurses():
    for sql in [
        "SELECT COUNT(*) FROM residents WHERE " + "(" * 5000 + "1" + ")" * 5000,
        "SELECT " + "NOT " * 5000 + "1",
        "SELECT COUNT(*) FROM residents WHERE " + " AND ".join(["age > 1"] * 900),
        "SELECT " + "CASE WHEN 1 THEN " * 500 + "1" + " END" * 500,
    ]:
        must_plan_or_refuse(sql)
