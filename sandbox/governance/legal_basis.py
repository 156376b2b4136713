"""The legal basis of personal information, required before it opens (第八、二十条; issue 14).

第二十条: personal information in public data is obtained and used only with the right holders'
authorisation or consent; 第八条 keeps it *not open* without that consent. So a dataset whose
columns hold personal information (a column declared ``identifier`` or ``quasi_identifier``)
records its legal basis — the law, the authorisation or the consent reference — and the record
is **required**, not only shown: no review is submitted or co-signed, no version is published by
its owner, and no approval is granted on such a dataset while it has none. Not-open data needs
none (nothing leaves).

The basis is what the owner recorded (``PUT /api/v1/datasets/<name>/legal-basis``) or, failing
that, what the version's policy file declares (``[dataset] legal_basis = "…"``).
"""

from __future__ import annotations

import sqlite3
from typing import Final

from sandbox.errors import SandboxError
from sandbox.governance import datasets

PERSONAL: Final = ("identifier", "quasi_identifier")
RULE: Final = "第二十条"


class LegalBasisRequired(SandboxError):
    code = "legal_basis_required"
    http_status = 409


def personal_columns(v: datasets.DatasetVersion) -> list[str]:
    """The columns of ``v`` that hold personal information (declared identifier or quasi-identifier)."""
    return sorted(c.name for c in v.policy.columns.values() if c.sensitivity in PERSONAL)


def of(conn: sqlite3.Connection, dataset_id: int, v: datasets.DatasetVersion | None = None) -> str:
    """The dataset's legal basis: the owner's record, else the policy's declaration, else ``""``."""
    row = conn.execute("SELECT legal_basis FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    recorded = (row["legal_basis"] or "").strip() if row else ""
    if recorded:
        return recorded
    if v is None:
        versions = datasets.all_versions(conn, dataset_id)
        v = versions[-1] if versions else None
    return (v.policy.legal_basis.strip() if v is not None else "")


def require(conn: sqlite3.Connection, v: datasets.DatasetVersion, *, tier: str, step: str) -> str:
    """Raise :class:`LegalBasisRequired` when ``v`` is about to open (``tier`` conditional or
    unconditional) with personal information and no legal basis; returns the basis (may be ``""``
    when none is needed)."""
    basis = of(conn, v.dataset_id, v)
    cols = personal_columns(v)
    if tier == "not_open" or not cols or basis:
        return basis
    shown = ", ".join(cols[:6]) + (" …" if len(cols) > 6 else "")
    raise LegalBasisRequired(
        f"{v.name} holds personal information (columns {shown}) and has no legal basis or consent reference "
        f"recorded, so it cannot be {step} ({RULE}: personal information is opened and used only with the right "
        f"holders' authorisation or consent; 第八条: without it the data stays not open). Record it first: "
        f"PUT /api/v1/datasets/{v.name}/legal-basis {{\"legal_basis\": \"…\"}}, the dataset page in the console, "
        "or legal_basis in the policy file's [dataset] table")
