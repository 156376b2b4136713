"""A small Python client for the JSON API, for notebooks and scripts (issue 8).

    >>> from sandbox.client import Client                          # doctest: +SKIP
    >>> api = Client("http://127.0.0.1:8000", token)               # doctest: +SKIP
    >>> t = api.query("SELECT district, AVG(income) FROM residents GROUP BY district",
    ...               approval_id=1, epsilon=0.5)                   # doctest: +SKIP
    >>> t.to_pandas()                                               # doctest: +SKIP

``query`` returns a ``pyarrow.Table``: the released columns, and for every noisy column
``<col>_lower`` / ``<col>_upper`` (its confidence interval at ``confidence``; it covers the
noise only, not the bias of bounding and clamping) and ``<col>_not_informative`` (the
interval covers most of what the figure can be). The release's
query id, ε spent, cache flag, budget and signed receipt are in the schema metadata
(``release_info(table)`` decodes them). Errors raise ``ClientError`` carrying the API's
``code``, ``message`` and, for refused SQL, ``position``.

Only the standard library and pyarrow: no HTTP dependency to install in a notebook.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pyarrow as pa

__all__ = ["Client", "ClientError", "release_info", "to_table"]

METADATA_KEY = b"sandbox.release"


class ClientError(Exception):
    """An error answered by the API (``{"error": {"code", "message", "position"?}}``) or a
    transport failure (``code="connection_error"``, ``status=None``)."""

    def __init__(self, status: int | None, code: str, message: str, position: Any = None):
        super().__init__(f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.status = status
        self.code = code
        self.message = message
        self.position = position


class Client:
    """Bearer-token client for ``/api/v1``. Thread-safe: holds no connection state."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def __repr__(self) -> str:  # SECURITY: never show the token
        return f"Client({self.url!r}, token=***)"

    # -- transport --------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """One JSON request; the decoded JSON answer, or ``ClientError``."""
        url = self.url + path
        if params:
            url += "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        data = (
            None if body is None else json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
        )
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            raise _error_from(err.code, err.read()) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            raise ClientError(
                None, "connection_error", f"cannot reach {self.url}: {reason}"
            ) from None

    # -- API --------------------------------------------------------------------------
    def query_json(
        self,
        sql: str,
        approval_id: int | str,
        epsilon: float | None = None,
        confidence: float = 0.95,
    ) -> dict[str, Any]:
        """``POST /api/v1/queries``: the raw JSON release."""
        body: dict[str, Any] = {"approval_id": approval_id, "sql": sql, "confidence": confidence}
        if epsilon is not None:
            body["epsilon"] = epsilon
        return self.request("POST", "/api/v1/queries", body)

    def query(
        self,
        sql: str,
        approval_id: int | str,
        epsilon: float | None = None,
        confidence: float = 0.95,
    ) -> pa.Table:
        """Run a query; the released table with ``<col>_lower``/``<col>_upper`` columns."""
        return to_table(self.query_json(sql, approval_id, epsilon, confidence))

    def preview(
        self,
        sql: str,
        approval_id: int | str,
        epsilon: float | None = None,
        confidence: float = 0.95,
        accuracy: dict[str, Any] | None = None,
        expected_rows: int | None = None,
    ) -> dict[str, Any]:
        """``POST /api/v1/queries/preview``: cost and expected accuracy, spending nothing.

        ``accuracy={"column": ..., "half_width": ...}`` asks for the smallest ε reaching it.
        """
        body: dict[str, Any] = {"approval_id": approval_id, "sql": sql, "confidence": confidence}
        if epsilon is not None:
            body["epsilon"] = epsilon
        if accuracy is not None:
            body["accuracy"] = accuracy
        if expected_rows is not None:
            body["expected_rows"] = expected_rows
        return self.request("POST", "/api/v1/queries/preview", body)

    def budget(self, approval_id: int | str) -> dict[str, Any]:
        """``GET /api/v1/approvals/<id>/budget``."""
        ident = urllib.parse.quote(str(approval_id), safe="")
        return self.request("GET", f"/api/v1/approvals/{ident}/budget")

    def datasets(self) -> list[dict[str, Any]]:
        """``GET /api/v1/datasets``: the datasets (and their columns) visible to you."""
        return self.request("GET", "/api/v1/datasets")["datasets"]

    def openapi(self) -> dict[str, Any]:
        return self.request("GET", "/api/v1/openapi.json")


def _error_from(status: int, raw: bytes) -> ClientError:
    try:
        err = json.loads(raw)["error"]
        return ClientError(status, str(err["code"]), str(err["message"]), err.get("position"))
    except (ValueError, KeyError, TypeError):
        text = raw[:200].decode("utf-8", "replace").strip()
        return ClientError(status, f"http_{status}", text or "no error body")


def to_table(release: dict[str, Any]) -> pa.Table:
    """A JSON release → ``pyarrow.Table`` (pure; also usable on a saved response)."""
    columns: list[str] = list(release["columns"])
    rows: list[list[Any]] = release["rows"]
    accuracy: dict[str, Any] = release.get("accuracy") or {}
    arrays: dict[str, pa.Array] = {}
    for i, name in enumerate(columns):
        arrays[name] = _array([row[i] for row in rows])
    for name in columns:
        acc = accuracy.get(name)
        if not acc:
            continue
        intervals = acc.get("intervals") or [None] * len(rows)
        arrays[f"{name}_lower"] = pa.array(
            [None if iv is None else iv[0] for iv in intervals], pa.float64()
        )
        arrays[f"{name}_upper"] = pa.array(
            [None if iv is None else iv[1] for iv in intervals], pa.float64()
        )
        if "not_informative" in acc:
            arrays[f"{name}_not_informative"] = pa.array(
                [bool(f) for f in acc["not_informative"]], pa.bool_()
            )
    info = {
        k: release.get(k)
        for k in (
            "query_id",
            "epsilon_spent",
            "delta_spent",
            "cached",
            "budget",
            "receipt",
            "notes",
            "accuracy_note",
        )
    }
    info["confidence"] = {c: a.get("confidence") for c, a in accuracy.items()}
    info["method"] = {c: a.get("method") for c, a in accuracy.items()}
    info["public_range"] = {c: a.get("public_range") for c, a in accuracy.items()}
    table = pa.table(arrays) if arrays else pa.table({})
    return table.replace_schema_metadata(
        {METADATA_KEY: json.dumps(info, ensure_ascii=False).encode()}
    )


def release_info(table: pa.Table) -> dict[str, Any]:
    """The release's query id, ε spent, cache flag, budget and receipt kept on the table."""
    meta = table.schema.metadata or {}
    return json.loads(meta.get(METADATA_KEY, b"{}"))


def _array(values: list[Any]) -> pa.Array:
    """Numbers become float64 when any is fractional (noisy values), int64 otherwise."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        if all(isinstance(v, int) for v in present):
            return pa.array(values, pa.int64())
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if present and all(isinstance(v, str) for v in present):
        return pa.array(values, pa.string())
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
