"""Tiers that cannot leak (issue 14; 第八、十、十一、十二条; personal-information law).

The "must show" test: every path by which a dataset's rows could become downloadable — a tier
change, a first publication, a re-upload as a new version, the download endpoints — tried as the
owner and as the regulator, with identifier columns declared, mis-declared and hidden in free
text. Nothing ever releases an identifier column raw; the unconditional download is the
co-signed de-identified derivative, which meets its k-anonymity target, and the log entry
carries its scan, its recipe and both signatures.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from sandbox.governance import datasets, review_signatures, risk_scan
from sandbox.service.operations import SandboxAdmin
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.test_workflow_support import audit_entries, audit_size, bearer, demo_copy

RESIDENT_IDENTIFIERS = ("person_id", "name", "id_number", "phone")


@pytest.fixture
def env(demo_template, tmp_path):
    sb, creds = demo_copy(demo_template, tmp_path)
    client = create_app(sb, {"TESTING": True}).test_client()
    tok = {r: bearer(creds[r]["token"]) for r in ("owner", "regulator", "researcher")}
    return sb, client, tok


def raw_values(sb, name: str, columns) -> set[str]:
    table = sb.tables.get(datasets.latest_versions(sb.conn(), include_unpublished=True)[
        [v.name for v in datasets.latest_versions(sb.conn(), include_unpublished=True)].index(name)])
    return {str(x) for c in columns for x in table.column(c).to_pylist() if x is not None and len(str(x)) >= 2}


def downloads(client, name: str, headers=None) -> list[pa.Table]:
    """Every download endpoint and format, anonymous and logged in; each must succeed."""
    out = []
    for h in ({}, headers or {}):
        csv = client.get(f"/api/v1/datasets/{name}/download?format=csv", headers=h)
        assert csv.status_code == 200, csv.json
        out.append(pacsv.read_csv(io.BytesIO(csv.data)))
        par = client.get(f"/api/v1/datasets/{name}/download?format=parquet", headers=h)
        assert par.status_code == 200
        out.append(pq.read_table(io.BytesIO(par.data)))
    return out


def assert_no_identifiers(tables: list[pa.Table], forbidden_columns, forbidden_values: set[str]) -> None:
    for t in tables:
        assert not set(t.column_names) & set(forbidden_columns), t.column_names
        text = {str(x) for c in t.column_names for x in t.column(c).to_pylist()}
        assert not text & forbidden_values, sorted(text & forbidden_values)[:3]
        for c in t.column_names:  # and the risk scan finds nothing identifier-like in what left
            assert risk_scan.scan_column(c, t.column(c), "sensitive") == [], c


def not_downloadable(client, name: str) -> None:
    for fmt in ("csv", "parquet"):
        r = client.get(f"/api/v1/datasets/{name}/download?format={fmt}")
        assert r.status_code in (403, 404, 409), r.status_code


def decide(client, tok, review_id: int, decision: str = "approve"):
    return client.post(f"/api/v1/reviews/{review_id}/decision", headers=tok["regulator"],
                       json={"decision": decision, "reason": "reviewed (第十二条)"})


def test_tier_change_to_unconditional_never_publishes_identifiers(env):
    """The issue's leak: residents → unconditional with basis "test". Now: scan, co-signature,
    and a derivative without names, ID numbers, phones or the unit."""
    sb, client, tok = env
    secrets_ = raw_values(sb, "residents", ("name", "id_number", "phone"))
    # as the regulator: only a proposal (第十条 修改意见); nothing changes, nothing downloads
    r = client.post("/api/v1/datasets/residents/tier", headers=tok["regulator"],
                    json={"tier": "unconditional", "basis": "test"})
    assert r.status_code == 202 and r.json["status"] == "proposed"
    assert client.get("/api/v1/catalog/residents").json["tier"] == "conditional"
    not_downloadable(client, "residents")
    assert decide(client, tok, r.json["review_id"]).status_code == 409  # not awaiting a signature
    assert client.post(f"/api/v1/reviews/{r.json['review_id']}/answer", headers=tok["owner"],
                       json={"accept": False, "reasons": "not yet assessed"}).json["status"] == "declined"
    # as the owner: the basis alone is not enough; the submission waits for the regulator
    assert client.post("/api/v1/datasets/residents/tier", headers=tok["owner"],
                       json={"tier": "unconditional"}).json["error"]["code"] == "missing_basis"
    mark = audit_size(sb)
    r = client.post("/api/v1/datasets/residents/tier", headers=tok["owner"],
                    json={"tier": "unconditional", "basis": "test", "k_anonymity": 10})
    assert r.status_code == 202 and r.json["status"] == "awaiting_regulator", r.json
    review = r.json["review_id"]
    assert {d["column"] for d in r.json["recipe"]["dropped"]} >= set(RESIDENT_IDENTIFIERS)
    assert client.get("/api/v1/catalog/residents").json["tier"] == "conditional"
    not_downloadable(client, "residents")
    # the owner cannot sign for the regulator, nor the researcher
    assert client.post(f"/api/v1/reviews/{review}/decision", headers=tok["owner"],
                       json={"decision": "approve", "reason": "me"}).status_code == 403
    assert client.get(f"/api/v1/reviews/{review}", headers=tok["researcher"]).status_code == 403
    assert decide(client, tok, review).status_code == 200
    tables = downloads(client, "residents", tok["researcher"])
    assert_no_identifiers(tables, RESIDENT_IDENTIFIERS, secrets_)
    # the derivative meets the owner's k-anonymity target (one row per resident: rows = persons)
    qis = ["district", "age", "sex", "education"]
    sizes = tables[0].group_by(qis).aggregate([([], "count_all")]).column("count_all").to_pylist()
    assert min(sizes) >= 10
    # the log entry: old and new tier, the scan on the derivative, the recipe, both signatures
    (entry,) = audit_entries(sb, "dataset.tier_changed", mark)
    d = entry["details"]
    assert (d["from"], d["to"], d["basis"]) == ("conditional", "unconditional", "test")
    assert d["scan"]["passed"] is True and d["scan"]["k"] >= 10 and d["scan"]["findings"] == []
    assert d["recipe"]["k_target"] == 10 and d["recipe"]["k_achieved"] >= 10
    assert (d["owner_signature"]["signer"], d["regulator_signature"]["signer"]) == ("owner", "regulator")
    assert review_signatures.verify(sb, review) == ["owner", "regulator"]
    entry = client.get("/api/v1/catalog/residents").json
    assert entry["open_release"]["recipe"]["k_target"] == 10
    assert [(h["by"], h["signed_by"]) for h in entry["tier_history"]] == [("owner", "regulator")]


MISDECLARED = """
[dataset]
legal_basis = "test: consent (第二十条)"
name = "people"
title = "People (test: identifiers mis-declared)"
owner = "owner"
tier = "unconditional"
privacy_unit = "pid"
update_frequency = "monthly"
one_row_per_unit = true

