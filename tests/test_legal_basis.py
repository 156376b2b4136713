"""A dataset's legal basis is required before its personal information opens (第八、二十条; issue 14).

The attacks: an owner publishing personal data with no legal basis (owner alone, by review, by
a tier raise), a regulator co-signing a review submitted before the rule, an owner approving a
researcher's access to a dataset whose basis was never recorded. Each is refused with
``409 legal_basis_required`` naming 第二十条, before anything is published or granted.
"""

from __future__ import annotations

import pytest

from sandbox.service.operations import SandboxAdmin
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.test_workflow_support import FIXTURES, audit_entries, bearer, permits_table, world_copy

NO_BASIS = "\n".join(line for line in (FIXTURES / "permits.toml").read_text(encoding="utf-8").splitlines()
                     if not line.startswith("legal_basis")).replace('name = "permits"', 'name = "licences"') + "\n"


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    client = create_app(w.sb, {"TESTING": True}).test_client()
    return w.sb, client, {k: bearer(t) for k, t in w.tokens.items()}


def _refused(r) -> None:
    assert r.status_code == 409, r.json
    assert r.json["error"]["code"] == "legal_basis_required"
    assert "第二十条" in r.json["error"]["message"] and "district" in r.json["error"]["message"]


def test_publication_without_a_legal_basis_is_refused_until_one_is_recorded(env):
    sb, client, tok = env
    owner2 = find_user(sb.conn(), "owner2")
    SandboxAdmin(sb).add_dataset("licences", permits_table(), NO_BASIS, actor=owner2)
    before = len(audit_entries(sb, "publication.submitted"))
    _refused(client.post("/api/v1/datasets/licences/risk/ack", headers=tok["owner2"], json={"note": "fine"}))
    assert len(audit_entries(sb, "publication.submitted")) == before  # nothing submitted
    assert client.get("/api/v1/catalog/licences").status_code == 404  # nothing listed
    assert client.put("/api/v1/datasets/licences/legal-basis", headers=tok["owner2"],
                      json={"legal_basis": "申请人书面同意（第二十条）"}).status_code == 200
    r = client.post("/api/v1/datasets/licences/risk/ack", headers=tok["owner2"], json={"note": "fine"})
    assert r.status_code == 202 and r.json["status"] == "awaiting_regulator"
    d = client.post(f"/api/v1/reviews/{r.json['review_id']}/decision", headers=tok["regulator"],
                    json={"decision": "approve", "reason": "reviewed"})
    assert d.status_code == 200, d.json
    (published,) = [e for e in audit_entries(sb, "dataset.published") if e["details"]["dataset"] == "licences"]
    assert published["details"]["legal_basis"] == "申请人书面同意（第二十条）"


def test_a_review_submitted_before_the_rule_is_not_co_signed(env):
    """A workspace migrated with a review awaiting the regulator and no basis recorded."""
    sb, client, tok = env
    owner2 = find_user(sb.conn(), "owner2")
    SandboxAdmin(sb).add_dataset("licences", permits_table(), NO_BASIS, actor=owner2)
    client.put("/api/v1/datasets/licences/legal-basis", headers=tok["owner2"], json={"legal_basis": "consent"})
    review = client.post("/api/v1/datasets/licences/risk/ack", headers=tok["owner2"], json={}).json["review_id"]
    sb.conn().execute("UPDATE datasets SET legal_basis = NULL WHERE name = 'licences'")  # as before the rule
    _refused(client.post(f"/api/v1/reviews/{review}/decision", headers=tok["regulator"],
                         json={"decision": "approve", "reason": "ok"}))
    assert client.get(f"/api/v1/reviews/{review}", headers=tok["regulator"]).json["status"] == "awaiting_regulator"


def test_not_open_data_needs_no_basis_but_raising_its_tier_does(env):
    sb, client, tok = env
    owner2 = find_user(sb.conn(), "owner2")
    SandboxAdmin(sb).add_dataset("licences", permits_table(), NO_BASIS.replace('"conditional"', '"not_open"'),
                                 actor=owner2)
    r = client.post("/api/v1/datasets/licences/risk/ack", headers=tok["owner2"], json={"note": "closed"})
    assert r.status_code == 200 and r.json["published"] is True  # not open: nothing leaves
    _refused(client.post("/api/v1/datasets/licences/tier", headers=tok["owner2"], json={
        "tier": "conditional", "basis": "reassessed", "deidentification": "names dropped"}))
    assert client.get("/api/v1/catalog/licences", headers=tok["owner2"]).json["tier"] == "not_open"


def test_no_approval_reaches_personal_data_without_a_basis(env):
    """An old workspace: permits was published before the rule and never got a basis."""
    sb, client, tok = env
    conn = sb.conn()
    conn.execute("UPDATE datasets SET legal_basis = NULL WHERE name = 'permits'")
    conn.execute("UPDATE dataset_versions SET policy_toml = replace(policy_toml, 'legal_basis', '# was') "
                 "WHERE dataset_id = (SELECT id FROM datasets WHERE name = 'permits')")
    assert client.get("/api/v1/catalog/permits").json["legal_basis"] is None
    app = client.post("/api/v1/applications", headers=tok["researcher2"], json={
        "datasets": ["permits"], "scenario": "fees by district", "purpose": "test", "commitment_accepted": True})
    assert app.status_code == 201, app.json
    decision = {"decision": "approve", "reason": "ok", "epsilon_total": 2, "delta_total": 0,
                "epsilon_per_query": 1, "expires": "2099-12-31"}
    url = f"/api/v1/applications/{app.json['application_id']}/decision"
    _refused(client.post(url, headers=tok["owner2"], json=decision))
    assert client.get(f"/api/v1/applications/{app.json['application_id']}",
                      headers=tok["owner2"]).json["status"] == "pending"
    client.put("/api/v1/datasets/permits/legal-basis", headers=tok["owner2"], json={"legal_basis": "consent"})
    assert client.post(url, headers=tok["owner2"], json=decision).status_code == 200
