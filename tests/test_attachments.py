"""Attachments of applications, the applying organisation, and evidence of signed-in objections
(第十五、十七条; issue 14). Attacks: a path in the file name, an executable named .pdf, an
oversized file, too many files, a download by someone not a party (another researcher, another
owner, a regulator for an application, a district regulator elsewhere, no login), a file changed
on disk after its hash was logged.
"""

from __future__ import annotations

import base64
import hashlib
import io

import pytest

from sandbox.governance import attachments
from sandbox.web import create_app
from tests.test_workflow_support import audit_entries, bearer, world_copy

PDF = b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64


def f(name: str, data: bytes) -> dict[str, str]:
    return {"name": name, "content_base64": base64.b64encode(data).decode()}


@pytest.fixture
def env(demo_template, tmp_path_factory, tmp_path):
    w = world_copy(demo_template, tmp_path_factory, tmp_path)
    client = create_app(w.sb, {"TESTING": True}).test_client()
    return w, client, {k: bearer(t) for k, t in w.tokens.items()}


def _apply(client, tok, **extra):
    return client.post("/api/v1/applications", headers=tok["researcher"], json={
        "datasets": ["residents"], "scenario": "income by district", "purpose": "thesis",
        "commitment_accepted": True, **extra})


def test_an_application_carries_its_organisation_and_attachments_for_the_parties_only(env):
    w, client, tok = env
    r = _apply(client, tok, organisation="山东大学经济学院",
               attachments=[f("../../../etc/passwd.pdf", PDF), f("C:\\Users\\me\\ethics.png", PNG)])
    assert r.status_code == 201, r.json
    app_id = r.json["application_id"]
    names = [a["name"] for a in r.json["attachments"]]
    assert names == ["passwd.pdf", "ethics.png"]  # the path is gone: only the last component is shown
    # stored under its hash inside the workspace, never under the given name
    stored = sorted(p.name for p in (w.sb.ws.root / "attachments").iterdir())
    assert stored == sorted([hashlib.sha256(PDF).hexdigest(), hashlib.sha256(PNG).hexdigest()])
    assert not (w.sb.ws.root.parent / "etc").exists()
    (entry,) = [e for e in audit_entries(w.sb, "application.submitted") if e["details"]["application_id"] == app_id]
    assert [a["sha256"] for a in entry["details"]["attachments"]] == [hashlib.sha256(PDF).hexdigest(),
                                                                       hashlib.sha256(PNG).hexdigest()]
    assert entry["details"]["organisation"] == "山东大学经济学院"
    seen = client.get(f"/api/v1/applications/{app_id}", headers=tok["owner"]).json
    assert seen["organisation"] == "山东大学经济学院" and len(seen["attachments"]) == 2
    att = seen["attachments"][0]["attachment_id"]
    for who in ("researcher", "owner"):
        d = client.get(f"/api/v1/attachments/{att}", headers=tok[who])
        assert d.status_code == 200 and d.data == PDF
        assert d.headers["Content-Disposition"].startswith("attachment") and "passwd.pdf" in d.headers[
            "Content-Disposition"]
        assert d.headers["X-Content-Type-Options"] == "nosniff" and "sandbox" in d.headers["Content-Security-Policy"]
    for who in ("researcher2", "owner2", "regulator", "admin"):
        d = client.get(f"/api/v1/attachments/{att}", headers=tok[who])
        assert d.status_code == 404 and d.json["error"]["message"] == f"no attachment {att}", who
    assert client.get(f"/api/v1/attachments/{att}").status_code == 401
    assert client.get("/api/v1/attachments/999999", headers=tok["owner"]).status_code == 404
    # changed on disk after the hash was logged: never served
    (w.sb.ws.root / "attachments" / hashlib.sha256(PDF).hexdigest()).write_bytes(PDF + b"tampered")
    bad = client.get(f"/api/v1/attachments/{att}", headers=tok["owner"])
    assert bad.status_code == 500 and bad.json["error"]["code"] == "data_integrity"


