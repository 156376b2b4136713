"""Dataset registration, versions and loading into the engine.

Registering checks the policy against the data (第十四条: every information item is
declared), verifies a declared one-row-per-person table, runs the risk scan (第十二条),
writes a new immutable version (old versions stay readable for replay) and logs it.
Conditional and not-open data is stored encrypted when the workspace has a key ring
(第二十条: protect the data).

A version is *published* (listed, queryable) only once its owner has acknowledged its risk
report; until then the previous published version, if any, stays in use.
:func:`latest_versions` returns published versions only, which is what the query walk
sees.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import keys
from query_guard import Catalog
from sandbox.clock import Clock, iso
from sandbox.errors import NotFound, PolicyError, SandboxError
from sandbox.governance import file_readers, risk_scan
from sandbox.governance.identifiers.matching import identifiers_in_headers
from sandbox.governance.policy import DatasetPolicy, check_against, parse_policy

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Encryptor = Callable[[bytes, bytes], tuple[bytes, bytes]]
Decryptor = Callable[[bytes, bytes, bytes], bytes]


ENCRYPTED_TIERS = ("conditional", "not_open")


class DataIntegrityError(SandboxError):
    """A stored data file failed authenticated decryption: changed, truncated or swapped.

    SECURITY: refused outright, never read "as far as it goes"; the message names the file
    but says nothing about why decryption failed (pyca/cryptography's opaque failure).
    """

    code = "data_integrity"
    http_status = 500


@dataclass(frozen=True)
class DatasetVersion:
    dataset_id: int
    name: str
    title: str
    tier: str
    owner_id: int
    version_id: int
    version: int
    content_hash: str
    file_name: str
    row_count: int
    unit_count: int
    encrypted: bool
    wrapped_key: bytes | None
    bounding_seed: str
    policy: DatasetPolicy
    created_at: str = ""
    published_at: str | None = None
    risk_report_json: str = "{}"

    @property
    def published(self) -> bool:
        return self.published_at is not None

    @property
    def risk_report(self) -> dict:
        return json.loads(self.risk_report_json or "{}")


def read_data_file(path: Path, *, types: dict[str, str] | None = None, encoding: str | None = None) -> pa.Table:
    """CSV (UTF-8, GBK, GB18030), .xlsx or Parquet, cells converted to the policy's ``types``
    (see :mod:`sandbox.governance.file_readers`)."""
    return file_readers.read_file(path, types=types, encoding=encoding)


def register_dataset(
    conn: sqlite3.Connection,
    data_dir: Path,
    name: str,
    table: pa.Table,
    policy_text: str,
    *,
    policy_path: str = "<policy>",
    now: Clock,
    encryptor: Encryptor | None = None,
    progress: Progress | None = None,
) -> DatasetVersion:
    """Validate, scan and store a new, unpublished version. Runs inside the caller's transaction.

    ``encryptor(plaintext, aad) -> (ciphertext, wrapped_data_key)`` encrypts the Parquet
    bytes for conditional and not-open tiers.
    """
    say = progress or (lambda _msg: None)
    policy = parse_policy(policy_text, policy_path)
    if policy.name != name:
        raise PolicyError(f"{policy_path}: dataset.name is {policy.name!r} but the dataset is being added as {name!r}")
    say("checking the policy against the data")
    table, units = conformed(table, policy, policy_path)
    owner, existing = _owner_and_dataset(conn, name, policy, policy_path)
    say("scanning for identifiers and unique records (第十二条)")
    report = risk_scan.scan(
        table, {c.name: c.sensitivity for c in policy.columns.values()},
        privacy_unit=policy.privacy_unit, dataset=name,
    )

    say(f"writing {table.num_rows:,} rows")
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    plain = sink.getvalue()
    content_hash = "sha256:" + hashlib.sha256(plain).hexdigest()
    dataset_id, version = _next_version(conn, name, policy, owner, existing, now)
    encrypted = encryptor is not None and policy.tier in ENCRYPTED_TIERS
    file_name, wrapped = _write_file(data_dir, name, version, plain, encryptor if encrypted else None)
    seed = secrets.token_hex(16)
    cur = conn.execute(
        "INSERT INTO dataset_versions (dataset_id, version, policy_toml, content_hash, file_name, "
        "row_count, unit_count, encrypted, wrapped_key, bounding_seed, created_at, risk_report) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (dataset_id, version, policy_text, content_hash, file_name, table.num_rows, units,
         int(encrypted), wrapped, seed, iso(now()), json.dumps(report, ensure_ascii=False)),
    )
    return get_version(conn, name, version_id=int(cur.lastrowid))  # type: ignore[arg-type]


def _owner_and_dataset(conn: sqlite3.Connection, name: str, policy: DatasetPolicy,
                       policy_path: str) -> tuple[sqlite3.Row, sqlite3.Row | None]:
    """The policy's owner and the dataset's row if it exists: a version is added by its owner,
    at its tier."""
    owner = conn.execute("SELECT id, role FROM users WHERE username = ?", (policy.owner,)).fetchone()
    if owner is None or owner["role"] != "owner":
        raise PolicyError(f"{policy_path}: dataset.owner {policy.owner!r} is not a user with the owner role")
    existing = conn.execute(
        "SELECT d.id, d.owner_id, d.tier, u.username FROM datasets d JOIN users u ON u.id = d.owner_id "
        "WHERE d.name = ?", (name,)
    ).fetchone()
    if existing is not None and existing["owner_id"] != owner["id"]:
        raise PolicyError(f"{policy_path}: dataset {name!r} belongs to {existing['username']!r}, not {policy.owner!r}")
    if existing is not None and existing["tier"] != policy.tier:
        # 第十条: a tier decision needs a recorded basis; a policy file cannot carry one.
        raise PolicyError(
            f"{policy_path}: dataset.tier is {policy.tier!r} but {name!r} is {existing['tier']!r}; "
            f"change a tier with POST /api/v1/datasets/{name}/tier and a basis (第十条), then add the version"
        )
    return owner, existing


def _next_version(conn: sqlite3.Connection, name: str, policy: DatasetPolicy, owner: sqlite3.Row,
                  existing: sqlite3.Row | None, now: Clock) -> tuple[int, int]:
    """The dataset's id (created on its first version) and the number of the version to add."""
    if existing is None:
        # issue 14 (第五条): a dataset belongs to its owner's organisation
        cur = conn.execute(
            "INSERT INTO datasets (name, title, owner_id, tier, created_at, org_id) VALUES (?,?,?,?,?,"
            "(SELECT org_id FROM users WHERE id = ?))",
            (name, policy.title, owner["id"], policy.tier, iso(now()), owner["id"]),
        )
        return int(cur.lastrowid), 1  # type: ignore[arg-type]
    dataset_id = int(existing["id"])
    conn.execute("UPDATE datasets SET title = ? WHERE id = ?", (policy.title, dataset_id))
    version = 1 + conn.execute(
        "SELECT COALESCE(MAX(version), 0) FROM dataset_versions WHERE dataset_id = ?", (dataset_id,)
    ).fetchone()[0]
    return dataset_id, version


def _write_file(data_dir: Path, name: str, version: int, plain: bytes,
                encryptor: Encryptor | None) -> tuple[str, bytes | None]:
    """Write the version's Parquet bytes (encrypted when ``encryptor`` is given) atomically:
    its file name and wrapped data key."""
    file_name = f"{name}-v{version}.parquet" + (".enc" if encryptor is not None else "")
    wrapped = None
    payload = plain
    if encryptor is not None:
        payload, wrapped = encryptor(plain, _aad(name, version))
    target = data_dir / file_name
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(target)
    return file_name, wrapped


def _aad(name: str, version: int) -> bytes:
    """Binds a ciphertext to its dataset and version: a swapped file fails to decrypt."""
    return f"data-sandbox:{name}:v{version}".encode()


#: The engine's type for each policy column type (tables are cast to these when registered).
ARROW_TYPES = {"int": pa.int64(), "float": pa.float64(), "text": pa.string(), "date": pa.date32(),
               "bool": pa.bool_()}


def conformed(table: pa.Table, policy: DatasetPolicy, policy_path: str) -> tuple[pa.Table, int]:
    """``table`` checked against ``policy`` and cast to its types, with its number of units.

    Why one function: every engine's registration (a local file, a Spark source) must refuse
    the same things — columns the policy does not declare, identifiers in column names,
    empty privacy units, repeated units where one row per unit is declared.
    """
    check_against(policy, table.schema)
    carrying = identifiers_in_headers(table.schema.names)
    if carrying:  # column names are public metadata: the catalog, the derivative's recipe
        raise PolicyError(
            f"{policy_path}: column name(s) {', '.join(carrying)} carry what looks like a personal "
            "identifier (a run of 11 or more digits, or an e-mail address); column names are shown "
            "in the catalog, so rename them (第十二条)")
    table = _conform(table, policy)
    unit_col = table.column(policy.privacy_unit)
    if unit_col.null_count:
        raise PolicyError(f"{policy_path}: privacy unit {policy.privacy_unit!r} has {unit_col.null_count} empty values")
    units = pc.count_distinct(unit_col).as_py()
    if policy.one_row_per_unit and units != table.num_rows:
        raise PolicyError(
            f"{policy_path}: dataset.one_row_per_unit is true but {table.num_rows - units:,} rows "
            f"repeat a {policy.privacy_unit!r} value; set it to false and give contribution bounds"
        )
    return table, units


def _conform(table: pa.Table, policy: DatasetPolicy) -> pa.Table:
    """Cast to the canonical types (int64, float64, string, date32, bool) in policy order."""
    target = ARROW_TYPES
    arrays, names = [], []
    for col in policy.columns.values():
        arr = table.column(col.name)
        want = target[col.type]
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        if not arr.type.equals(want):
            try:
                arr = arr.cast(want)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise PolicyError(f"{policy.name}: column {col.name!r} cannot be read as {col.type}") from None
        if col.text_limit is not None:
            _check_text_length(policy.name, col.name, arr, col.text_limit)
        arrays.append(arr)
        names.append(col.name)
    return pa.table(arrays, names=names)


def _check_text_length(dataset: str, column: str, arr: pa.ChunkedArray | pa.Array, limit: int) -> None:
    """Refuse text longer than the column's limit, naming the first such row.

    PRIVACY: the guard bounds the work per character of row-level expressions; this bounds
    the characters, so one person's row can change a query's time only a little.
    """
    lengths = pc.utf8_length(arr)
    longest = pc.max(lengths).as_py()
    if longest is None or longest <= limit:
        return
    row = pc.index(pc.greater(lengths, limit), True).as_py()
    raise PolicyError(
        f"{dataset}: column {column!r} row {row + 1} holds text longer than the limit of {limit:,} "
        f"characters (the longest value has {longest:,}); declare max_length in [columns.{column}] to "
        "accept longer text (it lets one person's row change query times more; docs/privacy.md), "
        "or shorten the values")


def _version_from_row(row: sqlite3.Row) -> DatasetVersion:
    return DatasetVersion(
        dataset_id=row["dataset_id"], name=row["name"], title=row["title"], tier=row["tier"],
        owner_id=row["owner_id"], version_id=row["id"], version=row["version"],
        content_hash=row["content_hash"], file_name=row["file_name"], row_count=row["row_count"],
        unit_count=row["unit_count"], encrypted=bool(row["encrypted"]), wrapped_key=row["wrapped_key"],
        bounding_seed=row["bounding_seed"], policy=parse_policy(row["policy_toml"], row["name"]),
        created_at=row["created_at"], published_at=row["published_at"], risk_report_json=row["risk_report"],
    )


_VERSION_SQL = (
    "SELECT v.*, d.name, d.title, d.tier, d.owner_id FROM dataset_versions v "
    "JOIN datasets d ON d.id = v.dataset_id "
)


def get_version(conn: sqlite3.Connection, name: str, *, version_id: int | None = None) -> DatasetVersion:
    """A specific version, or the latest version of ``name`` (published or not)."""
    if version_id is not None:
        row = conn.execute(_VERSION_SQL + "WHERE v.id = ?", (version_id,)).fetchone()
    else:
        row = conn.execute(
            _VERSION_SQL + "WHERE d.name = ? ORDER BY v.version DESC LIMIT 1", (name,)
        ).fetchone()
    if row is None:
        raise NotFound(f"no dataset named {name!r}")
    return _version_from_row(row)


def latest_versions(conn: sqlite3.Connection, *, include_unpublished: bool = False) -> list[DatasetVersion]:
    """The newest *published* version of each dataset (what queries run on, 第十二条).

    ``include_unpublished``: the newest version whether or not its risk report has been
    acknowledged (for the owner's and the regulator's views).
    """
    published = "" if include_unpublished else " AND published_at IS NOT NULL"
    rows = conn.execute(
        _VERSION_SQL + "WHERE v.version = (SELECT MAX(version) FROM dataset_versions "
        f"WHERE dataset_id = v.dataset_id{published}) ORDER BY d.name"
    ).fetchall()
    return [_version_from_row(r) for r in rows]


def all_versions(conn: sqlite3.Connection, dataset_id: int) -> list[DatasetVersion]:
    rows = conn.execute(_VERSION_SQL + "WHERE v.dataset_id = ? ORDER BY v.version", (dataset_id,)).fetchall()
    return [_version_from_row(r) for r in rows]


def publish(conn: sqlite3.Connection, version_id: int, user_id: int, note: str, *, now: Clock) -> None:
    """Mark a version acknowledged and published (caller checks rights and logs)."""
    conn.execute(
        "UPDATE dataset_versions SET published_at = ?, published_by = ?, acknowledgement = ? WHERE id = ?",
        (iso(now()), user_id, note, version_id),
    )


def read_plaintext(data_dir: Path, v: DatasetVersion, decryptor: Decryptor | None) -> bytes:
    """The Parquet bytes of a version, decrypted in memory if stored encrypted."""
    raw = (data_dir / v.file_name).read_bytes()
    if not v.encrypted:
        return raw
    if decryptor is None or v.wrapped_key is None:
        raise NotFound(f"dataset {v.name!r} is encrypted and no key ring is available")
    try:
        return decryptor(raw, v.wrapped_key, _aad(v.name, v.version))
    except keys.DecryptionError:
        log.error("integrity check failed for %s (dataset %s version %s)", v.file_name, v.name, v.version)
        raise DataIntegrityError(
            f"the stored file of dataset {v.name!r} version {v.version} ({v.file_name}) failed its "
            "integrity check and was not read: it was modified, truncated or swapped. Restore it "
            "from a backup; no query can use it until then."
        ) from None


def encrypt_at_rest(conn: sqlite3.Connection, data_dir: Path, dataset_id: int, encryptor: Encryptor) -> list[Path]:
    """Encrypt every plaintext version of a dataset whose tier now requires it.

    Runs inside the caller's transaction: writes ``.enc`` files and updates the rows; returns
    the plaintext files, which the caller deletes only after COMMIT (a rollback must leave a
    readable file behind).
    """
    leftovers = []
    for v in all_versions(conn, dataset_id):
        if v.encrypted:
            continue
        source = data_dir / v.file_name
        ciphertext, wrapped = encryptor(source.read_bytes(), _aad(v.name, v.version))
        file_name = v.file_name + ".enc"
        tmp = data_dir / (file_name + ".tmp")
        tmp.write_bytes(ciphertext)
        tmp.replace(data_dir / file_name)
        conn.execute("UPDATE dataset_versions SET file_name = ?, encrypted = 1, wrapped_key = ? WHERE id = ?",
                     (file_name, wrapped, v.version_id))
        leftovers.append(source)
        drop_engine_files(data_dir, v)  # plaintext and derived: rebuilt, encrypted, on next use (0013)
    return leftovers


def build_catalog(versions: list[DatasetVersion]) -> Catalog:
    return Catalog(
        {
            v.name: v.policy.table_info(bounding_seed=v.bounding_seed, version=v.content_hash)
            for v in versions
        }
    )


# -- engine files (docs/decisions/0013) -------------------------------------------------
def engine_dir(data_dir: Path) -> Path:
    """The one directory the engine's DuckDB may read: engine files only, nothing else."""
    return data_dir / "engine"


def engine_files(data_dir: Path, v: DatasetVersion, purpose: str = "data") -> list[Path]:
    return sorted(engine_dir(data_dir).glob(f"{v.name}-v{v.version}-{purpose}-*.parquet"))


def drop_engine_files(data_dir: Path, v: DatasetVersion) -> None:
    """Remove a version's engine files (they are derived: the stored file stays)."""
    for p in engine_dir(data_dir).glob(f"{v.name}-v{v.version}-*.parquet"):
        p.unlink(missing_ok=True)
