"""Request rate limits and the console's failed-login throttle, shared by every process that
serves one workspace (production hardening; 第二十三条: warning and response measures).

Several ``sandbox serve`` processes may serve one workspace, so the counts live in the
workspace's SQLite store (migration 3), not in process memory.

Why not Flask-Limiter / ``limits``: their storage backends are memory (per process), Redis,
Memcached, MongoDB and etcd; none keeps counters in SQLite (a SQLite backend was proposed
and closed unmerged: https://github.com/alisaifee/limits/issues/227). A government intranet
deployment of this sandbox has one folder and no Redis, and a custom ``limits`` storage would
be more code than the one statement below. So this module is small and tested instead
(``tests/test_rate_limits.py``).

**Requests** (:class:`RateLimiter`): a *sliding window counter* per key — the API token
(its SHA-256, never the token) and the client address — as Cloudflare describes it: one row
per key holds the count of the current fixed window and of the one before, and the request
rate is estimated as ``previous × (unexpired share of the previous window) + current``
(:func:`estimate`). That smooths the burst a fixed window allows at its edge, and costs one
UPSERT per request for all keys together (:meth:`CounterStore.hit`: ``INSERT … ON CONFLICT
DO UPDATE … RETURNING``), in its own autocommit transaction on a connection with
``synchronous=NORMAL``: the write lock is held for microseconds, with no fsync (losing the
last counts in a power cut only loosens a limit). Refused requests count too, so a client
that ignores ``Retry-After`` stays refused. If the store stays locked beyond
:data:`BUSY_TIMEOUT_MS` the request is let through and a warning logged: a rate limit is
protection against overload, not a privacy invariant (budget, guard and audit log are
enforced by the service whatever happens here).

**Failed logins** (:class:`LoginFailures`): the exact sliding window of the console's
:class:`sandbox.web.console.login_throttle.LoginThrottle` (same rules, same answers), with each failure a
row keyed by (address, user name) plus one keyed by (address, ``""``) for the per-address
count. Rows leave the table once they leave the window.

Settings (:data:`SETTINGS`) are rows of the workspace's ``settings`` table named
``rate_limits.<name>``, like the workflow's (``sandbox.governance.workflow.SETTINGS``); each process
re-reads them every :data:`SETTINGS_TTL_SECONDS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from sandbox.clock import Clock, utc_now
from sandbox.store.settings import Setting, SettingGroup
from sandbox.store.workspace import connect

log = logging.getLogger(__name__)

#: How long a counter write waits for another writer (a release holds the lock for
#: milliseconds) before the request is let through uncounted.
BUSY_TIMEOUT_MS: Final = 2000
SETTINGS_TTL_SECONDS: Final = 10.0

SETTING_GROUP: Final = SettingGroup(
    "rate_limits",
    Setting("rate_limit_per_token", 1200,
            "requests per window with one API token (every endpoint); 0 turns the limit off"),
    Setting("rate_limit_per_address", 2400,
            "requests per window from one client address (API and console, not static files "
            "or /healthz); 0 turns the limit off"),
    Setting("rate_limit_window_seconds", 60,
            "the sliding window, in seconds, over which requests are counted", minimum=1),
)
SETTINGS: Final[dict[str, Setting]] = SETTING_GROUP.settings



# -- the sliding window counter (pure) --------------------------------------------------------
def estimate(count: int, previous: int, elapsed: float, window: int) -> float:
    """Requests in the last ``window`` seconds, estimated from two fixed windows.

    ``count`` requests so far in the current window, which began ``elapsed`` seconds ago,
    and ``previous`` in the window before, taken as spread evenly over it.

    >>> estimate(10, 0, 30, 60)
    10.0
    >>> estimate(1, 60, 15, 60)   # three quarters of the previous window still count
    46.0
    """
    return previous * max(0.0, (window - elapsed) / window) + count


def wait_seconds(limit: int, window: int, count: int, previous: int, elapsed: float) -> int:
    """Whole seconds until one more request fits under ``limit``, if none is made meanwhile.

    >>> wait_seconds(10, 60, 3, 0, 5)
    0
    >>> wait_seconds(3, 60, 4, 0, 3)    # next window: 4 × (1 - e/60) + 1 ≤ 3 at e = 30
    87
    >>> wait_seconds(10, 60, 2, 20, 0)  # this window: 20 × (1 - e/60) + 3 ≤ 10 at e = 39
    39
    """
    if limit < 1:
        return 0
    if estimate(count + 1, previous, elapsed, window) <= limit:
        return 0
    room = limit - count - 1
    if room >= 0 and previous > 0:  # wait for enough of the previous window to expire
        needed = window * (1 - room / previous)
        if needed < window:
            return max(1, math.ceil(needed - elapsed - 1e-9))
    # the next window: the current count becomes "previous"
    room = limit - 1
    needed = 0.0 if count <= room else window * (1 - room / count)
    return max(1, math.ceil(window - elapsed + needed - 1e-9))


@dataclass(frozen=True)
class Counter:
    """One key's row after this request was counted."""

    key: str
    window_start: int
    count: int
    previous: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int = 0
    scope: Literal["token", "address", ""] = ""
    limit: int = 0
    window: int = 0