@pytest.mark.parametrize("files, code", [
    ([f("scan.pdf", EXE)], "bad_evidence_type"),                       # an executable named .pdf
    ([f("big.txt", b"a" * (attachments.public_objections.MAX_FILE_BYTES + 1))], "bad_evidence"),  # oversized
    ([f(f"{i}.txt", b"x") for i in range(4)], "bad_evidence"),        # too many
    ([{"name": "x.txt", "content_base64": "not base64!"}], "bad_evidence"),
    ([f("empty.txt", b"")], "bad_evidence"),
])
def test_bad_attachments_are_refused_before_anything_is_stored(env, files, code):
    w, client, tok = env
    before = w.sb.conn().execute("SELECT COUNT(*) FROM applications").fetchone()[0]
    r = _apply(client, tok, attachments=files)
    assert r.status_code == 400 and r.json["error"]["code"] == code, r.json
    assert w.sb.conn().execute("SELECT COUNT(*) FROM applications").fetchone()[0] == before
    assert not (w.sb.ws.root / "attachments").exists() or not any((w.sb.ws.root / "attachments").iterdir())


def test_a_signed_in_objection_carries_evidence_seen_by_the_parties(env):
    w, client, tok = env
    r = client.post("/api/v1/objections", headers=tok["researcher"], json={
        "target_type": "application", "target_id": w.own.app_decided, "text": "the rejection ignores my ethics approval",
        "evidence": [f("ethics.txt", "伦理审查批件 2026-031".encode())]})
    assert r.status_code == 201, r.json
    oid = r.json["objection_id"]
    (ev,) = client.get(f"/api/v1/objections/{oid}", headers=tok["regulator"]).json["evidence"]
    (entry,) = [e for e in audit_entries(w.sb, "objection.filed") if e["details"]["objection_id"] == oid]
    assert entry["details"]["evidence"][0]["sha256"] == hashlib.sha256("伦理审查批件 2026-031".encode()).hexdigest()
    for who in ("researcher", "owner", "regulator"):  # filer, the one whose decision it contests, the answerer
        d = client.get(f"/api/v1/attachments/{ev['attachment_id']}", headers=tok[who])
        assert d.status_code == 200 and d.content_type.startswith("text/plain"), who
    for who in ("researcher2", "owner2", "admin"):
        assert client.get(f"/api/v1/attachments/{ev['attachment_id']}", headers=tok[who]).status_code == 404
    bad = client.post("/api/v1/objections", headers=tok["researcher"], json={
        "target_type": "application", "target_id": w.own.app_decided, "text": "x", "evidence": [f("a.pdf", EXE)]})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad_evidence_type"


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_attachments_and_evidence_in_the_console(env, lang):
    from tests.test_console import login, text, token

    w, client, tok = env
    c = create_app(w.sb, {"TESTING": True}).test_client()
    c.set_cookie("sandbox_lang", lang)
    assert login(c, "researcher").status_code == 302
    form = text(c.get("/apply/residents"))
    assert 'enctype="multipart/form-data"' in form and ("申请单位" if lang == "zh-CN" else "Organisation") in form
    r = c.post("/apply/residents", data={
        "csrf_token": token(form), "scenario": "console scenario", "purpose": "console purpose", "commitment": "1",
        "organisation": "Shandong University", "attachments": [(io.BytesIO(PDF), "plan.pdf")]},
        content_type="multipart/form-data")
    assert r.status_code == 303, text(r)
    mine = text(c.get("/my/applications"))
    assert "plan.pdf" in mine and "Shandong University" in mine
    href = mine.split("plan.pdf")[0].rsplit('href="', 1)[1].split('"')[0]
    assert c.get(href).data == PDF
    other = create_app(w.sb, {"TESTING": True}).test_client()
    assert login(other, "researcher2", "researcher2-pass").status_code == 302
    assert other.get(href).status_code == 404
    page = text(c.get("/objections"))
    r = c.post("/objections", data={
        "csrf_token": token(page), "target_type": "application", "target_id": str(w.own.app_decided),
        "text": "see the attached letter", "evidence": [(io.BytesIO(EXE), "letter.pdf")]},
        content_type="multipart/form-data")
    assert r.status_code == 400  # an executable: refused, said on the page
    r = c.post("/objections", data={
        "csrf_token": token(page), "target_type": "application", "target_id": str(w.own.app_decided),
        "text": "see the attached letter", "evidence": [(io.BytesIO(PNG), "letter.png")]},
        content_type="multipart/form-data")
    assert r.status_code in (302, 303), text(r)
    assert "letter.png" in text(c.get("/objections"))
