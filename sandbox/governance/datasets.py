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

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import keys
from query_guard import Catalog
from sandbox.clock import Clock, iso
from sandbox.engine.embedded import ParquetTable, with_rowid
from sandbox.errors import NotFound, PolicyError, SandboxError
from sandbox.governance import file_readers, risk_scan
from sandbox.governance.policy import DatasetPolicy, check_against, parse_policy

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
Encryptor = Callable[[bytes, bytes], tuple[bytes, bytes]]
Decryptor = Callable[[bytes, bytes, bytes], bytes]


class KeyringDecryptor:
    """Decrypts dataset files whose data keys ``keyring``'s master key wrapped (the server
    and every engine worker read data at rest through this one object)."""

    def __init__(self, keyring: keys.KeyRing):
        self.keyring = keyring

    def __call__(self, blob: bytes, wrapped: bytes, aad: bytes) -> bytes:
        return keys.decrypt_blob(self.keyring.unwrap_data_key(wrapped), blob, aad)

    def data_key(self, wrapped: bytes) -> bytes:
        return self.keyring.unwrap_data_key(wrapped)


def keyring_decryptor(keyring: keys.KeyRing) -> KeyringDecryptor:
    return KeyringDecryptor(keyring)
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

    row = existing
    if row is None:
        # issue 14 (第五条): a dataset belongs to its owner's organisation
        cur = conn.execute(
            "INSERT INTO datasets (name, title, owner_id, tier, created_at, org_id) VALUES (?,?,?,?,?,"
            "(SELECT org_id FROM users WHERE id = ?))",
            (name, policy.title, owner["id"], policy.tier, iso(now()), owner["id"]),
        )
        dataset_id = int(cur.lastrowid)  # type: ignore[arg-type]
        version = 1
    else:
        dataset_id = int(row["id"])
        conn.execute("UPDATE datasets SET title = ? WHERE id = ?", (policy.title, dataset_id))
        version = 1 + conn.execute(
            "SELECT COALESCE(MAX(version), 0) FROM dataset_versions WHERE dataset_id = ?", (dataset_id,)
        ).fetchone()[0]

    encrypted = encryptor is not None and policy.tier in ENCRYPTED_TIERS
    file_name = f"{name}-v{version}.parquet" + (".enc" if encrypted else "")
    wrapped = None
    payload = plain
    if encrypted:
        assert encryptor is not None
        payload, wrapped = encryptor(plain, _aad(name, version))
    target = data_dir / file_name
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(target)
    seed = secrets.token_hex(16)
    cur = conn.execute(
        "INSERT INTO dataset_versions (dataset_id, version, policy_toml, content_hash, file_name, "
        "row_count, unit_count, encrypted, wrapped_key, bounding_seed, created_at, risk_report) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (dataset_id, version, policy_text, content_hash, file_name, table.num_rows, units,
         int(encrypted), wrapped, seed, iso(now()), json.dumps(report, ensure_ascii=False)),
    )
    return get_version(conn, name, version_id=int(cur.lastrowid))  # type: ignore[arg-type]


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
    carrying = risk_scan.identifiers_in_headers(table.schema.names)
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


