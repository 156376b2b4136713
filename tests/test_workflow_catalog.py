"""The open list, tiers, risk acknowledgement and downloads (第八、十、十一、十二、十四条)."""

from __future__ import annotations

import io

import pyarrow.csv as pacsv
import pytest

from sandbox.governance import datasets
from sandbox.service.operations import SandboxAdmin
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.test_workflow_support import (
    FIXTURES,
    audit_entries,
    audit_size,
    bearer,
    demo_copy,
    permits_table,
)


def register_permits(sb, tier: str, *, acknowledge: bool = True) -> None:
    """``permits`` as a dataset of the demo owner, in ``tier``."""
    text = (FIXTURES / "permits.toml").read_text(encoding="utf-8")
    text = text.replace('owner = "owner2"', 'owner = "owner"').replace('tier = "conditional"', f'tier = "{tier}"')
    owner = find_user(sb.conn(), "owner")
    admin = SandboxAdmin(sb)
    admin.add_dataset("permits", permits_table(), text, actor=owner)
    if acknowledge:
        admin.publish(owner, "permits", "checked", regulator=find_user(sb.conn(), "regulator"))


@pytest.fixture
def app_client(demo_template, tmp_path):
    sb, creds = demo_copy(demo_template, tmp_path)
    return sb, create_app(sb, {"TESTING": True}).test_client(), creds


def names(resp) -> set[str]:
    assert resp.status_code == 200, resp.json
    return {d["name"] for d in resp.json["datasets"]}


def test_public_catalog_needs_no_login_and_lists_information_items(app_client):
    _, client, _ = app_client
    r = client.get("/api/v1/catalog")
    assert names(r) == {"residents", "clinic_visits"}
    residents = next(d for d in r.json["datasets"] if d["name"] == "residents")
    assert residents["tier"] == "conditional" and residents["update_frequency"] == "monthly"
    assert {c["name"]: c["sensitivity"] for c in residents["columns"]}["id_number"] == "identifier"
    assert residents["access"] == {"download": None, "sandbox": True}
    assert residents["versions"][0]["published_at"] and residents["versions"][0]["encrypted_at_rest"]


def test_not_open_dataset_is_visible_only_to_its_owner_and_regulators(app_client):
    sb, client, creds = app_client
    register_permits(sb, "not_open")
    assert "permits" not in names(client.get("/api/v1/catalog"))
    assert "permits" not in names(client.get("/api/v1/catalog", headers=bearer(creds["researcher"]["token"])))
    assert "permits" in names(client.get("/api/v1/catalog", headers=bearer(creds["owner"]["token"])))
    assert "permits" in names(client.get("/api/v1/catalog", headers=bearer(creds["regulator"]["token"])))
    assert "permits" not in names(client.get("/api/v1/datasets", headers=bearer(creds["researcher"]["token"])))
    for path in ("/api/v1/catalog/permits", "/api/v1/datasets/permits/download?format=csv"):
        hidden, missing = client.get(path), client.get(path.replace("permits", "nothing"))
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json["error"]["message"].replace("permits", "X") == \
            missing.json["error"]["message"].replace("nothing", "X")
    jsonld = client.get("/catalog.jsonld").get_json(force=True)
    assert "permits" not in {d["dct:identifier"] for d in jsonld["dcat:dataset"]}
    # researchers cannot apply for it either, and the refusal reads like an unknown name
    r = client.post("/api/v1/applications", headers=bearer(creds["researcher"]["token"]), json={
        "datasets": ["permits"], "scenario": "s", "purpose": "p", "commitment_accepted": True})
    assert r.status_code == 400 and r.json["error"]["code"] == "unknown_dataset"


