"""The tamper-evident audit log: canonical entries, hash chain, RFC 6962 Merkle tree,
C2SP signed checkpoints and cosignatures, proofs, standalone verification and replay, in
either cryptography profile (SHA-256 + Ed25519, or SM3 + SM2: issue 17).

Imports only ``keys``, ``cryptography`` (through ``keys``), ``rfc8785`` and the standard
library, so a regulator can verify an export without the server (DESIGN.md); ``orjson``,
when installed, only makes canonical JSON faster (``audit_log.canonical``).
"""

from audit_log.checkpoint import (
    Checkpoint,
    Note,
    open_checkpoint,
    sign_checkpoint,
    tree_hash_for_keys,
    verify_note,
)
from audit_log.entry import Entry, chain_hash, check_canonical, decode, format_time
from audit_log.errors import (
    DAMAGE_KINDS,
    AuditError,
    CheckpointError,
    EntryError,
    ForkError,
    ProofError,
    RollbackError,
    StoreError,
    VerificationError,
    WitnessError,
)
from audit_log.hashing import SHA256, SM3, TreeHash, empty_root, hash_children, hash_leaf
from audit_log.proofs import root_from_inclusion_proof, verify_consistency, verify_inclusion
from audit_log.receipt import Receipt, ReceiptError, make_receipt, verify_receipt
from audit_log.replay import compare_with_ledger, replay
from audit_log.store import SCHEMA_STATEMENTS, AppendedEntry
from audit_log.verify import VerifyReport, verify_file, verify_lines
from audit_log.witness import Witness, cosign, verify_cosignature

__all__ = [
    "DAMAGE_KINDS",
    "SCHEMA_STATEMENTS",
    "SHA256",
    "SM3",
    "TreeHash",
    "AppendedEntry",
    "AuditError",
    "Checkpoint",
    "CheckpointError",
    "Entry",
    "EntryError",
    "ForkError",
    "Note",
    "ProofError",
    "Receipt",
    "ReceiptError",
    "RollbackError",
    "StoreError",
    "VerificationError",
    "VerifyReport",
    "Witness",
    "WitnessError",
    "chain_hash",
    "compare_with_ledger",
    "cosign",
    "check_canonical",
    "decode",
    "empty_root",
    "format_time",
    "hash_children",
    "hash_leaf",
    "make_receipt",
    "open_checkpoint",
    "replay",
    "root_from_inclusion_proof",
    "sign_checkpoint",
    "tree_hash_for_keys",
    "verify_consistency",
    "verify_cosignature",
    "verify_file",
    "verify_inclusion",
    "verify_lines",
    "verify_note",
    "verify_receipt",
]
