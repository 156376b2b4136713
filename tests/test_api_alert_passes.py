"""One alert pass at a time per (researcher, approval) (sandbox.service.hooks.AlertPasses, issue 18):
requests arriving during a pass leave their query to it, and it runs once more for them. The
service runs it after every query (issue 19), whichever interface asked."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from sandbox.service import hooks


def test_concurrent_requests_share_a_pass_and_it_runs_once_more(monkeypatch):
    calls: list[tuple[int, object]] = []
    entered, release = threading.Event(), threading.Event()

    def fake_after_query(sb, user, approval_id):
        calls.append((user.id, approval_id))
        if len(calls) == 1:
            entered.set()
            assert release.wait(10)

    monkeypatch.setattr(hooks.alerts, "after_query", fake_after_query)
    passes = hooks.AlertPasses()
    alice, bob = SimpleNamespace(id=1), SimpleNamespace(id=2)
    first = threading.Thread(target=passes.after_query, args=(None, alice, 7))
    first.start()
    assert entered.wait(10)
    for _ in range(3):  # alice's later queries while her pass runs: left to it
        passes.after_query(None, alice, 7)
    passes.after_query(None, bob, 7)  # another researcher: a pass of their own, at once
    assert calls == [(1, 7), (2, 7)]
    release.set()
    first.join(10)
    assert calls == [(1, 7), (2, 7), (1, 7)]  # one more pass covers the three
    passes.after_query(None, alice, 7)  # nothing running: a request runs its own pass
    assert calls[-1] == (1, 7) and len(calls) == 4


def test_a_lone_request_runs_its_pass_before_returning(monkeypatch):
    calls = []
    monkeypatch.setattr(hooks.alerts, "after_query", lambda sb, user, aid: calls.append(aid))
    passes = hooks.AlertPasses()
    for aid in (1, 1, "x"):
        passes.after_query(None, SimpleNamespace(id=3), aid)
    assert calls == [1, 1, "x"]
