"""The query walk's rows and audit entries: the ``queries`` row, the ledger charge and the
``query.started`` / ``query.released`` / ``query.failed`` / ``query.refused`` entries, and
the release cache (its key, its lookup, a cached answer).

Why a module of its own: the stages (``sandbox.service.pipeline``) decide *when* each is
written; this says *what* is written, as units of work for the service's group-commit writer
(``audit_log.group_commit``, docs/decisions/0012): each a function of the connection, run in
one durable transaction with other requests' units. Audit entries and rows are unchanged
from before the pipeline was split into stages (issue 19).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

import privacy
from audit_log.actions import Action
from audit_log.store import AppendedEntry
from query_guard import QueryPlan
from sandbox.clock import Clock, iso
from sandbox.governance import dataset_caps, datasets, ledger, workflow
from sandbox.service.accuracy import STATE, with_confidence
from sandbox.store import request_limits
from sandbox.store.users import User

#: ``queries.error_code`` between the charge and the outcome (status stays 'failed'
#: until the release replaces it, so a crash in between leaves an honest row).
IN_PROGRESS = "in_progress"

Unit = Callable[[sqlite3.Connection], Any]
#: Bumped when the cache key's material changes (2: without the confidence, issue 13).
CACHE_KEY_VERSION = 2


class Recorder(Protocol):
    """What the records need of the opened workspace (``sandbox.store.context.Context``)."""

    now: Clock

    def audit(self, conn: sqlite3.Connection, actor: User | None, action: str, subject: str,
              details: dict[str, Any]) -> AppendedEntry: ...


def released(conn: sqlite3.Connection, cache_key: str) -> sqlite3.Row | None:
    """The earlier release of the same plan, data versions, approval and ε, if any."""
    return conn.execute(
        "SELECT id, response_json FROM queries WHERE cache_key = ? AND status = 'released'", (cache_key,)
    ).fetchone()


def cache_key(query: QueryPlan, versions: list[datasets.DatasetVersion], approval_id: int, epsilon: float,
              delta: float) -> str:
    """The release cache's key. Not the confidence: another confidence is the same noisy
    release with other intervals (``accuracy.with_confidence``), free (issue 13)."""
    material = json.dumps(
        [query.fingerprint, sorted(v.content_hash for v in versions), approval_id, repr(epsilon), repr(delta),
         CACHE_KEY_VERSION],
    )
    return hashlib.sha256(material.encode()).hexdigest()


def serve_cached(ctx: Recorder, conn: sqlite3.Connection, user: User, approval_id: int, cached: sqlite3.Row,
                 confidence: float) -> dict[str, Any]:
    """The same plan on the same data version: the earlier release, free (defeats averaging).

    At another confidence: the same noisy values, with intervals recomputed from the
    stored noisy statistics and noise scales (``with_confidence``), free as well."""
    # Recorded for the averaging alert (sandbox.governance.alerts): a cached answer leaves no
    # other trace in the store, whichever interface asked.
    conn.execute("INSERT INTO query_repeats (query_id, user_id, approval_id, created_at) VALUES (?,?,?,?)",
                 (cached["id"], user.id, approval_id, iso(ctx.now())))
    response = with_confidence(json.loads(cached["response_json"]), confidence)
    response["cached"] = True
    response["epsilon_spent"] = 0.0
    response["delta_spent"] = 0.0
    response["budget"] = ledger.budget(conn, approval_id).as_dict()
    return response


def ensure_affordable(conn: sqlite3.Connection, approval_id: int, version_ids: list[int],
                      planned: privacy.Charge) -> None:
    """The approval's budget and the cap of every dataset read must fit the charge."""
    ledger.ensure_affordable(ledger.budget(conn, approval_id), planned.epsilon, planned.delta,
                             rho=planned.rho, rho_delta=planned.rho_delta)
    dataset_caps.ensure_within(conn, version_ids, planned)  # the collusion cap, all versions