class TableCache:
    """Dataset versions as the engine reads them (docs/decisions/0013, amended).

    Two forms, chosen per version by a *residency budget* (``resident_bytes``):

    * a version whose decrypted size fits the budget is decrypted once and held in memory
      as an Arrow table (the fast path: no page decryption per query); the versions held
      are the most recently used ones that fit together (LRU);
    * a larger version is read by DuckDB in place from its Parquet-encrypted engine file,
      page by page; nothing decrypted is kept.

    So a worker holds at most ``resident_bytes`` of decrypted data, whatever the data's
    size (issue 16), and small versions are as fast as before (issue 18). A version whose
    data key is an SM4 key (the ``sm`` crypto profile: DuckDB has no SM4) is always
    decrypted whole into memory, outside the budget.
    SECURITY: decrypted data lives only in memory; it is never written back in plaintext.
    """

    #: rows sampled from an engine file to estimate a version's decrypted size
    SAMPLE_ROWS = 65_536

    def __init__(self, data_dir: Path, decryptor: Decryptor | None = None, *, resident_bytes: int = 0):
        """``resident_bytes``: the residency budget; 0 reads every version in place."""
        self.data_dir = data_dir
        self.decryptor = decryptor
        self.resident_bytes = max(0, int(resident_bytes))
        self._tables: dict[int, pa.Table] = {}
        self._sources: dict[tuple[int, bool], pa.Table | ParquetTable] = {}
        self._sizes: dict[tuple[int, bool], int] = {}
        self._resident: OrderedDict[tuple[int, bool], tuple[pa.Table, int]] = OrderedDict()
        self._lock = threading.Lock()

    def source(self, v: DatasetVersion) -> pa.Table | ParquetTable:
        """What the engine reads for ``v``: its table in memory if it fits the budget,
        else its engine file (written the first time)."""
        k = (v.version_id, v.encrypted)
        with self._lock:
            found = self._sources.get(k)
            if found is None:
                key = self._data_key(v) if v.encrypted else None
                if key is not None and len(key) != 32:  # SM4 (the sm profile): whole, in memory
                    found = self._load(v)
                else:
                    found = prepare_engine_file(self.data_dir, v, self.decryptor)
                self._sources[k] = found
            if not isinstance(found, ParquetTable) or self.resident_bytes == 0:
                return found
            held = self._resident.get(k)
            if held is not None:
                self._resident.move_to_end(k)
                return held[0]
            size = self._sizes.get(k)
            if size is None:
                size = self._sizes[k] = estimate_bytes(found)
            if size > self.resident_bytes:
                return found  # read in place
            while self._resident and self.resident_bytes - sum(s for _, s in self._resident.values()) < size:
                self._resident.popitem(last=False)
            table = _with_public_dictionaries(self._load(v), v.policy)
            pa.default_memory_pool().release_unused()  # the decrypted file and plain columns
            self._resident[k] = (table, size)
            return table

    def resident(self) -> list[int]:
        """Version ids held decrypted in memory under the budget, least recently used first."""
        with self._lock:
            return [k[0] for k in self._resident]

    def get(self, v: DatasetVersion) -> pa.Table:
        """The whole decrypted table with ``__rowid``, kept in memory (tools and tests; the
        query path reads :meth:`source`)."""
        with self._lock:
            cached = self._tables.get(v.version_id)
            if cached is None:
                cached = self._tables[v.version_id] = self._load(v)
            return cached

    def _load(self, v: DatasetVersion) -> pa.Table:
        return with_rowid(pq.read_table(io.BytesIO(read_plaintext(self.data_dir, v, self.decryptor))))

    def keep_store(self, v: DatasetVersion, key: tuple) -> KeepStore | None:
        """Where the keep flags ``key`` of bounded version ``v`` persist (versions with an
        engine file, whether read in place or held in memory; their row order is the same)."""
        self.source(v)
        with self._lock:
            if not isinstance(self._sources.get((v.version_id, v.encrypted)), ParquetTable):
                return None
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
        return KeepStore(self.data_dir, v, self.decryptor, f"keep{digest}")

    def _data_key(self, v: DatasetVersion) -> bytes | None:
        getter = getattr(self.decryptor, "data_key", None)
        return getter(v.wrapped_key) if getter is not None and v.wrapped_key is not None else None


