"""The service layer: the only place that orchestrates a query's walk (DESIGN.md).

    approval = workflow.active_approval(...)    suspended / expired / not yours → refuse
    plan     = query_guard.plan(...)             GuardError → logged refusal, no charge
    cached?  → the earlier release, no charge
    exact    = executor.run(plan)                outside the write lock (decision 0002); bounding
                                                 materialised per dataset version (0004)
    BEGIN IMMEDIATE
        re-check suspension and budget           the state may have moved meanwhile
        release = privacy.release(plan, exact)   OpenDP noise + intervals
        ledger.charge(...)                       what OpenDP's maps report
        audit_log.append(query.released)
    COMMIT → response with receipt

Invariant: no figure leaves unless its charge and its audit entry are committed with it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

import audit_log.store as audit_store
import privacy
import query_guard
from privacy import PrivacyError, calibrate, release
from query_guard import GuardError, QueryPlan
from sandbox import datasets, ledger, postprocess, workflow
from sandbox.clock import Clock, iso, utc_now
from sandbox.engine import Engine, EngineLimits
from sandbox.engine_pool import EngineBusy, EnginePool, PoolSettings
from sandbox.errors import BadRequest, EngineFailure, SandboxError
from sandbox.execution import InProcessExecutor, engine_request
from sandbox.users import User
from sandbox.workspace import Workspace, transaction
from sandbox.workspace import log_origin as workspace_log_origin

log = logging.getLogger(__name__)

DEFAULT_CONFIDENCE = 0.95


@dataclass
class QueryRequest:
    approval_id: Any
    sql: str
    epsilon: float | None = None
    confidence: float = DEFAULT_CONFIDENCE


class QueryRefused(SandboxError):
    """A guard refusal, already logged; carries the SQL position."""

    http_status = 400

    def __init__(self, err: GuardError):
        super().__init__(err.message, code=err.code)
        self.position = err.position


class Sandbox:
    """One workspace opened for serving: store connections, engine, table cache, keys."""

    def __init__(self, workspace: Workspace, *, now: Clock = utc_now, limits: EngineLimits | None = None,
                 pool: PoolSettings | None = None):
        """``pool``: run queries in engine worker processes (docs/decisions/0005), as
        ``sandbox serve`` does; None runs them in this process (tests, demo, CLI tools)."""
        self.ws = workspace
        self.now = now
        self.engine = Engine(limits)
        self.keyring = _open_keyring(workspace)
        self.tables = datasets.TableCache(workspace.data_dir, datasets.keyring_decryptor(self.keyring))
        self._local = threading.local()
        self.executor: InProcessExecutor | EnginePool
        if pool is None:
            self.executor = InProcessExecutor(self.engine, self.tables)
        else:
            self.executor = EnginePool(workspace.data_dir, workspace.keys_dir, self.engine.limits, pool,
                                       warm=datasets.latest_versions(self.conn()))

    def close(self) -> None:
        """Stop the engine workers, if any (idempotent)."""
        if isinstance(self.executor, EnginePool):
            self.executor.close()

    # -- plumbing -------------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        """One SQLite connection per thread (sqlite3 connections are not thread-safe)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.ws.connect()
        return conn

    def encryptor(self):
        import keys

        def encrypt(plain: bytes, aad: bytes) -> tuple[bytes, bytes]:
            data_key, wrapped = self.keyring.new_data_key()
            return keys.encrypt_blob(data_key, plain, aad), wrapped

        return encrypt

    def audit(self, conn: sqlite3.Connection, actor: User | None, action: str, subject: str,
              details: dict[str, Any]) -> audit_store.AppendedEntry:
        """Append to the audit log inside the caller's transaction."""
        return audit_store.append(
            conn,
            actor=actor.username if actor else "system",
            role=actor.role if actor else "system",
            action=action,
            subject=subject,
            details=details,
            now=self.now(),
        )

    @property
    def log_origin(self) -> str:
        return workspace_log_origin(self.conn())

    def issue_checkpoint(self) -> str:
        """Sign the current tree head (idempotent when nothing was appended since)."""
        return audit_store.issue_checkpoint(self.conn(), self.keyring.log_signer(), self.log_origin, self.now())

    # -- queries --------------------------------------------------------------------
    def run_query(self, user: User, req: QueryRequest) -> dict[str, Any]:
        conn = self.conn()
        if not isinstance(req.sql, str) or not req.sql.strip():
            raise BadRequest("sql must be a non-empty string", code="missing_sql")
        approval = self._approval_or_log(conn, user, req)
        epsilon = self._epsilon(approval, req.epsilon)
        if not 0.5 <= req.confidence < 1:
            raise BadRequest("confidence must be at least 0.5 and below 1")
        versions = [v for v in datasets.latest_versions(conn) if v.name in approval.scenario.datasets]
        catalog = datasets.build_catalog(versions)
        try:
            plan = query_guard.plan(req.sql, approval.scenario, catalog)
        except GuardError as err:
            self._log_refusal(conn, user, req, approval.id, err.code, err.message, err.position)
            raise QueryRefused(err) from None
        pure = ledger.is_pure(approval)
        delta = privacy.per_query_delta(approval.delta_total, pure=pure)
        used = [v for v in versions if v.name in plan.datasets]
        version_ids = [v.version_id for v in used]
        try:
            noise = calibrate(plan, epsilon, delta, pure=pure)  # data-independent: the exact charge
        except PrivacyError as err:
            raise BadRequest(err.message, code=err.code) from None
        planned = noise.charge
        cache_key = _cache_key(plan, used, approval.id, epsilon, delta, req.confidence)
        cached = _released(conn, cache_key)
        if cached is not None:
            return self._serve_cached(conn, user, approval.id, cached)
        self._ensure_affordable(conn, approval.id, version_ids, planned)

        query_id = "q_" + secrets.token_hex(8)
        try:
            exact = self.executor.run(engine_request(plan, used)).to_pydict()
        except EngineBusy as err:
            # No engine saw the query: nothing data-dependent happened, so nothing is
            # charged; logged as a refusal like every other request that is turned away.
            self._log_refusal(conn, user, req, approval.id, err.code, err.message, None)
            raise
        except EngineFailure as err:
            # PRIVACY: a failure after execution started may depend on the data: charged.
            self._log_failure(conn, user, req, approval, plan, query_id, planned, version_ids, err)
            raise
        with transaction(conn):
            workflow.active_approval(conn, user, approval.id, now=self.now)  # suspended meanwhile?
            # The same query may have been released meanwhile (two identical requests at
            # once): under the write lock this lookup is final; serve that release.
            cached = _released(conn, cache_key)
            if cached is not None:
                del exact  # PRIVACY: computed, never released
                return self._serve_cached(conn, user, approval.id, cached)
            self._ensure_affordable(conn, approval.id, version_ids, planned)
            try:
                rel = release(plan, exact, epsilon=epsilon, delta=delta, confidence=req.confidence,
                              pure=pure, noise=noise)
            except PrivacyError as err:
                raise BadRequest(err.message, code=err.code) from None
            del exact  # PRIVACY: exact values go no further
            columns, rows, intervals = postprocess.apply(plan, rel, self.engine)
            conn.execute(
                "INSERT INTO queries (id, approval_id, user_id, sql, fingerprint, cache_key, status, "
                "epsilon, delta, created_at) VALUES (?,?,?,?,?,?, 'released', ?,?,?)",
                (query_id, approval.id, user.id, req.sql, plan.fingerprint, cache_key, rel.epsilon,
                 rel.delta, iso(self.now())),
            )
            budget = ledger.charge(conn, approval.id, query_id, rel.epsilon, rel.delta, now=self.now,
                                   rho=rel.rho, rho_delta=rel.rho_delta, dataset_versions=version_ids)
            entry = self.audit(conn, user, "query.released", f"query/{query_id}", {
                "query_id": query_id,
                "approval_id": approval.id,
                "sql": req.sql,
                "fingerprint": plan.fingerprint,
                "datasets": {v.name: {"version": v.version, "content_hash": v.content_hash} for v in used},
                "mechanisms": [m.__dict__ for m in rel.mechanisms],
                "epsilon": rel.epsilon,
                "delta": rel.delta,
                "rho": rel.rho,
                "rho_delta": rel.rho_delta,
                "noise": rel.family,
                "budget_after": _budget_after(budget),
                "columns": columns,
                "rows": _jsonable(rows),
            })
            response = {
                "query_id": query_id,
                "columns": columns,
                "rows": _jsonable(rows),
                "accuracy": {
                    c: {
                        "confidence": rel.confidence,
                        "method": rel.methods.get(c, ""),
                        "intervals": [None if iv is None else [_num(iv[0]), _num(iv[1])] for iv in intervals[c]],
                    }
                    for c in columns if c in rel.methods
                },
                "epsilon_spent": rel.epsilon,
                "delta_spent": rel.delta,
                "rho_spent": rel.rho,
                "noise": rel.family,
                "budget": budget.as_dict(),
                "receipt": {"query_id": query_id, "log_index": entry.seq, "leaf_hash": entry.leaf_hash,
                            "tree_size": entry.tree_size},
                "cached": False,
                "notes": list(plan.notes),
            }
            conn.execute("UPDATE queries SET response_json = ?, audit_seq = ? WHERE id = ?",
                         (json.dumps(response, ensure_ascii=False), entry.seq, query_id))
        return response

    def _approval_or_log(self, conn: sqlite3.Connection, user: User, req: QueryRequest) -> workflow.Approval:
        try:
            return workflow.active_approval(conn, user, req.approval_id, now=self.now)
        except SandboxError as err:
            self._log_refusal(conn, user, req, None, err.code, err.message, None)
            raise

    def _epsilon(self, approval: workflow.Approval, requested: Any) -> float:
        if requested is None:
            return min(approval.epsilon_per_query, 1.0)
        if isinstance(requested, bool) or not isinstance(requested, int | float) or not math.isfinite(requested):
            raise BadRequest("epsilon must be a positive number", code="bad_epsilon")
        if not 0 < requested <= approval.epsilon_per_query + ledger.TOLERANCE:
            raise BadRequest(
                f"epsilon must be above 0 and at most this approval's per-query cap "
                f"{approval.epsilon_per_query:g}", code="bad_epsilon",
            )
        return float(requested)

    def _ensure_affordable(self, conn, approval_id: int, version_ids: list[int], planned) -> None:
        """The approval's budget and every global cap on the versions read must fit the charge."""
        ledger.ensure_affordable(ledger.budget(conn, approval_id), planned.epsilon, planned.delta,
                                 rho=planned.rho, rho_delta=planned.rho_delta)
        ledger.ensure_within_global_caps(conn, version_ids, planned)

    def _serve_cached(self, conn, user, approval_id, cached) -> dict[str, Any]:
        """The same plan on the same data version: the earlier release, free (defeats averaging)."""
        # Recorded for the averaging alert (sandbox.alerts): a cached answer leaves no
        # other trace in the store, whichever interface asked.
        conn.execute("INSERT INTO query_repeats (query_id, user_id, approval_id, created_at) VALUES (?,?,?,?)",
                     (cached["id"], user.id, approval_id, iso(self.now())))
        response = json.loads(cached["response_json"])
        response["cached"] = True
        response["epsilon_spent"] = 0.0
        response["delta_spent"] = 0.0
        response["budget"] = ledger.budget(conn, approval_id).as_dict()
        return response

    def _log_refusal(self, conn, user, req, approval_id, code, message, position) -> None:
        query_id = "q_" + secrets.token_hex(8)
        with transaction(conn):
            conn.execute(
                "INSERT INTO queries (id, approval_id, user_id, sql, status, error_code, created_at) "
                "VALUES (?,?,?,?, 'refused', ?, ?)",
                (query_id, approval_id, user.id, str(req.sql)[:20000], code, iso(self.now())),
            )
            self.audit(conn, user, "query.refused", f"query/{query_id}", {
                "query_id": query_id, "approval_id": approval_id, "sql": str(req.sql)[:20000],
                "code": code, "message": message, "position": position,
            })
            workflow.after_refusal(conn, user, code, now=self.now, audit=self.audit)

    def _log_failure(self, conn, user, req, approval, plan, query_id, planned, version_ids, err) -> None:
        epsilon, delta = planned.epsilon, planned.delta
        with transaction(conn):
            conn.execute(
                "INSERT INTO queries (id, approval_id, user_id, sql, fingerprint, status, error_code, "
                "epsilon, delta, created_at) VALUES (?,?,?,?,?, 'failed', ?,?,?,?)",
                (query_id, approval.id, user.id, req.sql, plan.fingerprint, err.code, epsilon, delta, iso(self.now())),
            )
            budget = ledger.charge(conn, approval.id, query_id, epsilon, delta, now=self.now,
                                   rho=planned.rho, rho_delta=planned.rho_delta, dataset_versions=version_ids)
            self.audit(conn, user, "query.failed", f"query/{query_id}", {
                "query_id": query_id, "approval_id": approval.id, "sql": req.sql, "code": err.code,
                "epsilon": epsilon, "delta": delta, "rho": planned.rho, "rho_delta": planned.rho_delta,
                "budget_after": _budget_after(budget),
            })

    # -- budgets --------------------------------------------------------------------
    def budget(self, user: User, approval_id: Any) -> dict[str, Any]:
        conn = self.conn()
        try:
            ident = int(approval_id)
        except (TypeError, ValueError):
            raise BadRequest("approval id must be a number") from None
        approval = workflow.get_approval(conn, ident)
        visible = approval is not None and (
            user.role == "regulator"
            or (user.role == "researcher" and approval.researcher_id == user.id)
            or (user.role == "owner" and approval.owner_id == user.id)
        )
        if not visible:
            raise workflow.NotFound(f"no approval {ident}")
        return ledger.budget(conn, ident).as_dict()


