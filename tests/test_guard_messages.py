"""Every refusal names the offending construct and where it is.

For each refused fixture case: the error has a stable code from ``ERROR_CODES``, a
one-line message ending in "(line L, column C)" that matches its ``line``/``column``,
and the text found at that position in the submitted SQL is named in the message (the
function, column, table, keyword or literal that broke the rule). Codes whose subject is
the whole text (too_complex, sql_syntax on an empty query) are exempt from the naming
check only.
"""

from __future__ import annotations

import re

import pytest
from test_guard_support import CATALOG, SCENARIOS, all_cases

from query_guard import ERROR_CODES, GuardError, plan

REFUSED = [c for c in all_cases() if c.outcome == "refuse"]
WHOLE_TEXT = {"too_complex"}


def refusal(case) -> GuardError:
    with pytest.raises(GuardError) as info:
        plan(case.sql, SCENARIOS[case.expect.get("scenario", "default")], CATALOG)
    return info.value


def word_at(sql: str, line: int, column: int) -> str:
    text = sql.splitlines()[line - 1][column - 1 :] if sql.splitlines() else ""
    match = re.match(r"[\w\u4e00-\u9fff]+|'[^']*'?|\"[^\"]*\"?|\S", text)
    return match.group(0) if match else ""


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c.id)
def test_refusal_names_construct_and_position(case):
    err = refusal(case)
    assert err.code in ERROR_CODES
    assert "\n" not in err.message
    assert err.line is not None and err.column is not None, err.message
    assert err.message.endswith(f"(line {err.line}, column {err.column})"), err.message
    assert err.position == {"line": err.line, "column": err.column}
    if err.code in WHOLE_TEXT or not case.sql.strip() or case.sql.lstrip().startswith("--"):
        return
    word = word_at(case.sql, err.line, err.column).strip("'\"").lower()
    assert word, (err.message, err.line, err.column)
    assert word in err.message.lower(), f"{word!r} not named in: {err.message}"


def test_syntax_error_points_at_the_bad_token():
    err = refusal(
        type("C", (), {"sql": "SELECT COUNT(*)\nFROM residents\nWHERE age >> ", "expect": {}})()
    )
    assert err.code == "sql_syntax"
    assert err.line == 3


def test_out_of_scope_message_cites_the_regulation():
    err = refusal(type("C", (), {"sql": "SELECT COUNT(*) FROM tax_records", "expect": {}})())
    assert err.code == "out_of_scope" and "第十五条" in err.message
    assert (err.line, err.column) == (1, 22)


def test_identifier_inside_function_is_located_at_the_column():
    sql = "SELECT COUNT(*) FROM residents\nWHERE length(  phone ) > 3"
    err = refusal(type("C", (), {"sql": sql, "expect": {}})())
    assert (err.code, err.line, err.column) == ("identifier_column", 2, 16)
    assert "phone" in err.message
