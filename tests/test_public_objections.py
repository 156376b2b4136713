"""Objections and suggestions from the public without login (issue 14; 第十七条): evidence
checked by content, a tracking code, rate limits, answers by the owner or the regulator — at the
API and in the console in both languages."""

from __future__ import annotations

import base64
import io

import pytest

from sandbox.web import create_app
from tests.test_console import login, post, text
from tests.test_workflow_support import audit_entries, bearer, world_copy

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"


@pytest.fixture
def world(demo_template, tmp_path_factory, tmp_path):
    return world_copy(demo_template, tmp_path_factory, tmp_path)


def evidence(name: str, data: bytes) -> dict:
    return {"name": name, "content_base64": base64.b64encode(data).decode()}


def test_anyone_objects_with_evidence_and_follows_it_by_tracking_code(world):
    sb = world.sb
    client = create_app(sb, {"TESTING": True}).test_client()
    tok = {name: bearer(t) for name, t in world.tokens.items()}
    body = {"target_type": "dataset", "target": "residents", "text": "the income column looks too precise",
            "contact": "13800000000", "evidence": [evidence("screenshot.png", PNG), evidence("note.txt", "说明".encode())]}
    r = client.post("/api/v1/public-objections", json=body)  # no Authorization header
    assert r.status_code == 201, r.json
    code = r.json["tracking_code"]
    assert code.startswith("PO-") and r.json["evidence"] == 2 and r.json["due_at"]
    (entry,) = audit_entries(sb, "public_objection.filed")
    assert (entry["actor"], entry["details"]["respondent"]) == ("system", "owner")
    assert "13800000000" not in str(entry)  # the contact stays out of the log
    assert [e["type"] for e in entry["details"]["evidence"]] == ["image/png", "text/plain"]
    tracked = client.get(f"/api/v1/public-objections/{code}").json
    assert tracked["status"] == "open" and "contact" not in tracked and "evidence" not in tracked
    assert client.get("/api/v1/public-objections/PO-NOTHING").status_code == 404
    # evidence is checked by content, not by its name
    bad = client.post("/api/v1/public-objections", json={**body, "evidence": [evidence("scan.pdf", EXE)]})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_evidence_type"
    big = client.post("/api/v1/public-objections", json={**body, "evidence": [evidence("x.txt", b"a" * 200_001)]})
    assert big.status_code == 400
    # only public objects: a not-open or missing dataset reads the same
    assert client.post("/api/v1/public-objections", json={**body, "target": "nothing"}).status_code == 404
    # the owner of the dataset answers; another owner neither sees nor answers it; the regulator sees all
    listed = client.get("/api/v1/public-objections", headers=tok["owner"]).json["public_objections"]
    (mine,) = [o for o in listed if o["text"] == body["text"]]
    assert mine["contact"] == "13800000000" and len(mine["evidence"]) == 2
    assert client.get("/api/v1/public-objections", headers=tok["owner2"]).json["public_objections"] == []
    assert client.post(f"/api/v1/public-objections/{mine['public_objection_id']}/answer", headers=tok["owner2"],
                       json={"answer": "x"}).status_code == 404
    assert client.get("/api/v1/public-objections", headers=tok["researcher"]).status_code == 403
    r = client.post(f"/api/v1/public-objections/{mine['public_objection_id']}/answer", headers=tok["owner"],
                    json={"answer": "incomes are only released as noisy aggregates"})
    assert r.json["status"] == "answered"
    tracked = client.get(f"/api/v1/public-objections/{code.lower()}").json
    assert tracked["status"] == "answered" and tracked["answer"].startswith("incomes")


def test_filing_without_login_is_rate_limited_per_address(world):
    client = create_app(world.sb, {"TESTING": True}).test_client()
    body = {"target_type": "dataset", "target": "residents", "text": "again"}
    codes = [client.post("/api/v1/public-objections", json=body).status_code for _ in range(6)]
    assert codes == [201] * 5 + [429]
    other = client.post("/api/v1/public-objections", json=body, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 201


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_public_objection_in_the_console(world, lang):
    app = create_app(world.sb, {"TESTING": True})
    zh = lang == "zh-CN"
    visitor = app.test_client()
    visitor.set_cookie("sandbox_lang", lang)
    page = text(visitor.get("/catalog/residents"))
    assert ("异议或建议" if zh else "Object or suggest") in page
    from tests.test_console import token

    r = visitor.post("/objections/public", data={
        "csrf_token": token(page), "target_type": "dataset", "target": "residents", "text": "wrong district names",
        "evidence": (io.BytesIO(PNG), "photo.png")}, content_type="multipart/form-data")
    assert r.status_code == 303 and "/objections/track?code=PO-" in r.headers["Location"]
    tracked = text(visitor.get(r.headers["Location"]))
    assert 'id="tracking-code"' in tracked and ("待答复" if zh else "open") in tracked
    code = r.headers["Location"].split("code=")[1]
    owner = app.test_client()
    owner.set_cookie("sandbox_lang", lang)
    assert login(owner, "owner").status_code == 302
    page = text(owner.get("/enforcement"))
    assert "wrong district names" in page and "photo.png" in page
    oid = world.sb.conn().execute("SELECT id FROM public_objections WHERE tracking_code = ?", (code,)).fetchone()[0]
    r = post(owner, f"/enforcement/public-objections/{oid}/answer", {"answer": "fixed in version 2"},
             page="/enforcement")
    assert r.status_code == 303
    assert "fixed in version 2" in text(visitor.get(f"/objections/track?code={code}"))
