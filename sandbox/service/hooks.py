"""The service's hooks after every query, whatever the interface (API, console, Python
client, scripts) and whatever the outcome (released, cached, refused, failed).

Why in the service: the alert pass (``sandbox.governance.alerts.after_query``: budget levels,
refusal bursts, differencing and averaging patterns) used to run in the API view only, so
queries from the console or a script reached it only at the next sweep (issue 19).
"""

from __future__ import annotations

import threading
from typing import Any

from sandbox.governance import alerts
from sandbox.store.context import Context
from sandbox.store.users import User


class AlertPasses:
    """At most one alert pass at a time per (researcher, approval) in this process.

    Why (issue 18): a pass reads the approval's whole history (budget levels, refusal
    bursts, differencing and averaging patterns), so under load running one per query
    was a fifth of the server's CPU, repeating the same work side by side. A request that
    arrives while a pass for its pair runs leaves its query to that pass, which then runs
    once more; a query still not evaluated after that is evaluated by the next request's
    pass or by the sweep every alert read runs (``alerts.sweep``). One request at a time
    (tests, a quiet server) sees no change: its own pass runs before it returns.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[tuple[int, str]] = set()
        self._again: set[tuple[int, str]] = set()

    def after_query(self, sb: Context, user: User, approval_id: Any) -> None:
        key = (user.id, repr(approval_id))  # as sent: ``alerts.after_query`` checks it
        with self._lock:
            if key in self._running:
                self._again.add(key)
                return
            self._running.add(key)
        try:
            for _ in range(2):  # this request's pass, and at most one for those who left theirs
                alerts.after_query(sb, user, approval_id)  # never raises
                with self._lock:
                    if key not in self._again:
                        break
                    self._again.discard(key)
        finally:
            with self._lock:
                self._running.discard(key)
