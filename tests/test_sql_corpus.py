"""Acceptance of natural researcher SQL (issue 13): a corpus assembled from public DP-SQL
tutorials, documentation and papers (SmartNoise, Tumult, ZetaSQL/BigQuery, PipelineDP,
Chorus, PrivateSQL, Qrlew, Aircloak), adapted to the demo schema, in
``tests/fixtures/corpus/researcher_sql.sql`` (each with its source).

Every query is *planned* (``query_guard.plan``, pure: no data read, nothing written, no
budget charged) against the demo approval's scenario. The accepted share must stay at or
above what was measured; the refusals and their codes are listed in docs/guard.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import query_guard
from query_guard import GuardError
from sandbox.governance import datasets, workflow

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "researcher_sql.sql"
#: Measured when the corpus was assembled (docs/guard.md, "Natural researcher SQL").
ACCEPTED_AT_LEAST = 57 / 69  # 82.6 %


def corpus() -> list[tuple[str, str]]:
    """(source, sql) for each query: a ``-- source:`` comment, then SQL ending in ``;``."""
    out, source, lines = [], None, []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if line.startswith("-- source:"):
            source, lines = line.removeprefix("-- source:").strip(), []
        elif source is not None and line.strip() and not line.startswith("--"):
            lines.append(line)
            if line.rstrip().endswith(";"):
                out.append((source, "\n".join(lines).rstrip().rstrip(";")))
                source = None
    return out


def outcomes(sb, approval_id: int) -> list[tuple[str, str, str | None, str]]:
    conn = sb.conn()
    approval = workflow.get_approval(conn, approval_id)
    catalog = datasets.build_catalog(datasets.latest_versions(conn))
    out = []
    for source, sql in corpus():
        try:
            query_guard.plan(sql, approval.scenario, catalog)
        except GuardError as err:
            out.append((source, sql, err.code, str(err)))
        else:
            out.append((source, sql, None, ""))
    return out


def test_corpus_is_large_and_sourced():
    queries = corpus()
    assert len(queries) >= 60
    assert all(src and re.search(r"[A-Za-z]", src) for src, _ in queries)
    assert len({sql for _, sql in queries}) == len(queries), "duplicate queries"


def test_accepted_share_stays_at_or_above_the_measured_figure(demo):
    sb, creds = demo
    conn = sb.conn()
    before = (conn.execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0],
              conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] if _has(conn, "ledger") else 0)
    results = outcomes(sb, creds["researcher"]["approval_id"])
    accepted = sum(code is None for _, _, code, _ in results) / len(results)
    refusals = "\n".join(f"{code}: {sql[:70]} — {msg[:90]}" for _, sql, code, msg in results if code)
    assert accepted >= ACCEPTED_AT_LEAST, f"accepted {accepted:.1%}\n{refusals}"
    after = (conn.execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0],
             conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] if _has(conn, "ledger") else 0)
    assert after == before, "planning the corpus wrote to the store"


def _has(conn, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None


if __name__ == "__main__":  # pragma: no cover - prints the table for docs/guard.md
    pytest.main([__file__])
