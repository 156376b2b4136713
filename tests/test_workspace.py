"""Workspace: WAL, foreign keys, versioned migrations, refusal of newer schemas."""

from __future__ import annotations

import pytest

from sandbox.errors import WorkspaceError
from sandbox.store.migrations import SCHEMA_VERSION
from sandbox.store.workspace import Workspace


def test_init_is_idempotent_and_uses_wal(tmp_path):
    ws = Workspace.init(tmp_path / "w")
    Workspace.init(tmp_path / "w")
    conn = ws.connect()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert (ws.root / "data").is_dir() and (ws.root / "keys").is_dir()


def test_newer_schema_is_refused_clearly(tmp_path):
    ws = Workspace.init(tmp_path / "w")
    ws.connect().execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(WorkspaceError, match="newer than this release"):
        Workspace.open(tmp_path / "w")


def test_missing_workspace_says_how_to_create_one(tmp_path):
    with pytest.raises(WorkspaceError, match="sandbox init"):
        Workspace.open(tmp_path / "nothing")


def test_env_var_selects_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_DATA_DIR", str(tmp_path / "from-env"))
    ws = Workspace.init(None)
    assert ws.root == (tmp_path / "from-env").resolve()


def test_ledger_is_append_only(demo):
    import sqlite3

    from sandbox.service.pipeline import QueryRequest
    from sandbox.store.users import find_user

    sb, creds = demo
    sb.run_query(find_user(sb.conn(), "researcher"),
                 QueryRequest(creds["researcher"]["approval_id"], "SELECT COUNT(*) FROM residents", 0.1))
    conn = sb.conn()
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM ledger")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE ledger SET epsilon = 0")
