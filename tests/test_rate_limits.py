"""Request rate limits and the failed-login throttle hold across every process serving one
workspace (production hardening; 第二十三条), with HTTP 429, ``Retry-After`` and the one
JSON error shape.

Two Flask apps over two separate ``Sandbox`` objects on one workspace stand for two
``sandbox serve`` processes (each has its own SQLite connections); one test starts a real
second process. Clocks are frozen so the sliding window's arithmetic is exact.
"""

from __future__ import annotations

import datetime as dt
import doctest
import re
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.errors import BadRequest
from sandbox.service.query_service import Sandbox
from sandbox.store import rate_limits
from sandbox.store.workspace import Workspace
from sandbox.web import create_app
from sandbox.web.console.login_throttle import LoginThrottle
from tests.conftest import FrozenClock, bearer

START = dt.datetime(2026, 1, 5, 10, 0, 30, tzinfo=dt.UTC)  # 30 s into a 60 s window
ROOT = Path(__file__).parents[1]


def two_apps(demo, clock=None, config: dict | None = None, **limits: int):
    """Two apps on one workspace, each over its own Sandbox (its own connections)."""
    sb, _creds = demo
    for name, value in limits.items():
        rate_limits.SETTING_GROUP.set(sb.conn(), name, value)
    other = Sandbox(Workspace.open(sb.ws.root))
    if clock is not None:
        sb.now = other.now = clock
    config = {"TESTING": True, **(config or {})}
    return create_app(sb, config), create_app(other, config)


def assert_429(resp, scope: str) -> int:
    assert resp.status_code == 429
    err = resp.get_json()["error"]
    assert err["code"] == "rate_limited" and scope in err["message"], err
    wait = int(resp.headers["Retry-After"])
    assert wait >= 1 and f"retry in {wait} s" in err["message"]
    return wait


def test_doctests():
    result = doctest.testmod(rate_limits)
    assert result.failed == 0 and result.attempted >= 5


def test_token_limit_holds_across_two_apps_with_429_and_retry_after(demo):
    clock = FrozenClock(START)
    a, b = (app.test_client() for app in two_apps(demo, clock, rate_limit_per_token=6))
    token = demo[1]["researcher"]["token"]
    for i in range(6):  # alternate between the two "processes": six in all are allowed
        assert (a if i % 2 else b).get("/api/v1/datasets", headers=bearer(token)).status_code == 200
    refused = a.get("/api/v1/datasets", headers=bearer(token))
    # 7 counted at 30 s into the window: the next window must first see 7 × (1 - e/60) + 1 ≤ 6,
    # i.e. e ≥ 60 × 2/7 ≈ 17.1 s, so 30 + 17.1 → 48 s.
    assert assert_429(refused, "API token") == 48
    # refused requests count too (a client ignoring Retry-After stays refused): 8 → 60 × 3/8 = 22.5
    assert assert_429(b.get("/api/v1/approvals/1/budget", headers=bearer(token)), "API token") == 53
    other_token = demo[1]["owner"]["token"]
    assert b.get("/api/v1/datasets", headers=bearer(other_token)).status_code == 200  # per token
    clock.advance(seconds=53)
    assert a.get("/api/v1/datasets", headers=bearer(token)).status_code == 200  # the window slid


def test_address_limit_counts_api_and_console_alike_but_not_health_or_static(demo):
    a, b = (app.test_client() for app in two_apps(demo, FrozenClock(START), rate_limit_per_address=4))
    token = demo[1]["researcher"]["token"]
    for _ in range(10):
        assert a.get("/healthz").status_code == 200
        with b.get("/static/sandbox.css") as static:
            assert static.status_code == 200
    assert a.get("/api/v1/catalog").status_code == 200
    assert b.get("/api/v1/datasets", headers=bearer(token)).status_code == 200
    assert a.get("/catalog").status_code == 200
    assert b.get("/login").status_code == 200
    assert_429(a.get("/api/v1/transparency"), "client address")
    page = b.get("/catalog")  # a console page: the friendly error page, in Chinese
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    assert "请求过于频繁" in page.get_data(as_text=True)
    elsewhere = {"REMOTE_ADDR": "10.1.2.3"}
    assert a.get("/api/v1/transparency", environ_base=elsewhere).status_code == 200


def test_zero_turns_a_limit_off(demo):
    a, _b = two_apps(demo, FrozenClock(START), rate_limit_per_token=0, rate_limit_per_address=0)
    c = a.test_client()
    assert all(c.get("/api/v1/catalog").status_code == 200 for _ in range(30))
    assert demo[0].conn().execute("SELECT COUNT(*) FROM rate_limit_counters").fetchone()[0] == 0


def test_settings_are_validated(demo):
    conn = demo[0].conn()
    for name, value in (("nope", 1), ("rate_limit_per_token", -1), ("rate_limit_per_token", True),
                        ("rate_limit_window_seconds", 0)):
        with pytest.raises(BadRequest):
            rate_limits.SETTING_GROUP.set(conn, name, value)
    assert rate_limits.SETTING_GROUP.get(conn, "rate_limit_per_token") == 1200


