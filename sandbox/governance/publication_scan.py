"""What a publication review would publish, scanned at submission (第十二条; issue 14).

For the unconditional tier it is the de-identified derivative (:mod:`sandbox.governance.deidentify`),
which must pass its scan; for the conditional tier it is the stored data, whose findings the owner
must clear or acknowledge — but never an identifier in a column not declared identifier. Split
out of :mod:`sandbox.governance.publication`, which submits what :func:`prepare` returns; the
tier disputes (:mod:`sandbox.governance.tier_disputes`) submit through it too.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from sandbox.errors import BadRequest, SandboxError
from sandbox.governance import (
    classification,
    datasets,
    deidentify,
    legal_basis,
    open_history,
    risk_scan,
)
from sandbox.store import fields
from sandbox.store.context import Context

K_TARGET_MAX: Final = 1000


def _k_target(body: dict[str, Any]) -> int:
    raw = body.get("k_anonymity", risk_scan.K_MIN)
    if isinstance(raw, bool) or not isinstance(raw, int) or not risk_scan.K_MIN <= raw <= K_TARGET_MAX:
        raise BadRequest(f"k_anonymity must be a whole number from {risk_scan.K_MIN} to {K_TARGET_MAX} "
                         "(every quasi-identifier combination of the download is shared by at least k persons)",
                         code="bad_k_anonymity")
    return raw


def _read_table(sb: Context, v: datasets.DatasetVersion) -> pa.Table:
    return pq.read_table(io.BytesIO(datasets.read_plaintext(sb.ws.data_dir, v, sb.decryptor())))


def prepare(sb: Context, v: datasets.DatasetVersion, to_tier: str, body: dict[str, Any]) -> dict[str, Any]:
    """Scan what ``to_tier`` would publish of ``v``; build the derivative for unconditional."""
    # 第二十条: personal information opens only on a recorded legal basis, checked before any read
    legal_basis.require(sb.conn(), v, tier=to_tier, step=f"submitted for publication as {to_tier}")
    classification.require(sb.conn(), v.dataset_id, v.name, to_tier, v)  # 第六条: the grade's ceiling
    table = _read_table(sb, v)
    sens = {c.name: c.sensitivity for c in v.policy.columns.values()}
    raw_scan = risk_scan.scan(table, sens, privacy_unit=v.policy.privacy_unit, dataset=v.name)
    ack = fields.text(body, "acknowledge_findings", required=False)
    out: dict[str, Any] = {"ack": ack, "k_target": None, "derivative": None}
    if to_tier == "unconditional":
        k_target = _k_target(body)
        der = deidentify.make_derivative(table, v.policy, raw_scan, k_target=k_target,
                                         previous=_previous_release(sb, v),
                                         published=open_history.signed_derivatives(sb, v))
        sink = io.BytesIO()
        pq.write_table(der.table, sink, compression="zstd")
        out.update(scan=der.scan, k_target=k_target, derivative=(sink.getvalue(), der.recipe))
        return out
    undeclared = [f for f in raw_scan["identifier_findings"] if f["severity"] == "high"]
    if undeclared:
        # PRIVACY: an identifier the policy does not declare would be queryable (a group key, a
        # distinct count); no acknowledgement can allow that: the policy must say identifier.
        cols = ", ".join(sorted({f"{f['column']} ({risk_scan.KIND_LABELS.get(f['kind'], f['kind'])})"
                                 for f in undeclared}))
        raise SandboxError(
            f"{v.name} version {v.version} holds identifiers in columns not declared identifier: {cols}. "
            "Declare them sensitivity = \"identifier\" (never queryable) or remove them, and add a new "
            "version; this cannot be acknowledged (第十二条)", code="identifier_undeclared", status=409)
    if not raw_scan["passed"] and not ack:
        raise SandboxError(
            f"the risk scan of {v.name} version {v.version} found problems: {'; '.join(raw_scan['problems'])}. "
            "Fix the data or its policy and add a new version, or acknowledge the findings explicitly "
            "(field acknowledge_findings: what you checked and why the release is safe) (第十二条)",
            code="risk_scan_failed", status=409)
    out["scan"] = raw_scan
    return out


def _previous_release(sb: Context, v: datasets.DatasetVersion) -> deidentify.Previous | None:
    """The dataset's last co-signed derivative (public once, whatever the tier is now): the new
    derivative must not differ from it in fewer than k rows of a combination (differencing)."""
    der = sb.conn().execute(
        "SELECT x.file_name, x.content_hash, x.recipe_json FROM dataset_derivatives x JOIN dataset_versions dv "
        "ON dv.id = x.version_id WHERE dv.dataset_id = ? AND x.approved_at IS NOT NULL ORDER BY x.id DESC LIMIT 1",
        (v.dataset_id,)).fetchone()
    if der is None:
        return None
    plain = (sb.ws.data_dir / der["file_name"]).read_bytes()
    if "sha256:" + hashlib.sha256(plain).hexdigest() != der["content_hash"]:
        raise datasets.DataIntegrityError(f"the signed de-identified release {der['file_name']} does not match its "
                                          "recorded hash; the next release cannot be checked against it")
    return deidentify.Previous(pq.read_table(io.BytesIO(plain)), json.loads(der["recipe_json"]))
