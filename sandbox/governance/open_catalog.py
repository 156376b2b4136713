"""The open list (开放清单, 第十四条), tiers (第八、十、十一条), downloads and risk reports (第十二条).

Visibility follows the tiers: unconditional and conditional datasets are listed for
everybody, without login; not-open datasets, and datasets whose risk report their owner has
not yet acknowledged, only for their owner and regulators. Unconditional data downloads
through its co-signed de-identified derivative only (CSV or Parquet; identifiers dropped,
quasi-identifiers generalised to the owner's k-anonymity target: :mod:`sandbox.governance.deidentify`);
conditional data is reachable only through the sandbox; not-open data never leaves.
PRIVACY: no path here ever serves a stored version's file.

Lowering a tier is immediate, with a basis (第十条). Raising one, and publishing a version
that needs review, goes through :mod:`sandbox.governance.publication`: basis, a fresh risk scan of what
would be published, the regulator's co-signature; the tier history shows both signers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sqlite3
from typing import Any, Final

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

import audit_log.store as audit_store
from audit_log.actions import Action
from sandbox.clock import iso
from sandbox.errors import BadRequest, SandboxError
from sandbox.governance import (
    classification,
    dataset_access,
    datasets,
    deadlines,
    legal_basis,
    publication,
    risk_scan,
)
from sandbox.governance.policy import TIERS
from sandbox.store import authz, fields
from sandbox.store.context import Context
from sandbox.store.fields import conflict, username_of
from sandbox.store.users import User
from sandbox.store.workspace import transaction

OPEN_CONDITIONS: Final = {
    "unconditional": "无条件开放: open to everyone; download as CSV or Parquet (第八条).",
    "conditional": "有条件开放: apply through the portal stating scenario, purpose and security "
                   "commitment; approved researchers query through the sandbox and receive "
                   "differentially private aggregates only (第十五、十八条).",
    "not_open": "不予开放: not opened; visible only to its owner and the regulator (第八条).",
}
DOWNLOAD_FORMATS: Final = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


# -- the open list ----------------------------------------------------------------------------
def _tier_history(conn: sqlite3.Connection, dataset_id: int) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM dataset_tier_changes WHERE dataset_id = ? ORDER BY id", (dataset_id,))
    return [{"tier_change_id": r["id"], "from": r["from_tier"], "to": r["to_tier"], "basis": r["basis"],
             "deidentification": r["deidentification"] or None, "by": username_of(conn, r["changed_by"]),
             "signed_by": username_of(conn, r["signed_by"]), "review_id": r["review_id"],
             "at": r["created_at"]} for r in rows]


def _open_release(conn: sqlite3.Connection, version: datasets.DatasetVersion | None) -> dict[str, Any] | None:
    """The co-signed derivative an unconditional download serves: its recipe and hash."""
    if version is None:
        return None
    der = publication.open_derivative(conn, version.version_id)
    if der is None:
        return None
    return {"recipe": json.loads(der["recipe_json"]), "content_hash": der["content_hash"], "rows": der["rows"],
            "review_id": der["review_id"], "k_target": der["k_target"]}


#: Counts of the stored (raw) data in a recipe: exact aggregates of conditional data.
_RAW_COUNTS = frozenset({"persons", "rows", "source_rows"})


def _public_recipe(value: Any) -> Any:
    """A recipe as the public sees it: without counts of the raw data (how many persons,
    rows suppressed, held back or retained). PRIVACY: those are exact aggregates of the
    stored data, and one more or less between versions shows a single person joining or
    leaving, which the derivative itself holds back (round-2 red team)."""
    if isinstance(value, dict):
        return {k: _public_recipe(v) for k, v in value.items()
                if k not in _RAW_COUNTS and not k.endswith("_rows") and k != "departures_unmasked"}
    if isinstance(value, list):
        return [_public_recipe(v) for v in value]
    return value


def _listable(version: datasets.DatasetVersion | None, column: str) -> bool:
    """PRIVACY (第八、十二条): a column's ``public_values`` are listed on public pages only when the
    version's risk scan found no identifiers in it and every value in the data is held by at least
    K_MIN persons (``value_support``); a list of names taken from the policy is not public."""
    report = version.risk_report if version is not None else {}
    if any(f.get("column") == column for f in report.get("identifier_findings", [])):
        return False
    support = (report.get("value_support") or {}).get(column)
    return support is not None and support >= risk_scan.K_MIN


def entry(conn: sqlite3.Connection, row: sqlite3.Row, *, privileged: bool,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """One catalog entry. ``privileged`` (owner, regulator): unpublished versions too."""
    versions = [v for v in datasets.all_versions(conn, row["id"]) if privileged or v.published]
    latest = versions[-1] if versions else None
    published = [v for v in versions if v.published]
    current = published[-1] if published else latest
    policy = current.policy if current else None
    open_release = _open_release(conn, published[-1] if published else None) if row["tier"] == "unconditional" else None
    if open_release is not None and not privileged:
        open_release = {**open_release, "recipe": _public_recipe(open_release["recipe"])}
    out: dict[str, Any] = {
        "name": row["name"], "title": row["title"], "title_zh": policy.title_zh if policy else "",
        "description": policy.description if policy else "", "owner": username_of(conn, row["owner_id"]),
        "tier": row["tier"], "open_conditions": OPEN_CONDITIONS[row["tier"]],
        "update_frequency": policy.update_frequency if policy else None,
        "privacy_unit": policy.privacy_unit if policy else None,
        "version": current.version if current else None,
        "published": bool(published),
        "columns": [
            {"name": c.name, "type": c.type, "sensitivity": c.sensitivity, "description": c.description,
             "unit": c.unit, "bounds": [str(b) for b in c.bounds] if c.bounds else None,
             "public_values": (list(c.public_values) if c.public_values and (privileged or _listable(current, c.name))
                               else None)}
            for c in (policy.columns.values() if policy else [])
        ],
        # PRIVACY: a version's row count and content hash describe the stored data exactly
        # (a count; a hash that confirms a guessed table): owners and regulators only
        "versions": [
            {"version": v.version, "created_at": v.created_at,
             "rows": v.row_count if privileged else None,
             "content_hash": v.content_hash if privileged else None,
             "published_at": v.published_at, "encrypted_at_rest": v.encrypted}
            for v in versions
        ],
        "tier_history": _tier_history(conn, row["id"]),
        "open_release": open_release,
        # 第二十条 (issue 14): personal information needs a legal basis or consent reference
        "holds_personal_information": bool(policy) and any(
            c.sensitivity in ("identifier", "quasi_identifier") for c in policy.columns.values()),
        "legal_basis": row["legal_basis"] or (policy.legal_basis if policy else "") or None,
        # 第六条 (issue 14): the grade is public; category, basis and who set it for owner and regulator
        "classification": _classification_view(conn, row["id"], privileged),
        # 第十一、十四条 (issue 14): when the tier is due for reassessment, when the next update is due
        "schedule": ({d["kind"]: d["due_at"] for d in deadlines.dataset_schedule(conn, now)
                      if d["id"] == row["id"]} if privileged and published and now is not None else None),
        "access": {
            "download": ({f: f"/api/v1/datasets/{row['name']}/download?format={f}" for f in DOWNLOAD_FORMATS}
                         if row["tier"] == "unconditional" and open_release else None),
            "sandbox": row["tier"] in ("conditional", "unconditional") and bool(published),
        },
    }
    return out


def list_entries(sb: Context, user: User | None) -> list[dict[str, Any]]:
    """``GET /api/v1/catalog``: every entry this caller may see (no login: the public list)."""
    authz.check_role("catalog.read", user)
    conn = sb.conn()
    role = authz.role_of(user)
    out = []
    for row in conn.execute("SELECT * FROM datasets ORDER BY name").fetchall():
        rel = dataset_access.relations(conn, user, row)
        if authz.decide("dataset.read", role, rel) != "allow":
            continue
        privileged = role == "regulator" or "dataset_owner" in rel
        out.append(entry(conn, row, privileged=privileged, now=sb.now()))
    return out


def get_entry(sb: Context, user: User | None, name: str) -> dict[str, Any]:
    row = dataset_access.visible_row(sb, user, "dataset.read", name)
    conn = sb.conn()
    privileged = authz.role_of(user) == "regulator" or (user is not None and row["owner_id"] == user.id)
    return entry(conn, row, privileged=privileged, now=sb.now())


def jsonld(sb: Context, user: User | None, base_url: str) -> dict[str, Any]:
    """The open list as DCAT (W3C Data Catalog Vocabulary, version 3) in JSON-LD."""
    base = base_url.rstrip("/")
    items = []
    for e in list_entries(sb, user):
        dist = []
        for fmt, url in (e["access"]["download"] or {}).items():
            dist.append({"@type": "dcat:Distribution", "dcat:downloadURL": {"@id": base + url},
                         "dcat:mediaType": DOWNLOAD_FORMATS[fmt].split(";")[0], "dct:format": fmt})
        if e["access"]["sandbox"]:
            dist.append({"@type": "dcat:Distribution", "dcat:accessURL": {"@id": base + "/api/v1/queries"},
                         "dct:description": "differentially private aggregates through the sandbox"})
        items.append({
            "@id": f"{base}/api/v1/catalog/{e['name']}", "@type": "dcat:Dataset",
            "dct:identifier": e["name"],
            "dct:title": [{"@value": e["title"], "@language": "en"}]
            + ([{"@value": e["title_zh"], "@language": "zh"}] if e["title_zh"] else []),
            "dct:description": e["description"] or None,
            "dct:publisher": e["owner"], "dct:accessRights": e["tier"],
            "dct:rights": e["open_conditions"], "dct:accrualPeriodicity": e["update_frequency"],
            "dcat:version": str(e["version"]) if e["version"] is not None else None,
            "dct:modified": e["versions"][-1]["created_at"] if e["versions"] else None,
            "dcat:distribution": dist,
            "sbx:informationItems": [{"sbx:name": c["name"], "sbx:type": c["type"],
                                      "sbx:sensitivity": c["sensitivity"]} for c in e["columns"]],
            "sbx:tierHistory": e["tier_history"],
        })
    return {
        "@context": {"dcat": "http://www.w3.org/ns/dcat#", "dct": "http://purl.org/dc/terms/",
                     "sbx": base + "/ns/sandbox#"},
        "@type": "dcat:Catalog", "@id": base + "/catalog.jsonld",
        "dct:title": "开放清单 · open list (济南市公共数据开放利用管理办法 第十四条)",
        "dcat:dataset": items,
    }


# -- downloads --------------------------------------------------------------------------------
def download(sb: Context, user: User | None, name: str, fmt: str) -> tuple[bytes, str, str]:
    """Unconditional data only (无条件开放); logged like every other access path (第九条)."""
    if fmt not in DOWNLOAD_FORMATS:
        raise BadRequest(f"format must be one of {', '.join(DOWNLOAD_FORMATS)}")
    row = dataset_access.visible_row(sb, user, "dataset.download", name)
    conn = sb.conn()
    version = datasets.latest_versions(conn)
    v = next(x for x in version if x.dataset_id == row["id"])
    # PRIVACY: only the co-signed de-identified derivative leaves, never the stored version
    # (第八、十一条; issue 14): identifiers dropped, quasi-identifiers generalised to k.
    der = publication.open_derivative(conn, v.version_id)
    if der is None:
        raise SandboxError(f"{v.name} version {v.version} has no co-signed de-identified release; the owner "
                           "submits one and the regulator signs it (POST /api/v1/datasets/<name>/risk/ack)",
                           code="no_open_release", status=409)
    plain = (sb.ws.data_dir / der["file_name"]).read_bytes()
    if "sha256:" + hashlib.sha256(plain).hexdigest() != der["content_hash"]:
        raise datasets.DataIntegrityError(f"the de-identified release of {v.name} ({der['file_name']}) does not "
                                          "match its recorded hash; it was not served")
    if fmt == "parquet":
        payload = plain
    else:
        sink = io.BytesIO()
        pacsv.write_csv(pq.read_table(io.BytesIO(plain)), sink)
        payload = sink.getvalue()
    with transaction(conn):
        audit_store.append(
            conn, actor=user.username if user else "anonymous", role=authz.role_of(user),
            action=Action.DATASET_DOWNLOADED, subject=f"dataset/{v.name}",
            details={"dataset": v.name, "version": v.version, "content_hash": v.content_hash, "format": fmt,
                     "derivative_sha256": der["content_hash"], "review_id": der["review_id"]},
            now=sb.now(),
        )
    return payload, DOWNLOAD_FORMATS[fmt], f"{v.name}-v{v.version}-deidentified.{fmt}"


# -- tiers (第十、十一条) ------------------------------------------------------------------------
def change_tier(sb: Context, user: User | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
    row = dataset_access.visible_row(sb, user, "dataset.tier", name)
    assert user is not None
    tier = body.get("tier")
    if tier not in TIERS:
        raise BadRequest(f"tier must be one of {', '.join(TIERS)}", code="bad_tier")
    if tier == row["tier"]:
        raise conflict(f"{row['name']!r} is already {tier}")
    basis = fields.text(body, "basis")  # 第十条: a tier decision states its basis
    if publication.is_raise(row["tier"], tier):
        # More open: basis → fresh scan of what would be published → the regulator's co-signature.
        if user.role == "regulator":
            return publication.propose(sb, user, row, tier, body)  # 第十条 修改意见; the owner answers
        v = _newest_published(sb.conn(), row)
        return publication.submit(sb, user, row, v, kind="tier_change", to_tier=tier, body=body)
    deidentification = fields.text(body, "deidentification", required=False)
    conn = sb.conn()
    leftovers = []
    with transaction(conn):
        conn.execute("UPDATE datasets SET tier = ? WHERE id = ?", (tier, row["id"]))
        cur = conn.execute(
            "INSERT INTO dataset_tier_changes (dataset_id, from_tier, to_tier, basis, deidentification, "
            "changed_by, created_at) VALUES (?,?,?,?,?,?,?)",
            (row["id"], row["tier"], tier, basis, deidentification, user.id, iso(sb.now())),
        )
        if tier in datasets.ENCRYPTED_TIERS:
            leftovers = datasets.encrypt_at_rest(conn, sb.ws.data_dir, row["id"], sb.encryptor())
        sb.audit(conn, user, Action.DATASET_TIER_CHANGED, f"dataset/{row['name']}", {
            "dataset": row["name"], "from": row["tier"], "to": tier, "basis": basis,
            "deidentification": deidentification or None, "tier_change_id": cur.lastrowid,
            "encrypted_versions": len(leftovers),
        })
    for path in leftovers:  # only after COMMIT: a rollback keeps the readable plaintext
        path.unlink(missing_ok=True)
    return {"dataset": row["name"], "tier": tier, "tier_change_id": cur.lastrowid}


def _newest_published(conn: sqlite3.Connection, row: sqlite3.Row) -> datasets.DatasetVersion:
    versions = [v for v in datasets.all_versions(conn, row["id"]) if v.published]
    if not versions:
        raise conflict(f"{row['name']!r} has no published version yet: publish one first "
                       f"(POST /api/v1/datasets/{row['name']}/risk/ack), then change its tier")
    return versions[-1]


def _classification_view(conn: sqlite3.Connection, dataset_id: int, privileged: bool) -> dict[str, Any] | None:
    c = classification.of(conn, dataset_id)
    if c is None:
        return None
    return c if privileged else {"grade": c["grade"], "category": c["category"]}


# -- legal basis (第二十条) -----------------------------------------------------------------------
def set_legal_basis(sb: Context, user: User | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """``PUT /api/v1/datasets/<name>/legal-basis`` ``{"legal_basis"}`` (owner): the law, the
    authorisation or the consent reference under which personal information in it is opened."""
    row = dataset_access.visible_row(sb, user, "dataset.legal_basis", name)
    basis = fields.text(body, "legal_basis", limit=1000)
    conn = sb.conn()
    with transaction(conn):
        conn.execute("UPDATE datasets SET legal_basis = ? WHERE id = ?", (basis, row["id"]))
        sb.audit(conn, user, Action.DATASET_LEGAL_BASIS_SET, f"dataset/{row['name']}",
                 {"dataset": row["name"], "old": row["legal_basis"], "new": basis})
    return {"dataset": row["name"], "legal_basis": basis}


# -- risk reports (第十二条) ---------------------------------------------------------------------
def _latest_any(conn: sqlite3.Connection, dataset_id: int) -> datasets.DatasetVersion:
    return datasets.all_versions(conn, dataset_id)[-1]


def risk_report(sb: Context, user: User | None, name: str) -> dict[str, Any]:
    row = dataset_access.visible_row(sb, user, "dataset.risk.read", name)
    conn = sb.conn()
    v = _latest_any(conn, row["id"])
    ack = conn.execute("SELECT published_by, acknowledgement FROM dataset_versions WHERE id = ?",
                       (v.version_id,)).fetchone()
    return {"dataset": v.name, "version": v.version, "published": v.published, "published_at": v.published_at,
            "acknowledged_by": username_of(conn, ack["published_by"]), "acknowledgement": ack["acknowledgement"],
            "report": v.risk_report}


def acknowledge_risk(sb: Context, user: User | None, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The owner has read the report: the newest version is published (queryable, listed), or,
    when it needs review (:func:`sandbox.governance.publication.review_reason`), submitted to the regulator."""
    row = dataset_access.visible_row(sb, user, "dataset.risk.ack", name)
    assert user is not None
    note = fields.text(body, "note", required=False)
    conn = sb.conn()
    v = _latest_any(conn, row["id"])
    if v.published:
        raise conflict(f"{v.name} version {v.version} is already published")
    if "version" in body and body["version"] != v.version:
        raise conflict(f"the newest version of {v.name} is {v.version}, not {body['version']}")
    if publication.review_reason(conn, row["id"], row["tier"], v) is not None:
        # 第十二条: the regulator reviews before anything opens; the owner's step is the submission.
        result = publication.submit(sb, user, row, v, kind="publication", to_tier=row["tier"], body=body)
        return {**result, "published": False}
    checked = v
    with transaction(conn):
        # PRIVACY (race): decide on the version actually published, inside the transaction: a
        # version added since the check above is neither published unchecked nor unreviewed.
        v = _latest_any(conn, row["id"])
        if v.version_id != checked.version_id:
            raise conflict(f"{v.name} version {v.version} was added while version {checked.version} was being "
                           f"acknowledged; read its risk report and acknowledge version {v.version}")
        if v.published:
            raise conflict(f"{v.name} version {v.version} is already published")
        tier = conn.execute("SELECT tier FROM datasets WHERE id = ?", (row["id"],)).fetchone()["tier"]
        if publication.review_reason(conn, row["id"], tier, v) is not None:
            raise conflict(f"{v.name} version {v.version} now needs the regulator's review; acknowledge it again")
        legal_basis.require(conn, v, tier=tier, step="published")  # 第二十条 (issue 14)
        classification.require(conn, row["id"], v.name, tier, v)  # 第六条
        report = v.risk_report
        datasets.publish(conn, v.version_id, user.id, note, now=sb.now)
        sb.audit(conn, user, Action.DATASET_RISK_ACKNOWLEDGED, f"dataset/{v.name}", {
            "dataset": v.name, "version": v.version, "content_hash": v.content_hash, "note": note,
            "risk": risk_scan.summary(report),
        })
    return {"dataset": v.name, "version": v.version, "published": True}