def decide(counters: Sequence[Counter], limits: dict[str, int], window: int, now: float) -> Decision:
    """Refused when any key's estimate exceeds its limit; ``retry_after`` is the longest wait.

    >>> c = [Counter("t:x", 0, 11, 0), Counter("a:y", 0, 11, 0)]
    >>> decide(c, {"t": 10, "a": 100}, 60, 30.0)
    Decision(allowed=False, retry_after=41, scope='token', limit=10, window=60)
    >>> decide(c, {"t": 0, "a": 100}, 60, 30.0).allowed
    True
    """
    worst: Decision | None = None
    for c in counters:
        kind = c.key.split(":", 1)[0]
        limit = limits.get(kind, 0)
        if limit < 1:
            continue
        elapsed = max(0.0, now - c.window_start)
        if estimate(c.count, c.previous, elapsed, window) <= limit:
            continue
        wait = max(1, wait_seconds(limit, window, c.count, c.previous, elapsed))
        if worst is None or wait > worst.retry_after:
            scope: Literal["token", "address"] = "token" if kind == "t" else "address"
            worst = Decision(False, wait, scope, limit, window)
    return worst or Decision(True)


def token_key(token: str) -> str:
    """The counter key of an API token: its SHA-256 (SECURITY: never the token itself)."""
    return "t:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def address_key(address: str) -> str:
    return "a:" + address[:64]


# -- the store ------------------------------------------------------------------------------------
_HIT_SQL = """
INSERT INTO rate_limit_counters (key, window_start, count, previous) VALUES {values}
ON CONFLICT(key) DO UPDATE SET
    previous = CASE WHEN excluded.window_start <= window_start THEN previous
                    WHEN excluded.window_start = window_start + ? THEN count ELSE 0 END,
    count = CASE WHEN excluded.window_start <= window_start THEN count + 1 ELSE 1 END,
    window_start = MAX(window_start, excluded.window_start)
RETURNING key, window_start, count, previous
"""