def test_jsonld_export_is_dcat(app_client):
    _, client, _ = app_client
    r = client.get("/catalog.jsonld")
    assert r.status_code == 200 and r.mimetype == "application/ld+json"
    doc = r.get_json(force=True)
    assert doc["@context"]["dcat"] == "http://www.w3.org/ns/dcat#" and doc["@type"] == "dcat:Catalog"
    entry = next(d for d in doc["dcat:dataset"] if d["dct:identifier"] == "residents")
    assert entry["@type"] == "dcat:Dataset" and entry["dct:accessRights"] == "conditional"
    assert entry["dct:accrualPeriodicity"] == "monthly"
    assert {"@value": "济南市常住人口登记（合成演示数据）", "@language": "zh"} in entry["dct:title"]


def test_risk_report_must_be_acknowledged_before_publication(app_client):
    """第十二条: the owner sees the report; until acknowledged the dataset is not queryable."""
    sb, client, creds = app_client
    register_permits(sb, "conditional", acknowledge=False)
    owner = bearer(creds["owner"]["token"])
    assert "permits" not in names(client.get("/api/v1/catalog"))
    assert "permits" in {v.name for v in datasets.latest_versions(sb.conn(), include_unpublished=True)}
    assert "permits" not in {v.name for v in datasets.latest_versions(sb.conn())}  # what queries see
    report = client.get("/api/v1/datasets/permits/risk", headers=owner)
    assert report.status_code == 200 and report.json["published"] is False
    assert report.json["report"]["quasi_identifiers"]["columns"] == ["district"]
    assert client.get("/api/v1/datasets/permits/risk",
                      headers=bearer(creds["regulator"]["token"])).status_code == 200
    assert client.get("/api/v1/datasets/permits/risk",
                      headers=bearer(creds["researcher"]["token"])).status_code == 403
    assert client.post("/api/v1/datasets/permits/risk/ack",
                       headers=bearer(creds["regulator"]["token"])).status_code == 403
    mark = audit_size(sb)
    # issue 14: a first publication is the owner's submission; the regulator co-signs it
    r = client.post("/api/v1/datasets/permits/risk/ack", headers=owner, json={"note": "k is fine"})
    assert r.status_code == 202 and r.json["published"] is False and r.json["status"] == "awaiting_regulator"
    (entry,) = audit_entries(sb, "publication.submitted", mark)
    assert (entry["actor"], entry["role"], entry["details"]["basis"]) == ("owner", "owner", "k is fine")
    assert "permits" not in names(client.get("/api/v1/catalog"))
    assert client.post("/api/v1/datasets/permits/risk/ack", headers=owner).status_code == 409  # one at a time
    r = client.post(f"/api/v1/reviews/{r.json['review_id']}/decision", headers=bearer(creds["regulator"]["token"]),
                    json={"decision": "approve", "reason": "reviewed (第十二条)"})
    assert r.status_code == 200 and r.json["status"] == "approved"
    (entry,) = audit_entries(sb, "dataset.published", mark)
    assert entry["actor"] == "regulator" and entry["details"]["owner_signature"]["signer"] == "owner"
    assert entry["details"]["regulator_signature"]["signer"] == "regulator"
    assert "permits" in names(client.get("/api/v1/catalog"))
    assert client.post("/api/v1/datasets/permits/risk/ack", headers=owner).status_code == 409


