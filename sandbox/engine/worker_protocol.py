"""The messages between the engine pool (``sandbox.engine.pool``) and a worker process
(``sandbox.engine.worker``) over their pipe: plain data only (docs/decisions/0005).

Parent to worker: an :class:`~sandbox.engine.execution.EngineRequest`; ``("warm",
[DatasetVersion, …])`` to preload while idle; ``None`` to exit.

Worker to parent: ``("ready", pid)`` or ``("fatal", why)`` once at start; ``("phase",
timeout)`` as each engine call starts; then ``("ok",)`` followed by the result as Arrow IPC
bytes, or ``("error", module, class name, code, message, status)``.

SECURITY: an error carries its class, stable code and message only when it is a
``SandboxError`` (whose messages are generic); any other failure becomes :data:`GENERIC`,
never engine text, which may hold data.
"""

from __future__ import annotations

import importlib

import pyarrow as pa

from sandbox.errors import EngineFailure, SandboxError

GENERIC = "the query could not be executed by the engine"
#: the answer to a failure that is not a SandboxError: the caller sees :data:`GENERIC`
UNKNOWN_ERROR = ("error", None, None, "", "", 500)


def error_reply(err: SandboxError) -> tuple[object, ...]:
    return ("error", type(err).__module__, type(err).__qualname__, err.code, err.message, err.http_status)


def rebuild(module: str | None, name: str | None, code: str, message: str, status: int) -> SandboxError:
    """The worker's SandboxError as the caller would have seen it in process."""
    if module and name:
        cls = getattr(importlib.import_module(module), name, None)
        if isinstance(cls, type) and issubclass(cls, SandboxError):
            err = cls.__new__(cls)
            SandboxError.__init__(err, message, code=code, status=status)
            return err
    return EngineFailure(GENERIC)


def to_ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