@pytest.mark.slow
def test_limit_holds_across_two_processes(demo):
    sb, creds = demo
    rate_limits.SETTING_GROUP.set(sb.conn(), "rate_limit_per_token", 10)
    rate_limits.SETTING_GROUP.set(sb.conn(), "rate_limit_window_seconds", 3600)  # no edge mid-test
    script = (
        "import sys\n"
        "from sandbox.service.query_service import Sandbox\nfrom sandbox.store.workspace import Workspace\n"
        "from sandbox.web import create_app\n"
        "c = create_app(Sandbox(Workspace.open(sys.argv[1])), {'TESTING': True}).test_client()\n"
        "h = {'Authorization': 'Bearer ' + sys.argv[2]}\n"
        "print(','.join(str(c.get('/api/v1/datasets', headers=h).status_code) for _ in range(7)))\n"
    )
    token = creds["researcher"]["token"]
    out = subprocess.run([sys.executable, "-c", script, str(sb.ws.root), token], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == ",".join(["200"] * 7)
    c = create_app(sb, {"TESTING": True}).test_client()
    codes = [c.get("/api/v1/datasets", headers=bearer(token)).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_counters_lose_no_update_under_concurrent_writers(demo):
    stores = [rate_limits.CounterStore(demo[0].ws.db_path) for _ in range(2)]
    now = START.timestamp()

    def hammer(store: rate_limits.CounterStore) -> None:
        for _ in range(100):
            store.hit(["t:k", "a:k"], now, 3600)

    threads = [threading.Thread(target=hammer, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = dict(demo[0].conn().execute("SELECT key, count FROM rate_limit_counters").fetchall())
    assert rows == {"t:k": 400, "a:k": 400}


def test_a_locked_store_lets_the_request_through(demo, monkeypatch, caplog):
    monkeypatch.setattr(rate_limits, "BUSY_TIMEOUT_MS", 50)
    app, _ = two_apps(demo, FrozenClock(START), rate_limit_per_address=1)
    blocker = sqlite3.connect(demo[0].ws.db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        c = app.test_client()
        assert [c.get("/api/v1/catalog").status_code for _ in range(3)] == [200, 200, 200]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert "request let through" in caplog.text


# -- failed console logins ------------------------------------------------------------------
def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def login(client, username: str, password: str):
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"csrf_token": csrf(page), "username": username, "password": password})


def test_login_throttle_holds_across_two_apps(demo):
    clock = FrozenClock(START)
    a, b = (app.test_client() for app in two_apps(demo, clock, {"CONSOLE_LOGIN_FAILURES": 2}))
    for c in (a, b):  # two failures for one name from one address, one on each app
        assert login(c, "owner", "wrong password").status_code == 401
    for c in (a, b):
        blocked = login(c, "Owner", "owner-demo")  # even the right password waits now
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) == 15 * 60 + 1
    assert login(b, "researcher", "researcher-demo").status_code == 302  # another name: fine
    clock.advance(minutes=15, seconds=1)
    assert login(a, "owner", "owner-demo").status_code == 302
    assert demo[0].conn().execute("SELECT COUNT(*) FROM login_failures").fetchone()[0] == 2  # per address


def test_login_throttle_per_address_across_names(demo):
    a, b = (app.test_client() for app in two_apps(demo, FrozenClock(START), {"CONSOLE_LOGIN_FAILURES": 2}))
    for i in range(8):  # 4 × 2 failures from one address, each name below its own limit
        assert login(a if i % 2 else b, f"nobody{i % 5}", "x").status_code == 401
    assert login(a, "researcher", "researcher-demo").status_code == 429
    assert login(b, "researcher", "researcher-demo").status_code == 429
    other = b.application.test_client()
    page = other.get("/login", environ_base={"REMOTE_ADDR": "10.9.9.9"}).get_data(as_text=True)
    resp = other.post("/login", data={"csrf_token": csrf(page), "username": "researcher",
                                      "password": "researcher-demo"}, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert resp.status_code == 302


NAMES = st.sampled_from(["alice", "Alice", "bob", ""])
ADDRESSES = st.sampled_from(["10.0.0.1", "10.0.0.2"])
STEPS = st.lists(st.tuples(st.sampled_from(["fail", "ok", "check"]), ADDRESSES, NAMES,
                           st.integers(min_value=0, max_value=40)), max_size=40)


def test_shared_login_throttle_answers_like_the_reference_model(tmp_path):
    """The SQLite store against the in-process model it replaced, on random event sequences."""
    store = rate_limits.CounterStore(Workspace.init(tmp_path / "ws").db_path)

    @given(STEPS)
    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    def check(steps):
        store.conn().execute("DELETE FROM login_failures")
        shared, reference = rate_limits.LoginFailures(store, 2, 60), LoginThrottle(2, 60)
        now = START
        for op, address, name, advance in steps:
            now += dt.timedelta(seconds=advance)
            if op == "fail":
                shared.failed(address, name, now)
                reference.failed(address, name, now)
            elif op == "ok":
                shared.succeeded(address, name)
                reference.succeeded(address, name)
            assert shared.retry_after(address, name, now) == reference.retry_after(address, name, now)

    check()