def test_tier_change_needs_a_basis_and_deidentification_and_is_history(app_client):
    """第十条: a basis for every tier decision; 第十一条: not-open → conditional after de-identification."""
    sb, client, creds = app_client
    register_permits(sb, "not_open")
    owner, regulator = bearer(creds["owner"]["token"]), bearer(creds["regulator"]["token"])
    r = client.post("/api/v1/datasets/permits/tier", headers=owner, json={"tier": "conditional"})
    assert r.status_code == 400 and r.json["error"]["code"] == "missing_basis"
    r = client.post("/api/v1/datasets/permits/tier", headers=owner,
                    json={"tier": "conditional", "basis": "reassessed 2025"})
    assert r.status_code == 400 and r.json["error"]["code"] == "deidentification_required"
    mark = audit_size(sb)
    r = client.post("/api/v1/datasets/permits/tier", headers=owner, json={
        "tier": "conditional", "basis": "reassessed 2025 (第十条)",
        "deidentification": "names and addresses removed; fees rounded to 10 yuan"})
    assert r.status_code == 202 and r.json["status"] == "awaiting_regulator", r.json
    r = client.post(f"/api/v1/reviews/{r.json['review_id']}/decision", headers=regulator,
                    json={"decision": "approve", "reason": "basis and scan checked"})
    assert r.status_code == 200, r.json
    (entry,) = audit_entries(sb, "dataset.tier_changed", mark)
    assert (entry["actor"], entry["details"]["from"], entry["details"]["to"]) == ("regulator", "not_open", "conditional")
    assert entry["details"]["owner_signature"]["signer"] == "owner"
    # the regulator proposes a more open tier (第十条 修改意见); the owner accepts and submits
    r = client.post("/api/v1/datasets/permits/tier", headers=regulator,
                    json={"tier": "unconditional", "basis": "bureau decision: low risk"})
    assert r.status_code == 202 and r.json["status"] == "proposed", r.json
    review = r.json["review_id"]
    r = client.post(f"/api/v1/reviews/{review}/answer", headers=owner,
                    json={"accept": True, "reasons": "agreed", "k_anonymity": 10})
    assert r.status_code == 202 and r.json["status"] == "awaiting_regulator", r.json
    assert client.post(f"/api/v1/reviews/{review}/decision", headers=regulator,
                       json={"decision": "approve", "reason": "ok"}).status_code == 200
    entry = client.get("/api/v1/catalog/permits").json
    assert [(h["from"], h["to"], h["by"], h["signed_by"]) for h in entry["tier_history"]] == [
        ("not_open", "conditional", "owner", "regulator"), ("conditional", "unconditional", "owner", "regulator")]
    assert entry["tier_history"][0]["deidentification"].startswith("names and addresses")
    assert client.post("/api/v1/datasets/permits/tier", headers=bearer(creds["researcher"]["token"]),
                       json={"tier": "not_open", "basis": "x"}).status_code == 403


def test_unconditional_data_downloads_and_is_logged(app_client):
    sb, client, creds = app_client
    register_permits(sb, "unconditional")
    mark = audit_size(sb)
    r = client.get("/api/v1/datasets/permits/download?format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    table = pacsv.read_csv(io.BytesIO(r.data))
    # the de-identified derivative (issue 14): the privacy unit (a pseudonym) is dropped
    assert table.num_rows == 300 and table.column_names == ["district", "fee"]
    (entry,) = audit_entries(sb, "dataset.downloaded", mark)
    assert (entry["actor"], entry["role"], entry["details"]["format"]) == ("anonymous", "anonymous", "csv")
    r = client.get("/api/v1/datasets/permits/download?format=parquet", headers=bearer(creds["researcher"]["token"]))
    assert r.status_code == 200 and r.data[:4] == b"PAR1"
    assert client.get("/api/v1/datasets/permits/download?format=xlsx").status_code == 400
    assert client.get("/api/v1/datasets/residents/download").status_code == 403


def test_raising_the_tier_encrypts_the_stored_files(app_client):
    sb, client, creds = app_client
    register_permits(sb, "unconditional")
    data_dir = sb.ws.data_dir
    assert (data_dir / "permits-v1.parquet").exists()
    r = client.post("/api/v1/datasets/permits/tier", headers=bearer(creds["owner"]["token"]),
                    json={"tier": "conditional", "basis": "contains fees of identifiable firms"})
    assert r.status_code == 200
    assert not (data_dir / "permits-v1.parquet").exists()
    assert (data_dir / "permits-v1.parquet.enc").read_bytes()[:4] == b"SBXB"
    v = datasets.get_version(sb.conn(), "permits")
    assert v.encrypted and sb.tables.get(v).num_rows == 300
