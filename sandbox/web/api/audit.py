"""Audit API for regulators (第二十二条): entries, checkpoints, inclusion and consistency proofs.

Proofs and checkpoints are public by nature (they reveal hashes, not contents) and are
open to every signed-in user so that a researcher holding a receipt can check it; the
entries themselves are for regulators only.
"""

from __future__ import annotations

import base64

from flask import Blueprint, g, jsonify, request

import audit_log.store as audit_store
from sandbox.errors import BadRequest, Forbidden
from sandbox.governance import jurisdiction
from sandbox.web.api.base import authenticate, sandbox

bp = Blueprint("api_audit", __name__, url_prefix="/api/v1/audit")
bp.before_request(authenticate)

MAX_PAGE = 1000


def _int_arg(name: str, default: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        if default is None:
            raise BadRequest(f"query parameter {name!r} is required")
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer") from None
    if not 0 <= value < 2**63:  # SQLite integers
        raise BadRequest(f"query parameter {name!r} must be an integer from 0 to {2**63 - 1}")
    return value


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in items]


@bp.get("/entries")
def entries():
    if g.user.role != "regulator":
        raise Forbidden("only regulators read the audit log; researchers see their own history in the console")
    start = _int_arg("start", 0)
    limit = min(_int_arg("limit", 100), MAX_PAGE)
    filters = {k: request.args[k] for k in ("actor", "action", "subject", "since", "until") if request.args.get(k)}
    conn = sandbox().conn()
    size = audit_store.size(conn)
    if not jurisdiction.is_district(conn, g.user):
        return jsonify({"entries": audit_store.entries(conn, start, limit, **filters), "size": size})
    # 第五条: a district regulator reads the entries about its district's datasets only; pages
    # are filled from further on, and ``next_start`` says where the next page starts.
    rows: list[dict] = []
    visible = jurisdiction.entry_filter(conn, g.user)
    while len(rows) < limit and start < size:
        batch = audit_store.entries(conn, start, MAX_PAGE, **filters)
        if not batch:
            start = size
            break
        for e in batch:
            start = e["seq"] + 1
            if visible(e):
                rows.append(e)
                if len(rows) == limit:
                    break
    return jsonify({"entries": rows, "size": size, "next_start": start, "jurisdiction": "district"})


@bp.get("/checkpoint")
def checkpoint():
    note = sandbox().issue_checkpoint()
    return jsonify({"checkpoint": note, "size": audit_store.size(sandbox().conn())})


def _check_range(index_name: str, index: int, size: int) -> None:
    current = audit_store.size(sandbox().conn())
    if size > current:
        raise BadRequest(f"size {size} is larger than the log ({current} entries)")
    if index >= size:
        raise BadRequest(f"{index_name} {index} must be below size {size}")


@bp.get("/proofs/inclusion")
def inclusion():
    index, size = _int_arg("index"), _int_arg("size")
    _check_range("index", index, size)
    proof = audit_store.inclusion_proof(sandbox().conn(), index, size)
    return jsonify({"index": index, "size": size, "hashes": _b64(proof),
                    "root": base64.b64encode(audit_store.root(sandbox().conn(), size)).decode()})


@bp.get("/proofs/consistency")
def consistency():
    old, new = _int_arg("from"), _int_arg("to")
    if old > new:
        raise BadRequest("'from' must not be larger than 'to'")
    if new > audit_store.size(sandbox().conn()):
        raise BadRequest("'to' is larger than the log")
    proof = audit_store.consistency_proof(sandbox().conn(), old, new)
    return jsonify({"from": old, "to": new, "hashes": _b64(proof)})
