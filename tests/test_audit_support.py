"""Helpers shared by the audit tests (no tests here): a log in a fresh SQLite database
filled with realistic entries, through the same store API the sandbox uses.

Cryptography profiles (issue 17): a module that imports ``crypto_profile`` and marks
``pytestmark = pytest.mark.usefixtures("crypto_profile")`` runs every test twice, once
per profile; ``create_log`` then makes an SHA-256 or SM3 log, ``ring`` an Ed25519 or SM2
key ring, and ``th()`` is the profile's tree hash for expected values.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit_log import store
from audit_log.hashing import PROFILE_TREE_HASH, TreeHash
from keys import PROFILES, KeyRing

_current = {"profile": "intl"}


def profile() -> str:
    """The profile the running test was parametrised with (``intl`` outside)."""
    return _current["profile"]


def th() -> TreeHash:
    """The running profile's tree hash (SHA-256 or SM3)."""
    return PROFILE_TREE_HASH[profile()]


@pytest.fixture(scope="module", params=PROFILES)
def crypto_profile(request) -> Iterator[str]:
    _current["profile"] = request.param
    try:
        yield request.param
    finally:
        _current["profile"] = "intl"

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ORIGIN = "sandbox.jinan.example/audit"


def open_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def create_log(path: Path) -> sqlite3.Connection:
    conn = open_db(path)
    conn.execute("BEGIN")
    for statement in store.SCHEMA_STATEMENTS:
        conn.execute(statement)
    if profile() == "sm":
        store.set_tree_hash(conn, "sm3")
    conn.execute("COMMIT")
    return conn


def ring(path: Path) -> KeyRing:
    return KeyRing.open_or_create(
        path, b"test passphrase", scrypt_n=2**10, profile=profile(), pbkdf2_iterations=1000
    )


def fill(conn: sqlite3.Connection, count: int, start: int = 0) -> None:
    """Append ``count`` realistic entries in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    spent: dict[int, float] = {}
    for i in range(start, start + count):
        now = T0 + timedelta(seconds=37 * i)
        approval = 1 + i % 3
        researcher = f"researcher{approval}"
        if i % 100 == 0:
            store.append(
                conn,
                actor="owner1",
                role="owner",
                action="approval.created",
                subject=f"approval:{approval}",
                details={
                    "approval_id": approval,
                    "researcher": researcher,
                    "epsilon_total": 1000.0,
                    "delta_total": 1e-3,
                    "epsilon_per_query": 1.0,
                },
                now=now,
            )
        elif i % 17 == 0:
            store.append(
                conn,
                actor=researcher,
                role="researcher",
                action="query.refused",
                subject=f"query:q{i}",
                details={
                    "approval_id": approval,
                    "code": "column_not_allowed",
                    "sql": "SELECT id_number FROM residents",
                },
                now=now,
            )
        elif i % 250 == 7:
            store.append(
                conn,
                actor="regulator1",
                role="regulator",
                action="suspension.created",
                subject=f"approval:{approval}",
                details={"reason": "routine check 检查"},
                now=now,
            )
        else:
            eps = 0.1 + (i % 5) / 10
            spent[approval] = spent.get(approval, 0.0) + eps
            store.append(
                conn,
                actor=researcher,
                role="researcher",
                action="query.released",
                subject=f"query:q{i}",
                details={
                    "approval_id": approval,
                    "epsilon": eps,
                    "delta": 1e-6,
                    "sql": f"SELECT district, COUNT(*) FROM residents WHERE age > {i % 90} GROUP BY district",
                    "plan_fingerprint": f"{i:064x}",
                    "values": [["历下区", 1234.5 + i], ["市中区", 987.25]],
                    "budget_after": {"epsilon_spent": round(spent[approval], 12)},
                },
                now=now,
            )
    conn.execute("COMMIT")
