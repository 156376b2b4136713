"""Receipts: what a query response carries so a released figure can be traced later.

A receipt names the query, the log position (``log_index`` = the entry's ``seq``) of its
``query.released`` entry, that entry's leaf hash, and the tree size right after the append::

    {"query_id": "q_…", "log_index": 41, "leaf_hash": "<64 hex>", "tree_size": 42}
 Anyone holding it can later ask the
log for an inclusion proof of ``seq`` in any checkpoint at least that large and check it
offline (``verify_receipt``), so the log cannot quietly drop or alter the release.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from audit_log.checkpoint import Checkpoint
from audit_log.errors import AuditError, ProofError
from audit_log.hashing import SHA256, TreeHash
from audit_log.proofs import verify_inclusion
from audit_log.store.appending import AppendedEntry

RECEIPT_VERSION = "sandbox-receipt/v1"
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ReceiptError(AuditError):
    code = "bad_receipt"


@dataclass(frozen=True)
class Receipt:
    query_id: str
    log_index: int
    leaf_hash: str
    tree_size: int
    origin: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": RECEIPT_VERSION, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        try:
            receipt = cls(
                query_id=str(data["query_id"]),
                log_index=int(data["log_index"] if "log_index" in data else data["seq"]),
                leaf_hash=str(data["leaf_hash"]),
                tree_size=int(data["tree_size"]),
                origin=data.get("origin"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReceiptError(f"not a receipt: {exc}") from None
        if data.get("version", RECEIPT_VERSION) != RECEIPT_VERSION:
            raise ReceiptError(f"unknown receipt version {data.get('version')!r}")
        if (
            not _HEX64.fullmatch(receipt.leaf_hash)
            or not 0 <= receipt.log_index < receipt.tree_size
        ):
            raise ReceiptError("receipt fields out of range")
        return receipt

    @classmethod
    def from_json(cls, text: str) -> Receipt:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ReceiptError(f"receipt is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ReceiptError("a receipt is a JSON object")
        return cls.from_dict(data)


def make_receipt(appended: AppendedEntry, query_id: str, origin: str | None = None) -> Receipt:
    return Receipt(query_id, appended.seq, appended.leaf_hash, appended.tree_size, origin)


def verify_receipt(
    receipt: Receipt,
    entry: bytes,
    proof: list[bytes],
    checkpoint: Checkpoint,
    th: TreeHash = SHA256,
) -> None:
    """Raise unless ``entry`` is the receipt's entry and ``proof`` includes it in
    ``checkpoint`` (already signature-checked by the caller). ``th`` is the log's tree
    hash (``checkpoint.tree_hash_for_keys`` of the keys that opened the checkpoint)."""
    if th.hash_leaf(entry).hex() != receipt.leaf_hash:
        raise ReceiptError("the entry does not match the receipt's leaf hash")
    if checkpoint.size < receipt.tree_size:
        raise ProofError(
            f"checkpoint size {checkpoint.size} predates the receipt (tree size {receipt.tree_size})"
        )
    if receipt.origin is not None and checkpoint.origin != receipt.origin:
        raise ReceiptError("the checkpoint is for another log")
    verify_inclusion(
        bytes.fromhex(receipt.leaf_hash),
        receipt.log_index,
        checkpoint.size,
        proof,
        checkpoint.root_hash,
        th,
    )
