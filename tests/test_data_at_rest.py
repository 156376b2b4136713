"""Data at rest (issue 6; 第二十条): conditional and not-open Parquet files are encrypted
(AES-256-GCM, or SM4-GCM in the ``sm`` profile; per-version data keys wrapped by the
workspace master key); tampering is refused with a clear error; master-key rotation
re-wraps keys without touching the data; API tokens and passwords are stored only as
hashes. Every test runs once per cryptography profile (issue 17)."""

from __future__ import annotations

import hashlib
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import keys
from sandbox.governance import datasets
from sandbox.service.operations import SandboxAdmin, rotate_master_key
from sandbox.service.pipeline import QueryRequest
from sandbox.service.query_service import Sandbox
from sandbox.store.users import find_user
from sandbox.web import create_app
from tests.test_workflow_support import FIXTURES, audit_entries, bearer, demo_copy, permits_table

CANARY = "CANARY-明文-7f3a9c"
BLOB_HEADER = {"intl": b"SBXB\x01", "sm": b"SBXB\x02"}  # AES-256-GCM / SM4-GCM (keys.envelope)


@pytest.fixture(params=keys.PROFILES)
def demo_template(request, demo_template):
    """conftest's demo workspace (``intl``) or its ``sm`` twin: the tests below run on both."""
    return demo_template if request.param == "intl" else request.getfixturevalue("demo_template_sm")


def register_canary(sb: Sandbox) -> datasets.DatasetVersion:
    """A conditional dataset whose one free-text value is a unique, recognisable string."""
    policy = (FIXTURES / "permits.toml").read_text(encoding="utf-8").replace('owner = "owner2"', 'owner = "owner"')
    policy += '\n[columns.note]\ntype = "text"\nsensitivity = "sensitive"\n'
    t = permits_table()
    t = t.append_column("note", pa.array([CANARY if i == 17 else "ok" for i in range(t.num_rows)]))
    owner = find_user(sb.conn(), "owner")
    admin = SandboxAdmin(sb)
    admin.add_dataset("permits", t, policy, actor=owner)
    admin.publish(owner, "permits", "test", regulator=find_user(sb.conn(), "regulator"))  # issue 14: co-signed
    return datasets.get_version(sb.conn(), "permits")


def test_file_on_disk_does_not_contain_a_known_plaintext_value(demo_template, tmp_path):
    sb, _ = demo_copy(demo_template, tmp_path)
    v = register_canary(sb)
    raw = (sb.ws.data_dir / v.file_name).read_bytes()
    profile = sb.ws.crypto_profile()
    assert v.encrypted and v.file_name.endswith(".enc") and raw.startswith(BLOB_HEADER[profile])
    assert len(sb.keyring.unwrap_data_key(v.wrapped_key)) == keys.key_size(profile)
    plain = datasets.read_plaintext(sb.ws.data_dir, v, sb.tables.decryptor)
    assert CANARY.encode() in plain  # the check below is not vacuous: the plaintext has it
    assert CANARY.encode() not in raw
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(io.BytesIO(raw))
    # the demo's residents too: a real ID number is nowhere in the file
    residents = datasets.get_version(sb.conn(), "residents")
    first_id = sb.tables.get(residents).column("id_number")[0].as_py()
    assert first_id.encode() not in (sb.ws.data_dir / residents.file_name).read_bytes()


def test_tampered_ciphertext_is_refused_with_a_clear_error(demo_template, tmp_path):
    sb, creds = demo_copy(demo_template, tmp_path)
    v = datasets.get_version(sb.conn(), "residents")
    path = sb.ws.data_dir / v.file_name
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(blob))
    fresh = Sandbox(sb.ws)  # nothing cached in memory
    with pytest.raises(datasets.DataIntegrityError) as err:
        datasets.read_plaintext(fresh.ws.data_dir, v, fresh.tables.decryptor)
    assert "failed its integrity check" in err.value.message and v.file_name in err.value.message
    client = create_app(fresh, {"TESTING": True}).test_client()
    r = client.post("/api/v1/queries", headers=bearer(creds["researcher"]["token"]),
                    json={"approval_id": creds["researcher"]["approval_id"], "sql": "SELECT COUNT(*) FROM residents"})
    assert r.status_code == 500 and r.json["error"]["code"] == "data_integrity"
    assert "residents" in r.json["error"]["message"]
    # PRIVACY (issue 12): the charge comes before any data is read, so it stands; the
    # failure is logged against the start with the code the operator needs.
    assert fresh.conn().execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 1
    failed = fresh.conn().execute("SELECT json_extract(entry, '$.details.code') FROM audit_entries "
                                  "WHERE json_extract(entry, '$.action') = 'query.failed'").fetchall()
    assert [r[0] for r in failed] == ["data_integrity"]