[columns.pid]
type = "int"
sensitivity = "sensitive"

[columns.id_number]
type = "text"
sensitivity = "sensitive"

[columns.full_name]
type = "text"
sensitivity = "quasi_identifier"

[columns.note]
type = "text"
sensitivity = "public"

[columns.district]
type = "text"
sensitivity = "quasi_identifier"

[columns.age]
type = "int"
sensitivity = "quasi_identifier"
bounds = [0, 100]
"""


def people(sb, rows: int = 400, *, extra_phone: bool = False) -> pa.Table:
    """Rows of the demo's residents with identifiers under innocent names."""
    v = next(x for x in datasets.latest_versions(sb.conn()) if x.name == "residents")
    r = sb.tables.get(v).slice(0, rows)
    cols = {
        "pid": r.column("person_id"), "id_number": r.column("id_number"), "full_name": r.column("name"),
        "note": pa.array([f"联系电话 {p}" if extra_phone else "无" for p in r.column("phone").to_pylist()]),
        "district": r.column("district"), "age": r.column("age"),
    }
    return pa.table(cols)


def test_first_publication_and_new_versions_never_publish_identifiers(env):
    """A dataset registered as unconditional, identifiers declared as anything but identifiers;
    then a re-upload that hides phone numbers in a "public" free-text column."""
    sb, client, tok = env
    owner, regulator = find_user(sb.conn(), "owner"), find_user(sb.conn(), "regulator")
    admin = SandboxAdmin(sb)
    admin.add_dataset("people", people(sb), MISDECLARED, actor=owner)
    secrets_ = raw_values(sb, "people", ("id_number", "full_name"))
    # the regulator cannot publish (acknowledgement is the owner's), and nothing is listed yet
    assert client.post("/api/v1/datasets/people/risk/ack", headers=tok["regulator"]).status_code == 403
    assert client.get("/api/v1/datasets/people/download?format=csv").status_code == 404
    r = client.post("/api/v1/datasets/people/risk/ack", headers=tok["owner"],
                    json={"note": "I say it is fine", "acknowledge_findings": "ignore the scan"})
    assert r.status_code == 202 and r.json["published"] is False
    dropped = {d["column"]: d["reason"] for d in r.json["recipe"]["dropped"]}
    assert "resident ID" in dropped["id_number"] and "names" in dropped["full_name"]
    assert client.get("/api/v1/datasets/people/download?format=csv").status_code == 404  # still unpublished
    assert decide(client, tok, r.json["review_id"]).status_code == 200
    assert_no_identifiers(downloads(client, "people", tok["owner"]), ("pid", "id_number", "full_name"), secrets_)

    # a re-upload as a new version: phones now hidden in a "public" note column
    admin.add_dataset("people", people(sb, extra_phone=True), MISDECLARED, actor=owner)
    phones = raw_values(sb, "residents", ("phone",))
    # until the new derivative is co-signed, the download is still the old, signed one
    before = downloads(client, "people")
    assert_no_identifiers(before, ("pid", "id_number", "full_name"), secrets_ | phones)
    r = client.post("/api/v1/datasets/people/risk/ack", headers=tok["owner"], json={"note": "v2"})
    assert r.status_code == 202, r.json
    assert "mobile" in {d["column"]: d["reason"] for d in r.json["recipe"]["dropped"]}["note"]
    assert decide(client, tok, r.json["review_id"]).status_code == 200
    after = downloads(client, "people", tok["regulator"])
    assert_no_identifiers(after, ("pid", "id_number", "full_name", "note"), secrets_ | phones)
    assert {e["details"]["version"] for e in audit_entries(sb, "dataset.published")
            if e["details"]["dataset"] == "people"} == {1, 2}
    assert admin.publish  # the CLI/demo path goes through the same review (sandbox.service.operations)
    assert regulator is not None


