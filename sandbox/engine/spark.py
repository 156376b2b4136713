"""The Spark engine: a locked-down SparkSession running the guard's plan in Spark SQL.

Local mode (``local[2]``), a standalone master (``spark://host:port``) or Spark Connect
(``sc://host:port``), from :class:`SparkSettings`. SECURITY, as for DuckDB
(``sandbox.engine.embedded``): Spark only ever receives SQL that ``sandbox.engine.spark_sql`` generated
from the guard's tree; nonetheless the session is set up as if hostile SQL could reach it:

* ANSI mode off, decided explicitly (PRIVACY): with it on, a cast or an overflow raises
  on some value, so whether a query fails would depend on one person's row (DESIGN.md
  "Invariants"); off, they give NULL, and the arithmetic uses ``try_*`` forms.
* ``spark.sql.runSQLOnFiles`` off: no ``parquet.`/path``` table references.
* only temporary views the sandbox registered, one per dataset version, are referenced
  (checked on the generated tree), and no UDF is ever registered.
* every query runs in its own job group (Spark Connect: a tag); a timeout cancels it.

Errors never reach a researcher verbatim (an analysis error can print a value).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from sandbox.errors import EngineFailure

log = logging.getLogger(__name__)

#: setting → value the self-check insists on (PRIVACY / SECURITY, module docstring).
LOCKED_CONF = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.runSQLOnFiles": "false",
}

#: Conf for a quick session on small data (tests, one machine); overridable per workspace.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.session.timeZone": "UTC",
}


@dataclass(frozen=True)
class SparkSettings:
    master: str = "local[2]"  # local[N], spark://host:port, or sc://host:port (Spark Connect)
    conf: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 120.0


class SparkEngine:
    """One SparkSession; datasets are registered as temporary views per version."""

    def __init__(self, settings: SparkSettings | None = None):
        self.settings = settings or SparkSettings()
        self._session = None
        self._views: dict[str, str] = {}  # view name → source, registered in this session
        self._lock = threading.Lock()

    @property
    def session(self):
        """The session, started on first use (a JVM start takes seconds)."""
        with self._lock:
            if self._session is None:
                self._session = self._start()
            return self._session

    def _start(self):
        from pyspark.sql import SparkSession

        master = self.settings.master
        builder = SparkSession.builder.appName("data-sandbox")
        builder = builder.remote(master) if master.startswith("sc://") else builder.master(master)
        conf = {**LOCAL_CONF, **dict(self.settings.conf), **LOCKED_CONF}
        if not master.startswith("sc://"):
            conf["spark.sql.catalogImplementation"] = "in-memory"  # no metastore of its own
        for key, value in conf.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        for key, value in LOCKED_CONF.items():  # a reused session: set, then check
            session.conf.set(key, value)
        self._check(session)
        return session

    @staticmethod
    def _check(session) -> None:
        bad = {k: session.conf.get(k) for k, v in LOCKED_CONF.items() if str(session.conf.get(k)).lower() != v}
        if bad:
            raise RuntimeError(f"spark engine self-check failed: settings not locked down: {bad}")

    def self_check(self) -> dict[str, str]:
        """The session's version and locked settings; raises if any escaped the lock."""
        session = self.session
        self._check(session)
        return {"version": session.version, "master": self.settings.master,
                **{k: session.conf.get(k) for k in LOCKED_CONF}}

    def register(self, view: str, source: str) -> None:
        """Make ``source`` queryable as the temporary view ``view`` (with ``__rowid``).

        ``source``: ``parquet:PATH``, ``orc:PATH`` or ``table:DB.NAME`` (a metastore table).
        The row id is the row's index in its file for one Parquet file (the same index the
        DuckDB engine uses); otherwise ``monotonically_increasing_id()``, stable for the
        same files within one query. The row id only names rows: ties in the bounding
        order are between identical rows, so which one is kept changes no aggregate.
        """
        with self._lock:
            if self._views.get(view) == source:
                return
        kind, _, where = source.partition(":")
        session = self.session
        if kind == "parquet":
            df = session.read.parquet(where)
            one_file = where.endswith(".parquet")
            rowid = "_metadata.row_index" if one_file else "monotonically_increasing_id()"
        elif kind == "orc":
            df, rowid = session.read.orc(where), "monotonically_increasing_id()"
        elif kind == "table":
            df, rowid = session.table(where), "monotonically_increasing_id()"
        else:
            raise ValueError(f"unknown Spark source {source!r}; use parquet:PATH, orc:PATH or table:NAME")
        df.selectExpr("*", f"CAST({rowid} AS BIGINT) AS __rowid").createOrReplaceTempView(view)
        with self._lock:
            self._views[view] = source

    def analyse(self, sql: str) -> None:
        """Resolve ``sql`` without running a job: errors here (unknown function, a type
        mismatch, a literal Spark cannot hold) cannot depend on the data, so the service
        refuses them before the charge. Raises :class:`EngineFailure`."""
        try:
            self.session.sql(sql).schema  # noqa: B018 - analysis only
        except Exception as exc:  # pyspark raises several classes; all are refusals
            log.warning("spark analysis error %s", type(exc).__name__)
            raise EngineFailure("the query could not be executed by the engine") from None

    def execute(self, sql: str, *, timeout_seconds: float | None = None) -> pa.Table:
        """Run ``sql``; Arrow result. Timeout: the query's job group (Spark Connect: its
        tag) is cancelled and :class:`EngineFailure` ``query_timeout`` raised."""
        session = self.session
        group = "sandbox-" + uuid.uuid4().hex
        timed_out = threading.Event()
        context = _context(session)

        finished = threading.Event()

        def interrupt() -> None:
            # A query may start several jobs one after another (a broadcast, then the
            # aggregate): cancel the group until the call has returned.
            timed_out.set()
            while not finished.is_set():
                try:
                    if context is not None:
                        context.cancelJobGroup(group)
                    else:
                        session.interruptTag(group)
                except Exception as exc:  # pragma: no cover - the session went away
                    log.warning("spark interrupt failed %s", type(exc).__name__)
                finished.wait(0.25)

        timeout = self.settings.timeout_seconds if timeout_seconds is None else timeout_seconds
        timer = threading.Timer(timeout, interrupt)
        timer.daemon = True
        if context is not None:
            context.setJobGroup(group, "sandbox query", interruptOnCancel=True)
        else:
            session.addTag(group)
        try:
            timer.start()
            return session.sql(sql).toArrow()
        except Exception as exc:
            if timed_out.is_set():
                raise EngineFailure(f"the query ran longer than {timeout:g} s and was stopped",
                                    code="query_timeout", status=408) from None
            # SECURITY: the class only; the text may contain data values.
            log.warning("spark engine error %s", type(exc).__name__)
            raise EngineFailure("the query could not be executed by the engine") from None
        finally:
            finished.set()
            timer.cancel()
            if context is not None:
                context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            else:
                session.removeTag(group)

    def stop(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.stop()
                self._session = None
                self._views.clear()


def _context(session):
    """The SparkContext of a classic session; None under Spark Connect (no context)."""
    try:
        return session.sparkContext
    except Exception:  # Spark Connect sessions have none
        return None
