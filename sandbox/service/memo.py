"""What the query service remembers between requests in one process: checked plans, plans
that passed the empty-table run, and which identical requests are running now.

Why here: the stages (``sandbox.service.pipeline``) consult them, and ``Sandbox`` holds them;
none holds data (a plan and a yes are functions of the request, the approval and the catalog).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

V = TypeVar("V")

#: How many entries a memo keeps (least recently used first out).
MEMO_SIZE = 4096


class Memo(Generic[V]):
    """A thread-safe least-recently-used map of at most ``size`` entries."""

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: V) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def keys(self) -> list[Hashable]:
        with self._lock:
            return list(self._items)


class SingleFlight:
    """Identical requests in this process run one at a time, so the second finds the first's
    release in the cache instead of paying again (docs/decisions/0008)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def one(self, key: str) -> Iterator[None]:
        with self._lock:
            lock, users = self._flights.get(key, (threading.Lock(), 0))
            self._flights[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._flights[key]
                if users == 1:
                    del self._flights[key]
                else:
                    self._flights[key] = (lock, users - 1)
