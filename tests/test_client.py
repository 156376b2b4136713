"""``sandbox.client.Client`` against a real waitress server on loopback (issue 8)."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from waitress import create_server

from sandbox.client import Client, ClientError, release_info, to_table
from sandbox.web import create_app


@pytest.fixture
def server(demo):
    """The demo workspace served by waitress on a free loopback port, in a thread."""
    sb, creds = demo
    srv = create_server(create_app(sb), host="127.0.0.1", port=0, threads=4)
    stopping = threading.Event()

    def run() -> None:
        try:
            srv.run()
        except (OSError, ValueError):  # the loop's sockets closed under it at teardown
            if not stopping.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", creds
    stopping.set()
    srv.close()
    thread.join(timeout=5)


@pytest.fixture
def api(server):
    url, creds = server
    return Client(url, creds["researcher"]["token"], timeout=60)


def test_query_returns_arrow_table_with_intervals(api, server):
    approval = server[1]["researcher"]["approval_id"]
    before = api.budget(approval)["epsilon"]["spent"]
    t = api.query(
        "SELECT district, AVG(income) FROM residents GROUP BY district", approval, epsilon=0.5
    )
    assert isinstance(t, pa.Table)
    assert t.column_names == ["district", "AVG(income)", "AVG(income)_lower", "AVG(income)_upper",
                              "AVG(income)_not_informative"]  # issue 13: the flag per row
    assert t.schema.field("AVG(income)_not_informative").type == pa.bool_()
    assert "noise" in release_info(t)["accuracy_note"]
    assert t.num_rows == 12
    assert t.schema.field("district").type == pa.string()
    assert t.schema.field("AVG(income)_lower").type == pa.float64()
    for lo, hi in zip(
        t["AVG(income)_lower"].to_pylist(), t["AVG(income)_upper"].to_pylist(), strict=True
    ):
        assert lo <= hi
    info = release_info(t)
    assert info["query_id"].startswith("q_") and info["cached"] is False
    assert info["receipt"]["log_index"] >= 0
    assert api.budget(approval)["epsilon"]["spent"] == pytest.approx(before + info["epsilon_spent"])
    again = api.query(
        "select district, avg(income) from residents group by district", approval, epsilon=0.5
    )
    assert release_info(again)["cached"] is True
    assert again.column("AVG(income)").equals(t.column("AVG(income)"))


def test_count_column_and_confidence(api, server):
    approval = server[1]["researcher"]["approval_id"]
    t = api.query("SELECT COUNT(*) FROM residents", approval, epsilon=0.25, confidence=0.9)
    assert t.num_rows == 1 and "COUNT(*)_lower" in t.column_names
    assert release_info(t)["confidence"]["COUNT(*)"] == pytest.approx(0.9)


def test_refusal_raises_client_error_with_position(api, server):
    approval = server[1]["researcher"]["approval_id"]
    with pytest.raises(ClientError) as info:
        api.query("SELECT COUNT(* FROM residents", approval)
    err = info.value
    assert err.status == 400 and err.code and err.message and err.position is not None
    with pytest.raises(ClientError) as info:
        api.query("SELECT name FROM residents", approval)
    assert info.value.status == 400


def test_bad_token_unknown_approval_and_unreachable_server(server):
    url, creds = server
    with pytest.raises(ClientError) as info:
        Client(url, "sbx_wrong").datasets()
    assert info.value.status == 401
    api = Client(url, creds["researcher"]["token"])
    with pytest.raises(ClientError) as info:
        api.budget(999)
    assert info.value.status == 404
    with pytest.raises(ClientError) as info:
        Client("http://127.0.0.1:9", "x", timeout=2).datasets()
    assert info.value.code == "connection_error" and info.value.status is None
    assert "sbx_" not in repr(api)


def test_datasets_and_preview(api, server):
    approval = server[1]["researcher"]["approval_id"]
    names = {d["name"] for d in api.datasets()}
    assert {"residents", "clinic_visits"} <= names
    before = api.budget(approval)["epsilon"]["spent"]
    p = api.preview("SELECT COUNT(*) FROM residents", approval, epsilon=0.5)
    assert p["preview"] is True and "COUNT(*)" in p["columns"]
    target = api.preview(
        "SELECT COUNT(*) FROM residents",
        approval,
        accuracy={"column": "COUNT(*)", "half_width": 10},
    )
    assert target["epsilon"] > 0
    assert api.budget(approval)["epsilon"]["spent"] == before


def test_to_table_is_pure_and_handles_empty_and_null_intervals():
    t = to_table(
        {
            "columns": ["k", "n"],
            "rows": [["a", 1.5], ["b", None]],
            "accuracy": {"n": {"confidence": 0.95, "intervals": [[1.0, 2.0], None]}},
        }
    )
    assert t.column("n_lower").to_pylist() == [1.0, None]
    empty = to_table({"columns": ["k", "n"], "rows": [], "accuracy": {"n": {"intervals": []}}})
    assert empty.num_rows == 0 and empty.column_names == ["k", "n", "n_lower", "n_upper"]