def _with_public_dictionaries(table: pa.Table, policy: DatasetPolicy) -> pa.Table:
    """Dictionary-encode the text columns with declared ``public_values``.

    Why: DuckDB groups and filters a dictionary-encoded Arrow column 5-10x faster than
    plain Arrow strings (docs/benchmarks.md "Memory"), and the held table shrinks. Which
    columns are encoded follows from the policy alone, never from the values.
    """
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        declared = policy.columns.get(name)
        if declared is not None and declared.type == "text" and declared.public_values is not None:
            column = pc.dictionary_encode(column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def estimate_bytes(t: ParquetTable, sample_rows: int = TableCache.SAMPLE_ROWS) -> int:
    """The Arrow size of an engine file decrypted whole, estimated from its first rows.

    Read on a short-lived DuckDB connection of our own code (never the engine's), which
    decrypts only the pages of the sample. PRIVACY: the result depends on the data only as
    a version-level size (like the file's size on disk), fixed at publish.
    """
    import duckdb

    con = duckdb.connect(":memory:", config={"threads": 1, "autoload_known_extensions": False,
                                               "autoinstall_known_extensions": False})
    try:
        enc = ""
        if t.key is not None:
            con.execute(f"PRAGMA add_parquet_key('k', '{base64.b64encode(t.key).decode()}')")
            enc = ", encryption_config={footer_key: 'k'}"
        path = t.path.replace("'", "''")
        sample = con.sql(f"SELECT * FROM read_parquet('{path}'{enc}) LIMIT {int(sample_rows)}").to_arrow_table()
    finally:
        con.close()
    if sample.num_rows == 0:
        return 0
    per_row = sample.nbytes / sample.num_rows + 8  # + the int64 row id
    return int(per_row * t.num_rows)


# -- engine files (docs/decisions/0013) -------------------------------------------------
def engine_dir(data_dir: Path) -> Path:
    """The one directory the engine's DuckDB may read: engine files only, nothing else."""
    return data_dir / "engine"


def engine_key(data_key: bytes, name: str, version: int, salt: bytes, purpose: str = "data") -> bytes:
    """The Parquet key of one engine file: HKDF-SHA256 of the version's data key.

    Why the salt: it is fresh for every file written (and in its name), so no two files
    ever share a key, and DuckDB's writer (whose nonces come from a non-cryptographic
    generator without OpenSSL) never reuses a (key, nonce) pair across files. Why the name
    and version in ``info``: a file swapped for another version's fails its GCM tags, as
    the whole-file blob's AAD did.
    """
    info = f"data-sandbox:engine:{purpose}:{name}:v{version}".encode()
    return keys.subkey(data_key, salt, info)


def _engine_files(data_dir: Path, v: DatasetVersion, purpose: str = "data") -> list[Path]:
    return sorted(engine_dir(data_dir).glob(f"{v.name}-v{v.version}-{purpose}-*.parquet"))


def _engine_table(path: Path, v: DatasetVersion, decryptor: Decryptor | None, purpose: str = "data",
                  num_rows: int | None = None) -> ParquetTable:
    rows = v.row_count if num_rows is None else num_rows
    if not v.encrypted:
        return ParquetTable(str(path.resolve()), rows)
    salt = bytes.fromhex(path.stem.rsplit("-", 1)[1])
    key = engine_key(_data_key(v, decryptor), v.name, v.version, salt, purpose)
    return ParquetTable(str(path.resolve()), rows, f"v{v.version_id}_{purpose}_{salt.hex()}", key)


def _data_key(v: DatasetVersion, decryptor: Decryptor | None) -> bytes:
    getter = getattr(decryptor, "data_key", None)
    if getter is None or v.wrapped_key is None:
        raise NotFound(f"dataset {v.name!r} is encrypted and no key ring is available")
    return getter(v.wrapped_key)


@contextlib.contextmanager
def _engine_lock(data_dir: Path):
    """One writer of engine files at a time, across the server and its workers."""
    d = engine_dir(data_dir)
    d.mkdir(mode=0o700, exist_ok=True)
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_engine_file(data_dir: Path, v: DatasetVersion, decryptor: Decryptor | None,
                      table: pa.Table | pa.RecordBatchReader, purpose: str = "data", *,
                      num_rows: int | None = None) -> ParquetTable:
    """Write ``table`` as an engine file of ``v`` (encrypted under a fresh key if ``v`` is).

    A record-batch reader is streamed: the decrypted version is never decoded whole.
    Runs on a separate, short-lived DuckDB connection of our own code, never the engine's.
    """
    import duckdb

    d = engine_dir(data_dir)
    salt = secrets.token_bytes(16)
    path = d / f"{v.name}-v{v.version}-{purpose}-{salt.hex()}.parquet"
    tmp = d / f".{path.name}.tmp"
    con = duckdb.connect(":memory:", config={"threads": 2, "autoload_known_extensions": False,
                                               "autoinstall_known_extensions": False})
    try:
        con.register("t", table)
        options = "FORMAT parquet, COMPRESSION zstd"
        if v.encrypted:
            key = engine_key(_data_key(v, decryptor), v.name, v.version, salt, purpose)
            # DuckDB without OpenSSL (httpfs) refuses to write encrypted files, because its
            # nonces come from a non-cryptographic generator; the key is used for this file
            # only (fresh salt), so nonces need to be unique within the file, not secret.
            con.execute("SET force_mbedtls_unsafe=true")
            con.execute(f"PRAGMA add_parquet_key('k', '{base64.b64encode(key).decode()}')")
            options += ", ENCRYPTION_CONFIG {footer_key: 'k'}"
        con.execute(f"COPY (SELECT * FROM t) TO '{tmp}' ({options})")
    finally:
        con.close()
    os.replace(tmp, path)
    return _engine_table(path, v, decryptor, purpose, num_rows if num_rows is not None else table.num_rows)


def prepare_engine_file(data_dir: Path, v: DatasetVersion, decryptor: Decryptor | None) -> ParquetTable:
    """The version's engine file, written from its stored file the first time (at publish,
    or for a version stored before engine files existed: the migration)."""
    with _engine_lock(data_dir):
        found = _engine_files(data_dir, v)
        if found:
            return _engine_table(found[-1], v, decryptor)
        log.info("writing the engine file of %s version %s", v.name, v.version)
        source = pq.ParquetFile(io.BytesIO(read_plaintext(data_dir, v, decryptor)))
        batches = pa.RecordBatchReader.from_batches(source.schema_arrow, source.iter_batches(batch_size=122_880))
        return write_engine_file(data_dir, v, decryptor, batches, num_rows=v.row_count)


class KeepStore:
    """One keep column (decision 0004) persisted as an engine file of its bounded version,
    encrypted like the data (its own fresh key), so every worker and every restart reads it
    instead of ranking every row again (issue 18: no first-use stall)."""

    def __init__(self, data_dir: Path, v: DatasetVersion, decryptor: Decryptor | None, purpose: str):
        self.data_dir, self.v, self.decryptor, self.purpose = data_dir, v, decryptor, purpose

    def load(self, engine) -> pa.BooleanArray | None:
        found = _engine_files(self.data_dir, self.v, self.purpose)
        if not found:
            return None
        t = _engine_table(found[-1], self.v, self.decryptor, self.purpose)
        flags = engine.execute("SELECT keep FROM k", {"k": t}).column("keep").combine_chunks()
        if len(flags) != self.v.row_count:  # SECURITY: a wrong file must not shift rows
            raise DataIntegrityError(f"a bounding file of dataset {self.v.name!r} does not match its version")
        return flags

    def save(self, flags: pa.BooleanArray) -> None:
        with _engine_lock(self.data_dir):
            if not _engine_files(self.data_dir, self.v, self.purpose):
                write_engine_file(self.data_dir, self.v, self.decryptor, pa.table({"keep": flags}), self.purpose)


def drop_engine_files(data_dir: Path, v: DatasetVersion) -> None:
    """Remove a version's engine files (they are derived: the stored file stays)."""
    for p in engine_dir(data_dir).glob(f"{v.name}-v{v.version}-*.parquet"):
        p.unlink(missing_ok=True)