def test_a_file_swapped_for_another_is_refused(demo_template, tmp_path):
    """The ciphertext is bound to its dataset and version (associated data)."""
    sb, _ = demo_copy(demo_template, tmp_path)
    residents = datasets.get_version(sb.conn(), "residents")
    visits = datasets.get_version(sb.conn(), "clinic_visits")
    (sb.ws.data_dir / residents.file_name).write_bytes((sb.ws.data_dir / visits.file_name).read_bytes())
    sb.conn().execute("UPDATE dataset_versions SET wrapped_key = ? WHERE id = ?",
                      (visits.wrapped_key, residents.version_id))
    swapped = datasets.get_version(sb.conn(), "residents")
    with pytest.raises(datasets.DataIntegrityError):
        datasets.read_plaintext(sb.ws.data_dir, swapped, Sandbox(sb.ws).tables.decryptor)


def test_master_key_rotation_rewraps_keys_and_everything_still_reads(demo_template, tmp_path):
    sb, creds = demo_copy(demo_template, tmp_path)
    register_canary(sb)
    conn = sb.conn()
    before = {r["id"]: bytes(r["wrapped_key"]) for r in
              conn.execute("SELECT id, wrapped_key FROM dataset_versions WHERE wrapped_key IS NOT NULL")}
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sb.ws.data_dir.iterdir()}
    old_master = sb.keyring.master_key_id
    result = rotate_master_key(sb)
    assert result["old_key_id"] == old_master != result["new_key_id"] == sb.keyring.master_key_id
    assert result["data_keys_rewrapped"] == len(before) == 3 and result["destroyed"] == [old_master]
    after = {r["id"]: bytes(r["wrapped_key"]) for r in
             conn.execute("SELECT id, wrapped_key FROM dataset_versions WHERE wrapped_key IS NOT NULL")}
    assert set(after) == set(before) and all(after[k] != before[k] for k in before)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sb.ws.data_dir.iterdir()} == files
    (entry,) = audit_entries(sb, "key.master_rotated")
    assert entry["details"]["new_key_id"] == result["new_key_id"] and entry["details"]["data_keys_rewrapped"] == 3
    # the old wrapped keys are useless now (the retired master is gone)
    with pytest.raises(keys.KeysError):
        sb.keyring.unwrap_data_key(next(iter(before.values())))
    # a fresh process reads every version and answers queries
    fresh = Sandbox(sb.ws)
    for v in datasets.latest_versions(fresh.conn()):
        assert fresh.tables.get(v).num_rows == v.row_count
    researcher = find_user(fresh.conn(), "researcher")
    out = fresh.run_query(researcher, QueryRequest(creds["researcher"]["approval_id"],
                                                   "SELECT COUNT(*) FROM clinic_visits", 0.5))
    assert out["rows"]


def test_tokens_and_passwords_are_stored_only_as_hashes(demo_template, tmp_path):
    sb, creds = demo_copy(demo_template, tmp_path)
    sb.conn().execute("PRAGMA wal_checkpoint(FULL)")
    stored = sb.ws.db_path.read_bytes()
    wal = sb.ws.db_path.with_name(sb.ws.db_path.name + "-wal")
    if wal.exists():
        stored += wal.read_bytes()
    for role in ("researcher", "owner", "regulator"):
        assert creds[role]["token"].encode() not in stored
        assert creds[role]["password"].encode() not in stored
        assert keys.hash_token(creds[role]["token"], sb.ws.crypto_profile()).encode() in stored
    hashes = [r[0] for r in sb.conn().execute("SELECT password_hash FROM users")]
    prefix = {"intl": "$argon2id$", "sm": "$pbkdf2-sm3$i=600000$"}[sb.ws.crypto_profile()]
    assert hashes and all(h.startswith(prefix) for h in hashes)
    # the stored token hash of the sm profile is HMAC-SM3 (checked with the standard library)
    if sb.ws.crypto_profile() == "sm":
        import hmac

        token = creds["researcher"]["token"].encode()
        expected = hmac.new(keys.TOKEN_MAC_KEY, token, "sm3").hexdigest()
        assert expected == keys.hash_token(creds["researcher"]["token"], "sm")