def _released(conn: sqlite3.Connection, cache_key: str) -> sqlite3.Row | None:
    """The earlier release of the same plan, data versions, approval and ε, if any."""
    return conn.execute(
        "SELECT id, response_json FROM queries WHERE cache_key = ? AND status = 'released'", (cache_key,)
    ).fetchone()


def _budget_after(budget) -> dict[str, Any]:
    """The approval's spent budget as logged with each charge: enough for a regulator to
    recompute the accountant's figure from the log (``sandbox audit replay``)."""
    return {
        "epsilon_spent": budget.epsilon_spent, "delta_spent": budget.delta_spent,
        "epsilon_spent_basic": budget.totals.epsilon, "rho_spent": budget.rho_spent,
        "route": budget.accounting.route if budget.accounting else "basic",
    }


def _open_keyring(ws: Workspace):
    import keys

    return keys.KeyRing.open_or_create(ws.keys_dir)


def _cache_key(plan: QueryPlan, versions, approval_id: int, epsilon: float, delta: float, confidence: float) -> str:
    material = json.dumps(
        [plan.fingerprint, sorted(v.content_hash for v in versions), approval_id, repr(epsilon), repr(delta),
         repr(confidence)],
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _jsonable(rows: list[list[Any]]) -> list[list[Any]]:
    out = []
    for row in rows:
        out.append([v if v is None or isinstance(v, str | int | float | bool) else str(v) for v in row])
    return out