def test_a_release_that_cannot_meet_k_is_refused(env):
    sb, client, tok = env
    owner = find_user(sb.conn(), "owner")
    SandboxAdmin(sb).add_dataset("people", people(sb, rows=4), MISDECLARED, actor=owner)
    r = client.post("/api/v1/datasets/people/risk/ack", headers=tok["owner"], json={"note": "tiny"})
    assert r.status_code == 409 and r.json["error"]["code"] == "deidentification_failed"
    assert "fewer than the k-anonymity target" in r.json["error"]["message"]
    r = client.post("/api/v1/datasets/people/risk/ack", headers=tok["owner"], json={"k_anonymity": 2})
    assert r.status_code == 400 and r.json["error"]["code"] == "bad_k_anonymity"
    not_downloadable(client, "people")


def test_conditional_findings_need_an_explicit_acknowledgement(env):
    """第十二条: raising not-open data to conditional with a failing scan needs the owner's
    explicit acknowledgement, then the co-signature; the sandbox still never returns identifiers."""
    sb, client, tok = env
    owner, regulator = find_user(sb.conn(), "owner"), find_user(sb.conn(), "regulator")
    admin = SandboxAdmin(sb)
    admin.add_dataset("people", people(sb), MISDECLARED.replace('"unconditional"', '"not_open"'), actor=owner)
    assert admin.acknowledge_risk(owner, "people", "not open: owner alone")["published"] is True
    body = {"tier": "conditional", "basis": "reassessed", "deidentification": "none needed: DP only"}
    # identifiers under other declarations would be queryable: refused, acknowledgement or not
    for extra in ({}, {"acknowledge_findings": "I accept the findings"}):
        r = client.post("/api/v1/datasets/people/tier", headers=tok["owner"], json={**body, **extra})
        assert r.status_code == 409 and r.json["error"]["code"] == "identifier_undeclared", r.json
        assert "id_number (resident ID numbers)" in r.json["error"]["message"]
    # declared properly (a new version), only the k-anonymity finding remains: it needs an
    # explicit acknowledgement (DP aggregates only), then the regulator's signature
    fixed = (MISDECLARED.replace('"unconditional"', '"not_open"')
             .replace('[columns.id_number]\ntype = "text"\nsensitivity = "sensitive"',
                      '[columns.id_number]\ntype = "text"\nsensitivity = "identifier"')
             .replace('[columns.full_name]\ntype = "text"\nsensitivity = "quasi_identifier"',
                      '[columns.full_name]\ntype = "text"\nsensitivity = "identifier"'))
    admin.add_dataset("people", people(sb), fixed, actor=owner)
    assert admin.acknowledge_risk(owner, "people", "v2 declared")["published"] is True
    r = client.post("/api/v1/datasets/people/tier", headers=tok["owner"], json=body)
    assert r.status_code == 409 and r.json["error"]["code"] == "risk_scan_failed", r.json
    r = client.post("/api/v1/datasets/people/tier", headers=tok["owner"],
                    json={**body, "acknowledge_findings": "DP aggregates only; k < 5 accepted"})
    assert r.status_code == 202, r.json
    assert client.get("/api/v1/catalog/people", headers=tok["owner"]).json["tier"] == "not_open"
    r = client.post(f"/api/v1/reviews/{r.json['review_id']}/decision", headers=tok["regulator"],
                    json={"decision": "reject", "reason": "declare the identifiers first"})
    assert r.json["status"] == "rejected"
    assert client.get("/api/v1/catalog/people", headers=tok["owner"]).json["tier"] == "not_open"
    assert regulator is not None
    not_downloadable(client, "people")


def test_lowering_a_tier_is_immediate_and_closes_the_download(env):
    sb, client, tok = env
    owner, regulator = find_user(sb.conn(), "owner"), find_user(sb.conn(), "regulator")
    admin = SandboxAdmin(sb)
    admin.add_dataset("people", people(sb), MISDECLARED, actor=owner)
    admin.publish(owner, "people", "ok", regulator=regulator)
    assert client.get("/api/v1/datasets/people/download?format=csv").status_code == 200
    r = client.post("/api/v1/datasets/people/tier", headers=tok["regulator"],
                    json={"tier": "conditional", "basis": "complaint received"})
    assert r.status_code == 200 and r.json["tier"] == "conditional"
    assert client.get("/api/v1/datasets/people/download?format=csv").status_code == 403
