"""Shared fixtures: a small demo workspace built through the same code as `sandbox demo`."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from sandbox.demo.setup import setup_demo
from sandbox.web import create_app

DEMO_ROWS = 3_000


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory) -> Path:
    """One demo workspace per test session; tests get their own copy."""
    root = tmp_path_factory.mktemp("demo-template") / "ws"
    setup_demo(root, rows=DEMO_ROWS, url="http://127.0.0.1:0", say=lambda _m: None)
    return root


@pytest.fixture(scope="session")
def demo_template_sm(tmp_path_factory) -> Path:
    """The same demo workspace in the ``sm`` cryptography profile (SM2, SM3, SM4; issue 17)."""
    root = tmp_path_factory.mktemp("demo-template-sm") / "ws"
    setup_demo(root, rows=DEMO_ROWS, url="http://127.0.0.1:0", say=lambda _m: None, crypto="sm")
    return root


@pytest.fixture
def demo(demo_template, tmp_path):
    """(Sandbox, credentials) over a fresh copy of the demo workspace."""
    root = tmp_path / "ws"
    shutil.copytree(demo_template, root)
    from sandbox.demo.setup import setup_demo as again

    sb, creds = again(root, rows=DEMO_ROWS, url="http://127.0.0.1:0", say=lambda _m: None)
    return sb, creds


@pytest.fixture
def client(demo):
    sb, creds = demo
    app = create_app(sb, {"TESTING": True})
    return app.test_client()


@pytest.fixture
def creds(demo):
    return demo[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FrozenClock:
    def __init__(self, start: dt.datetime):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += dt.timedelta(**kw)
