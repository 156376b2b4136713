"""Every de-identified release that was ever public, for the next derivative to be built against
(第十二条; issue 14, round 3 of the red team).

An outsider keeps every open file: older versions of a dataset after a newer one is signed,
files of datasets whose tier was lowered since, other owners' files. The next derivative's
counts are anchored to all of them (:mod:`sandbox.governance.granular_counts`), so this reads every
co-signed derivative, checking each file against its recorded hash.
"""

from __future__ import annotations

import hashlib
import io
import json

import pyarrow.parquet as pq

from sandbox.governance import datasets, deidentify
from sandbox.store.context import Context


def signed_derivatives(sb: Context, v: datasets.DatasetVersion) -> list[deidentify.Previous]:
    """Every co-signed derivative of any dataset and version, and every one of the same owner
    awaiting the regulator (two yearly files submitted together are each built against the other,
    whichever is signed first; another owner's pending file is not public, nor its existence),
    newest first. ``v``: the version whose derivative is being built."""
    rows = sb.conn().execute(
        "SELECT x.id, x.file_name, x.content_hash, x.recipe_json, x.approved_at, d.name, dv.version FROM dataset_derivatives x "
        "JOIN dataset_versions dv ON dv.id = x.version_id JOIN datasets d ON d.id = dv.dataset_id "
        "JOIN publication_reviews r ON r.id = x.review_id "
        "WHERE x.approved_at IS NOT NULL OR (r.status = 'awaiting_regulator' AND d.owner_id = "
        "(SELECT owner_id FROM datasets WHERE id = ?)) ORDER BY x.id DESC", (v.dataset_id,)).fetchall()
    out = []
    for r in rows:
        plain = (sb.ws.data_dir / r["file_name"]).read_bytes()
        if "sha256:" + hashlib.sha256(plain).hexdigest() != r["content_hash"]:
            raise datasets.DataIntegrityError(f"the signed de-identified release {r['file_name']} does not match its "
                                              "recorded hash; a new release cannot be checked against it")
        out.append(deidentify.Previous(pq.read_table(io.BytesIO(plain)), json.loads(r["recipe_json"]),
                                       name=f"{r['name']} v{r['version']}", public=r["approved_at"] is not None))
    return out