class CounterStore:
    """Connections (one per thread) to the workspace store for counter writes.

    ``synchronous=NORMAL``: in WAL mode a commit then needs no fsync; the releases' own
    transactions keep ``FULL`` on their own connections (a later FULL commit syncs these
    frames too). ``busy_timeout`` is short: see :data:`BUSY_TIMEOUT_MS`.
    """

    def __init__(self, db_path: Path):
        self.db_path = db_path
        self._local = threading.local()
        self._pruned_window = -1

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.db_path)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.conn = conn
        return conn

    def hit(self, keys: Sequence[str], now: float, window: int) -> list[Counter]:
        """Count one request against every key: ONE statement, its own short transaction."""
        start = int(now // window) * window
        values = ",".join("(?, ?, 1, 0)" for _ in keys)
        params: list[object] = [v for key in keys for v in (key, start)]
        rows = self.conn().execute(_HIT_SQL.format(values=values), (*params, window)).fetchall()
        if start > self._pruned_window:  # once per window per process: forget idle keys
            self._pruned_window = start
            self.conn().execute("DELETE FROM rate_limit_counters WHERE window_start < ?", (start - window,))
        return [Counter(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]


class RateLimiter:
    """Per-token and per-address request limits over a :class:`CounterStore`."""

    def __init__(self, store: CounterStore, *, now: Clock = utc_now,
                 settings_ttl: float = SETTINGS_TTL_SECONDS):
        self.store = store
        self.now = now
        self.settings_ttl = settings_ttl
        self._settings: dict[str, int] = {}
        self._read_at = -math.inf

    def settings(self) -> dict[str, int]:
        if time.monotonic() - self._read_at >= self.settings_ttl:
            conn = self.store.conn()
            self._settings = {name: SETTING_GROUP.get(conn, name) for name in SETTINGS}
            self._read_at = time.monotonic()
        return self._settings

    def check(self, *, token: str | None, address: str | None) -> Decision:
        """Count this request and decide; never raises (a locked store lets it through)."""
        s = self.settings()
        limits = {"t": s["rate_limit_per_token"], "a": s["rate_limit_per_address"]}
        keys = []
        if token and limits["t"] > 0:
            keys.append(token_key(token))
        if address and limits["a"] > 0:
            keys.append(address_key(address))
        if not keys:
            return Decision(True)
        window = max(1, s["rate_limit_window_seconds"])
        now = self.now().timestamp()
        try:
            counters = self.store.hit(keys, now, window)
        except sqlite3.OperationalError as err:
            log.warning("rate-limit counters not written (%s); request let through", err)
            return Decision(True)
        return decide(counters, limits, window, now)


# -- failed console logins ------------------------------------------------------------------------
class LoginFailures:
    """Failed logins per (address, user name) and per address, in a sliding window, shared
    by every process on the workspace.

    The rules of :class:`sandbox.web.console.login_throttle.LoginThrottle` (which stays as the in-process
    reference model that ``tests/test_rate_limits.py`` cross-checks this against): after
    ``limit`` failures for one name from one address, or ``4 * limit`` from one address,
    further attempts wait until the oldest counted failure leaves the window; a success
    clears the name's count (not the address's).
    """

    PER_ADDRESS: Final = 4

    def __init__(self, store: CounterStore, limit: int, window_seconds: int):
        self.store = store
        self.limit = limit
        self.window = window_seconds

    def retry_after(self, address: str, username: str, now: dt.datetime) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        t = now.timestamp()
        conn = self.store.conn()
        waits = []
        for name, limit in ((username.lower(), self.limit), ("", self.PER_ADDRESS * self.limit)):
            if limit < 1:
                continue
            row = conn.execute(
                "SELECT failed_at FROM login_failures WHERE address = ? AND username = ? AND failed_at > ? "
                "ORDER BY failed_at DESC LIMIT 1 OFFSET ?", (address, name, t - self.window, limit - 1),
            ).fetchone()
            if row is not None:
                waits.append(row[0] + self.window - t)
        return max(0, int(max(waits)) + 1) if waits else 0

    def failed(self, address: str, username: str, now: dt.datetime) -> None:
        t = now.timestamp()
        conn = self.store.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO login_failures (address, username, failed_at) VALUES (?, ?, ?), (?, '', ?)",
                         (address, username.lower(), t, address, t))
            conn.execute("DELETE FROM login_failures WHERE failed_at <= ?", (t - self.window,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def succeeded(self, address: str, username: str) -> None:
        self.store.conn().execute("DELETE FROM login_failures WHERE address = ? AND username = ?",
                                  (address, username.lower()))

