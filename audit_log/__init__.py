"""The tamper-evident audit log: canonical entries, hash chain, RFC 6962 Merkle tree,
C2SP signed checkpoints and cosignatures, proofs, standalone verification and replay.

Imports only ``keys``, ``cryptography`` (through ``keys``), ``rfc8785`` and the standard
library, so a regulator can verify an export without the server (DESIGN.md).
"""

from audit_log.checkpoint import Checkpoint, Note, open_checkpoint, sign_checkpoint, verify_note
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
from audit_log.hashing import empty_root, hash_children, hash_leaf
from audit_log.proofs import root_from_inclusion_proof, verify_consistency, verify_inclusion
from audit_log.store import SCHEMA_STATEMENTS, AppendedEntry

__all__ = [
    "DAMAGE_KINDS",
    "SCHEMA_STATEMENTS",
    "AppendedEntry",
    "AuditError",
    "Checkpoint",
    "CheckpointError",
    "Entry",
    "EntryError",
    "ForkError",
    "Note",
    "ProofError",
    "RollbackError",
    "StoreError",
    "VerificationError",
    "WitnessError",
    "chain_hash",
    "check_canonical",
    "decode",
    "empty_root",
    "format_time",
    "hash_children",
    "hash_leaf",
    "open_checkpoint",
    "root_from_inclusion_proof",
    "sign_checkpoint",
    "verify_consistency",
    "verify_inclusion",
    "verify_note",
]