def insert_started(ctx: Recorder, conn: sqlite3.Connection, user: User, query_id: str, approval_id: int,
                   sql: str, fingerprint: str, used: list[datasets.DatasetVersion],
                   noise: privacy.NoisePlan) -> tuple[AppendedEntry, ledger.Budget]:
    """The charge inside the charge unit: the ``queries`` row ('failed' until the release
    replaces it: a crash after the charge leaves an honest row, charged, nothing released),
    the ledger row and ``query.started``."""
    planned = noise.charge
    conn.execute(
        "INSERT INTO queries (id, approval_id, user_id, sql, fingerprint, status, error_code, "
        "epsilon, delta, created_at) VALUES (?,?,?,?,?, 'failed', ?,?,?,?)",
        (query_id, approval_id, user.id, sql, fingerprint, IN_PROGRESS,
         planned.epsilon, planned.delta, iso(ctx.now())),
    )
    budget = ledger.charge(conn, approval_id, query_id, planned.epsilon, planned.delta,
                           now=ctx.now, rho=planned.rho, rho_delta=planned.rho_delta,
                           dataset_versions=[v.version_id for v in used])
    entry = ctx.audit(conn, user, Action.QUERY_STARTED, f"query/{query_id}", {
        "query_id": query_id,
        "approval_id": approval_id,
        "sql": sql,
        "fingerprint": fingerprint,
        "datasets": {v.name: {"version": v.version, "content_hash": v.content_hash} for v in used},
        "epsilon": planned.epsilon,
        "delta": planned.delta,
        "rho": planned.rho,
        "rho_delta": planned.rho_delta,
        "noise": noise.family,
        "budget_after": budget_after(budget),
    })
    return entry, budget


def insert_released(ctx: Recorder, conn: sqlite3.Connection, user: User, details: dict[str, Any],
                    response: dict[str, Any], state: dict[str, Any] | None, cache_key: str) -> None:
    """``query.released`` (``details``), its receipt put in ``response``, and the ``queries``
    row becomes the release: the response and the noisy ``state`` (never shown; it lets
    another confidence be served from the cache) under ``cache_key``."""
    query_id = details["query_id"]
    entry = ctx.audit(conn, user, Action.QUERY_RELEASED, f"query/{query_id}", details)
    response["receipt"] = {"query_id": query_id, "log_index": entry.seq, "leaf_hash": entry.leaf_hash,
                           "tree_size": entry.tree_size, "start_index": details["start_seq"]}
    stored = {**response, STATE: state}
    conn.execute(
        "UPDATE queries SET status = 'released', error_code = NULL, cache_key = ?, response_json = ?, "
        "audit_seq = ? WHERE id = ?",
        (cache_key, json.dumps(stored, ensure_ascii=False), entry.seq, query_id),
    )


def refusal(ctx: Recorder, user: User, approval_id: int | None, sql: Any, code: str, message: str,
            position: Any = None) -> Callable[[sqlite3.Connection], str | None]:
    """The unit logging a refused request (nothing read, nothing charged) and running the
    suspension hook; it returns the researcher's warning or suspension notice, if any
    (``workflow.refusal_notice``)."""
    query_id = new_query_id()
    text = request_limits.printable(str(sql))[:20000]  # storable even if the text is not

    def record(conn: sqlite3.Connection) -> str | None:
        conn.execute(
            "INSERT INTO queries (id, approval_id, user_id, sql, status, error_code, created_at) "
            "VALUES (?,?,?,?, 'refused', ?, ?)",
            (query_id, approval_id, user.id, text, code, iso(ctx.now())),
        )
        ctx.audit(conn, user, Action.QUERY_REFUSED, f"query/{query_id}", {
            "query_id": query_id, "approval_id": approval_id, "sql": text,
            "code": code, "message": message, "position": position,
        })
        workflow.after_refusal(conn, user, code, now=ctx.now, audit=ctx.audit)
        return workflow.refusal_notice(conn, user, code, now=ctx.now)

    return record


def failure(ctx: Recorder, user: User, approval_id: int, query_id: str, start_seq: int,
            code: str) -> Unit:
    """The unit logging the one outcome of a failure after the charge, against its start.
    ``code`` is ``query_failed`` (or ``data_integrity``): never the cause."""

    def record(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE queries SET error_code = ? WHERE id = ?", (code, query_id))
        ctx.audit(conn, user, Action.QUERY_FAILED, f"query/{query_id}", {
            "query_id": query_id, "approval_id": approval_id, "start_seq": start_seq, "code": code,
        })

    return record


def budget_after(budget: ledger.Budget) -> dict[str, Any]:
    """The approval's spent budget as logged with each charge: enough for a regulator to
    recompute the accountant's figure from the log (``sandbox audit replay``)."""
    return {
        "epsilon_spent": budget.epsilon_spent, "delta_spent": budget.delta_spent,
        "epsilon_spent_basic": budget.totals.epsilon, "rho_spent": budget.rho_spent,
        "route": budget.accounting.route if budget.accounting else "basic",
    }


def new_query_id() -> str:
    return "q_" + secrets.token_hex(8)
