"""The login throttle's rules as a plain in-process model, the reference for the shared one.

The console counts failed logins with :class:`sandbox.store.rate_limits.LoginFailures` (in
the workspace store, shared by every process); ``tests/test_rate_limits.py`` checks it
against this model.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Final


class LoginThrottle:
    """Failed logins per (client address, user name) and per address, in a sliding window:
    the in-process reference model of the rules.

    After ``limit`` failures for one name from one address, or ``4 * limit`` from one
    address, further attempts are refused with HTTP 429 until the oldest failure leaves the
    window. A success clears the name's count. Argon2id verification already makes each
    guess slow.

    The console itself uses :class:`sandbox.store.rate_limits.LoginFailures`, the same rules over
    the workspace store, so that the counts hold across every process serving it; this
    memory-only model (one process, forgotten at restart) stays as the naive reference that
    ``tests/test_rate_limits.py`` cross-checks the shared one against.
    """

    def __init__(self, limit: int, window_seconds: int):
        self.limit = limit
        self.window = dt.timedelta(seconds=window_seconds)
        self._failures: dict[tuple[str, str], list[dt.datetime]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: dt.datetime) -> list[dt.datetime]:
        kept = [t for t in self._failures.get(key, []) if t + self.window > now]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def retry_after(self, address: str, username: str, now: dt.datetime) -> int:
        """Seconds until another attempt is allowed (0: allowed now)."""
        with self._lock:
            waits = []
            for key, limit in (((address, username.lower()), self.limit), ((address, ""), 4 * self.limit)):
                recent = self._recent(key, now)
                if len(recent) >= limit:
                    waits.append((recent[-limit] + self.window - now).total_seconds())
            return max(0, int(max(waits, default=0)) + (1 if waits else 0))

    #: Keys kept at most (SECURITY: random user names must not grow memory without bound).
    MAX_KEYS: Final = 10_000

    def failed(self, address: str, username: str, now: dt.datetime) -> None:
        with self._lock:
            if len(self._failures) >= self.MAX_KEYS:
                for key in list(self._failures):
                    self._recent(key, now)  # drops keys whose failures left the window
                if len(self._failures) >= self.MAX_KEYS:  # still full: forget the oldest half
                    oldest = sorted(self._failures, key=lambda k: self._failures[k][-1])
                    for key in oldest[: self.MAX_KEYS // 2]:
                        if key[1]:  # keep the per-address counts
                            del self._failures[key]
            for key in ((address, username.lower()), (address, "")):
                self._failures.setdefault(key, []).append(now)

    def succeeded(self, address: str, username: str) -> None:
        with self._lock:
            self._failures.pop((address, username.lower()), None)
