"""One data-driven test per guard rule (sqlglot style): the SQL cases live in
``tests/fixtures/guard/<rule>.sql`` (accepted, with the expected plan summary) and
``<rule>__invalid.sql`` (refused, with the expected error code and, for some, position).
See ``tests/fixtures/guard/README.md`` for the header format.
"""

from __future__ import annotations

import pytest
from test_guard_support import cases, check


@pytest.mark.parametrize("case", cases("limit_size"), ids=lambda c: c.id)
def test_limit_size(case):
    check(case)


@pytest.mark.parametrize("case", cases("single_select"), ids=lambda c: c.id)
def test_single_select(case):
    check(case)


@pytest.mark.parametrize("case", cases("allow_nodes"), ids=lambda c: c.id)
def test_allow_nodes(case):
    check(case)


@pytest.mark.parametrize("case", cases("reserved_names"), ids=lambda c: c.id)
def test_reserved_names(case):
    check(case)


@pytest.mark.parametrize("case", cases("canonical_functions"), ids=lambda c: c.id)
def test_canonical_functions(case):
    check(case)


@pytest.mark.parametrize("case", cases("dataset_scope"), ids=lambda c: c.id)
def test_dataset_scope(case):
    check(case)


@pytest.mark.parametrize("case", cases("column_scope"), ids=lambda c: c.id)
def test_column_scope(case):
    check(case)


@pytest.mark.parametrize("case", cases("flatten_subqueries"), ids=lambda c: c.id)
def test_flatten_subqueries(case):
    check(case)


@pytest.mark.parametrize("case", cases("join_on_unit"), ids=lambda c: c.id)
def test_join_on_unit(case):
    check(case)


@pytest.mark.parametrize("case", cases("privacy_unit"), ids=lambda c: c.id)
def test_privacy_unit(case):
    check(case)


@pytest.mark.parametrize("case", cases("split_aggregates"), ids=lambda c: c.id)
def test_split_aggregates(case):
    check(case)


@pytest.mark.parametrize("case", cases("measure_kinds"), ids=lambda c: c.id)
def test_measure_kinds(case):
    check(case)


@pytest.mark.parametrize("case", cases("type_bounds"), ids=lambda c: c.id)
def test_type_bounds(case):
    check(case)


@pytest.mark.parametrize("case", cases("safe_arithmetic"), ids=lambda c: c.id)
def test_safe_arithmetic(case):
    check(case)


@pytest.mark.parametrize("case", cases("public_domains"), ids=lambda c: c.id)
def test_public_domains(case):
    check(case)


@pytest.mark.parametrize("case", cases("clamp_values"), ids=lambda c: c.id)
def test_clamp_values(case):
    check(case)


@pytest.mark.parametrize("case", cases("bound_contributions"), ids=lambda c: c.id)
def test_bound_contributions(case):
    check(case)
