"""Dataset versions as the engine reads them: the table cache, the engine files and the
persisted keep columns (docs/decisions/0013).

Why apart from ``sandbox.governance.datasets``: registering a version is the regulation's
business; how a worker holds or reads it (in memory under a residency budget, or in place
from a Parquet-encrypted file) is the engine's.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import logging
import os
import secrets
import threading
from collections import OrderedDict
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import keys
from sandbox.engine.embedded import ParquetTable, with_rowid
from sandbox.errors import NotFound
from sandbox.governance.datasets import (
    DataIntegrityError,
    DatasetVersion,
    Decryptor,
    engine_dir,
    engine_files,
    read_plaintext,
)
from sandbox.governance.policy import DatasetPolicy

log = logging.getLogger(__name__)


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
        found = engine_files(data_dir, v)
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
        found = engine_files(self.data_dir, self.v, self.purpose)
        if not found:
            return None
        t = _engine_table(found[-1], self.v, self.decryptor, self.purpose)
        flags = engine.execute("SELECT keep FROM k", {"k": t}).column("keep").combine_chunks()
        if len(flags) != self.v.row_count:  # SECURITY: a wrong file must not shift rows
            raise DataIntegrityError(f"a bounding file of dataset {self.v.name!r} does not match its version")
        return flags

    def save(self, flags: pa.BooleanArray) -> None:
        with _engine_lock(self.data_dir):
            if not engine_files(self.data_dir, self.v, self.purpose):
                write_engine_file(self.data_dir, self.v, self.decryptor, pa.table({"keep": flags}), self.purpose)
