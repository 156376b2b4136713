"""Policy files: every mistake names the field and the line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from sandbox.errors import PolicyError
from sandbox.governance.policy import check_against, parse_policy

DEMO = Path(__file__).parents[1] / "sandbox" / "demo" / "policies" / "residents.toml"


def text() -> str:
    return DEMO.read_text(encoding="utf-8")


def line_of(src: str, needle: str) -> int:
    return next(i for i, line in enumerate(src.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    "old,new,field,needle",
    [
        ('tier = "conditional"', 'tier = "secret"', "dataset.tier", "tier ="),
        ("bounds = [0, 100]", "bounds = [100, 0]", "columns.age.bounds", "bounds = [100, 0]"),
        ('privacy_unit = "person_id"', 'privacy_unit = "citizen"', "dataset.privacy_unit", "privacy_unit ="),
        ('type = "float"', 'type = "decimal"', "columns.income.type", 'type = "decimal"'),
        ("bounds = [0, 500000]", 'bounds = ["a", 5]', "columns.income.bounds", 'bounds = ["a", 5]'),
    ],
)
def test_policy_errors_name_field_and_line(old, new, field, needle):
    src = text().replace(old, new, 1)
    with pytest.raises(PolicyError) as info:
        parse_policy(src, "residents.toml")
    msg = info.value.message
    assert field in msg
    assert f"residents.toml:{line_of(src, needle)}:" in msg


ARROW = {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "date": pa.date32(), "bool": pa.bool_()}


def schema_of(policy, drop=(), extra=()):
    return pa.schema([(c.name, ARROW[c.type]) for c in policy.columns.values() if c.name not in drop] + list(extra))


def test_missing_column_and_wrong_type_against_data():
    policy = parse_policy(text(), "residents.toml")
    schema = schema_of(policy, drop=("income",))
    with pytest.raises(PolicyError, match="income.*not in the data file"):
        check_against(policy, schema)
    schema = pa.schema([(c, pa.int64() if c in ("person_id", "age", "income") else pa.string()) for c in policy.columns])
    check_against(policy, schema)  # int income is acceptable as float
    schema = pa.schema([(c, pa.string()) for c in policy.columns])
    with pytest.raises(PolicyError, match=r"columns\.person_id\.type.*declared int"):
        check_against(policy, schema)


def test_undeclared_column_is_refused():
    policy = parse_policy(text(), "residents.toml")
    schema = schema_of(policy, extra=[("secret_notes", pa.string())])
    with pytest.raises(PolicyError, match="secret_notes"):
        check_against(policy, schema)
