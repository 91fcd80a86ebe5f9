"""The query API's second tenant wall: one locked-down, in-memory DuckDB per tenant.

The SQL guard (wall 1) vets a query's text; this wall must hold alone against hostile SQL.
A sandbox is a separate DuckDB database whose only tables are views over the tenant's own
Delta files (see ``tenant_tables``). After the views exist it allows DuckDB to open exactly
those files (``allowed_paths``), turns external access off (no other file, no COPY, ATTACH,
INSTALL/LOAD, secrets or Python objects) and locks the configuration, so no statement can
undo any of it. It then runs only single SELECT statements: DuckDB always allows its own
temp directory, so a COPY or EXPORT could otherwise write files there.

Every query runs on a fresh cursor (concurrent callers are safe), with parameters bound by
DuckDB, a timeout that interrupts it and caps on the rows and bytes it may return.
``SandboxPool`` keeps sandboxes open per tenant and rebuilds one when a table it serves
gets a new Delta version.

Derived views (explores: a fact joined to its dimensions) are created from sqlglot trees
after the table views and before the lock-down. Each must read only the sandbox's own
views, by qualified name, and pass the SQL guard's allowlist, so it can reach no more
than a tenant's query could.

Measured on a 2-CPU VM (DuckDB 2.0, two tables, one file per tenant): building a sandbox
takes ~20-25 ms, ~15 ms of it ``duckdb.connect`` itself (tenant_tables ~2 ms per table,
views and lock-down ~3 ms); closing one ~5 ms. A query through ``run`` adds 0.2-0.5 ms
over ``con.sql(q).to_arrow_table()`` on a plain connection over the same files, through
``SandboxPool.run`` 0.35-0.65 ms. The pool's freshness check stats two log file names per
table (~10 us) where ``DeltaTable(path).version()`` takes ~1 ms, so it is not cached.
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias

import duckdb
import pyarrow as pa
from sqlglot import exp

from strata.core.errors import InvalidIdentifierError, Terminal, Transient
from strata.core.identifiers import validate_name, validate_tenant
from strata.core.lifecycle import Closing
from strata.semantic.guard import DIALECT, QueryRefused, guard_query
from strata.semantic.tenant_tables import (
    ConfigValue,
    SandboxTable,
    TableLocation,
    quote_name,
    quote_value,
    tenant_tables,
    view_sql,
)
from strata.transform.config import DEFAULT_TENANT_KEY
from strata.transform.tables import table_version

Parameters = Mapping[str, object]
DerivedViews: TypeAlias = Callable[[Sequence[SandboxTable]], Mapping[str, exp.Query]]
"""Given a sandbox's tables, the views to define over them: ``"schema.view"`` -> query.
Views are created in the mapping's order; one may read the views before it."""


@dataclass(frozen=True)
class SandboxLimits:
    """Resources one sandbox may use; all its queries share them."""

    threads: int = 1
    memory_limit: str = "512MB"
    timeout_s: float = 10.0
    max_temp_directory_size: str = "1GB"  # spill space; DuckDB spills before it fails
    # Arrow results live outside memory_limit, so they are capped too (checked per batch,
    # so one batch may overshoot: DuckDB does not bound a batch's bytes).
    max_rows: int = 1_000_000
    max_result_bytes: int = 256 * 2**20
    temp_root: Path | None = None  # where private temp directories go; default the system's


class SandboxQueryError(Terminal):
    """A tenant's query failed; ``str()`` is one line fit to show the tenant."""

    def __init__(self, tenant: str, message: str) -> None:
        self.tenant = tenant
        super().__init__(message)


class StatementRefusedError(SandboxQueryError):
    """The SQL is not exactly one SELECT statement."""


class QueryTimeout(SandboxQueryError):  # noqa: N818 - named for what the caller sees
    def __init__(self, tenant: str, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(tenant, f"query interrupted: it ran longer than {timeout_s:g} s")


class QueryMemoryError(SandboxQueryError):
    def __init__(self, tenant: str, limits: SandboxLimits, detail: str) -> None:
        self.memory_limit = limits.memory_limit
        super().__init__(
            tenant,
            f"query needs more memory than the sandbox allows (memory_limit "
            f"{limits.memory_limit}, spill {limits.max_temp_directory_size}): {detail}",
        )


class ResultTooLargeError(SandboxQueryError):
    def __init__(self, tenant: str, limit: str) -> None:
        super().__init__(tenant, f"query result is larger than {limit}")


class SandboxClosedError(Transient):
    """The sandbox was closed (evicted or rebuilt); get a fresh one and retry."""


class SandboxSetupError(Terminal):
    """DuckDB did not end up in the locked-down state the sandbox relies on."""


class TenantSandbox(Closing):
    """One tenant's locked-down in-memory DuckDB database; a context manager.

    ``select_only=False`` lets any statement reach DuckDB; tests use it to show that the
    locked settings hold on their own. ``derived`` adds views over the table views (see
    ``DerivedViews``). ``close()`` refuses new queries at once and frees the database when
    the running ones have finished.
    """

    def __init__(
        self,
        tenant: str,
        tables: Sequence[SandboxTable],
        limits: SandboxLimits = SandboxLimits(),  # frozen, so one default is safe
        *,
        select_only: bool = True,
        derived: DerivedViews | None = None,
    ) -> None:
        self.tenant = validate_tenant(tenant)
        for table in tables:
            if table.tenant != self.tenant:
                raise ValueError(f"table {table.name} was read for another tenant")
        self.tables: tuple[SandboxTable, ...] = tuple(tables)
        # Asked before DuckDB starts: a hook that fails leaves nothing to clean up.
        views = dict(derived(self.tables)) if derived is not None else {}
        self.views: tuple[str, ...] = tuple(views)  # the derived views' qualified names
        self.limits = limits
        self._select_only = select_only
        self._lock = threading.Lock()
        self._running = 0
        self._closing = False
        self.temp_directory = Path(tempfile.mkdtemp(prefix="strata-sandbox-", dir=limits.temp_root))
        try:
            self._con = duckdb.connect(":memory:", config=_connect_config(self))
            try:
                _lock_down(self._con, self.tables, views)
            except BaseException:
                self._con.close()
                raise
        except BaseException:
            shutil.rmtree(self.temp_directory, ignore_errors=True)
            raise

    @classmethod
    def open(
        cls,
        lake: Path,
        exposed: Mapping[str, TableLocation] | Iterable[str],
        tenant: str,
        *,
        tenant_column: str = DEFAULT_TENANT_KEY,
        limits: SandboxLimits = SandboxLimits(),
        derived: DerivedViews | None = None,
    ) -> TenantSandbox:
        """A sandbox over the tenant's current files of the exposed tables."""
        tables = tenant_tables(lake, exposed, tenant_column, tenant)
        return cls(tenant, tables, limits, derived=derived)

    @property
    def closed(self) -> bool:
        return self._closing

    def run(
        self, sql: str, parameters: Parameters | None = None, *, timeout_s: float | None = None
    ) -> pa.Table:
        """Run one SELECT with ``$name`` parameters bound by DuckDB; the rows as Arrow.

        ``timeout_s`` may shorten the sandbox's timeout for this query, never lengthen it.
        """
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, not {timeout_s!r}")
        limit = (
            self.limits.timeout_s if timeout_s is None else min(timeout_s, self.limits.timeout_s)
        )
        with self._query():
            with self._lock:  # duplicating the connection is the one step not done per cursor
                cursor = self._con.cursor()
            try:
                return self._run(cursor, sql, parameters, limit)
            finally:
                cursor.close()

    def _run(
        self,
        cursor: duckdb.DuckDBPyConnection,
        sql: str,
        parameters: Parameters | None,
        timeout_s: float,
    ) -> pa.Table:
        watch = _WATCHDOG.watch(timeout_s, cursor.interrupt)
        try:
            statement = self._statement(cursor, sql)
            relation = cursor.sql(statement, params=dict(parameters) if parameters else None)
            reader = relation.to_arrow_reader()
            try:
                return self._collect(reader)
            finally:
                reader.close()
        # The Arrow reader reports DuckDB errors met while streaming as plain OSError.
        except (duckdb.Error, pa.ArrowException, OSError) as exc:
            raise self._failure(exc, watch.fired, timeout_s) from exc
        finally:
            watch.cancel()

    def _statement(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> duckdb.Statement | str:
        """The one SELECT to run, parsed once so the statement checked is the one run."""
        if not self._select_only:
            return sql
        statements = cursor.extract_statements(sql)
        if len(statements) != 1:
            raise StatementRefusedError(
                self.tenant, f"send exactly one statement, not {len(statements)}"
            )
        kind = statements[0].type
        if kind != duckdb.StatementType.SELECT:
            raise StatementRefusedError(self.tenant, f"only SELECT may run, not {kind.name}")
        return statements[0]

    def _collect(self, reader: pa.RecordBatchReader) -> pa.Table:
        limits = self.limits
        batches = []
        rows = size = 0
        for batch in reader:
            rows += batch.num_rows
            size += batch.nbytes
            if rows > limits.max_rows:
                raise ResultTooLargeError(self.tenant, f"{limits.max_rows} rows")
            if size > limits.max_result_bytes:
                raise ResultTooLargeError(self.tenant, f"{limits.max_result_bytes} bytes")
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=reader.schema)

    def _failure(self, exc: BaseException, timed_out: bool, timeout_s: float) -> SandboxQueryError:
        if timed_out:
            return QueryTimeout(self.tenant, timeout_s)
        lines = str(exc).strip().splitlines()
        text = lines[0] if lines else type(exc).__name__
        if isinstance(exc, duckdb.OutOfMemoryException) or text.startswith("Out of Memory"):
            return QueryMemoryError(self.tenant, self.limits, text)
        return SandboxQueryError(self.tenant, text)

    @contextmanager
    def _query(self) -> Iterator[None]:
        with self._lock:
            if self._closing:
                raise SandboxClosedError(f"the sandbox of tenant '{self.tenant}' is closed")
            self._running += 1
        try:
            yield
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._closing and self._running == 0
        if last:
            self._release()

    def close(self) -> None:
        """Refuse new queries; free the database and temp directory once none runs."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            idle = self._running == 0
        if idle:
            self._release()

    def _release(self) -> None:
        self._con.close()
        shutil.rmtree(self.temp_directory, ignore_errors=True)


class _Watch:
    """One query's deadline; once cancelled it never fires, so the cursor can be closed."""

    def __init__(self, deadline: float, interrupt: Callable[[], None]) -> None:
        self.deadline = deadline
        self.fired = False
        self._interrupt: Callable[[], None] | None = interrupt
        self._lock = threading.Lock()

    def fire(self) -> None:
        with self._lock:
            if self._interrupt is not None:
                self.fired = True
                self._interrupt()

    def cancel(self) -> None:
        with self._lock:
            # Dropped, not flagged: the queue must not keep the cursor alive until the deadline.
            self._interrupt = None


class _Watchdog:
    """One thread interrupting every overdue query of the process.

    A ``threading.Timer`` per query measured ~1 ms of added latency (thread start-up
    contending with the query for the GIL); queueing a deadline here costs microseconds.
    """

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def watch(self, timeout_s: float, interrupt: Callable[[], None]) -> _Watch:
        watch = _Watch(time.monotonic() + timeout_s, interrupt)
        with self._wake:
            heapq.heappush(self._due, (watch.deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="strata-sandbox-watchdog", daemon=True
                )
                self._thread.start()
                # Stopped before interpreter teardown: a live thread there makes nanobind
                # report DuckDB objects as leaked.
                atexit.register(self._stop)
            if self._due[0][2] is watch:
                self._wake.notify()
        return watch

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._wake.wait(self._due[0][0] - time.monotonic() if self._due else None)
                if self._stopping:
                    return
                overdue = heapq.heappop(self._due)[2]
            try:
                overdue.fire()
            except Exception:  # noqa: S110 - the cursor closed as it finished; nothing to stop
                pass

    def _stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(1)


_WATCHDOG: Final = _Watchdog()


def _connect_config(sandbox: TenantSandbox) -> dict[str, ConfigValue]:
    limits = sandbox.limits
    return {
        "threads": limits.threads,
        "async_threads": limits.threads,  # I/O threads, 8 by default in every database
        "memory_limit": limits.memory_limit,
        # Spill into a directory of this sandbox only: the default is ./.tmp, shared.
        "temp_directory": str(sandbox.temp_directory),
        "max_temp_directory_size": limits.max_temp_directory_size,
        # Nothing is ever downloaded or loaded at run time.
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "allow_extension_repositories": "forbidden",
        "allow_persistent_secrets": False,
        # Otherwise "FROM name" reads a Python variable of the calling code's frames.
        "python_enable_replacements": False,
        "python_scan_all_frames": False,
    }


# What the database must report once locked; checked, not assumed, after every build.
_LOCKED: Final = (
    "SELECT current_setting('lock_configuration'), current_setting('enable_external_access'),"
    " current_setting('python_enable_replacements'), current_setting('autoload_known_extensions')"
)


def _lock_down(
    con: duckdb.DuckDBPyConnection,
    tables: Sequence[SandboxTable],
    derived: Mapping[str, exp.Query],
) -> None:
    # Built in, but loaded by hand since autoloading is off.
    con.execute("LOAD parquet")
    # Delta data files never change in place, so their footers can be cached.
    con.execute("SET parquet_metadata_cache = true")
    schemas = sorted({table.schema_name for table in tables})
    for schema in schemas:
        con.execute(f"CREATE SCHEMA {quote_name(schema)}")
    for table in tables:
        name = f"{quote_name(table.schema_name)}.{quote_name(table.table_name)}"
        con.execute(f"CREATE VIEW {name} AS {view_sql(table)}")
    known = [table.name for table in tables]
    for view, query in derived.items():
        schema, name, sql = _derived_view(view, query, known)
        if schema not in schemas:
            schemas.append(schema)
            con.execute(f"CREATE SCHEMA {quote_name(schema)}")
        con.execute(f"CREATE VIEW {quote_name(schema)}.{quote_name(name)} AS {sql}")
        known.append(view)
    # Exact files rather than directories: no stale files, no listing of the directory.
    files = ", ".join(quote_value(str(f.path)) for table in tables for f in table.files)
    con.execute(f"SET allowed_paths = [{files}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    state = con.execute(_LOCKED).fetchone()
    if state != (True, False, False, False):
        raise SandboxSetupError(f"DuckDB reports {state} after locking down the sandbox")


def _derived_view(view: str, query: exp.Query, known: Sequence[str]) -> tuple[str, str, str]:
    """The schema, name and SQL of a derived view, once it is shown to read only ``known``
    views: every table fully qualified (a bare name could resolve to a file while external
    access is still on) and every node on the guard's allowlist."""
    schema, _, name = view.partition(".")
    try:
        validate_name(schema, "schema")
        validate_name(name, "view")
    except InvalidIdentifierError as exc:
        raise SandboxSetupError(f"derived view {view!r}: {exc}") from None
    if view in known:
        raise SandboxSetupError(f"derived view {view} would replace an existing view")
    if not isinstance(query, exp.Query):
        raise SandboxSetupError(f"derived view {view} is not a query")
    for table in query.find_all(exp.Table):
        target = f"{table.text('db')}.{table.name}"
        if (
            table.text("catalog")
            or target not in known
            or not isinstance(table.this, exp.Identifier)
        ):
            shown = table.sql(dialect=DIALECT)
            raise SandboxSetupError(
                f"derived view {view} reads {shown}, which is not one of the sandbox's views"
            )
    sql = query.sql(dialect=DIALECT, comments=False)
    try:
        guard_query(sql, known, max_rows=0)
    except QueryRefused as exc:
        raise SandboxSetupError(f"derived view {view} refused: {exc.reason}") from None
    return schema, name, sql


# -- pool -----------------------------------------------------------------------------------


class SandboxPool(Closing):
    """At most ``max_open`` open sandboxes, least recently used evicted; thread-safe.

    ``get`` rebuilds a tenant's sandbox when any table it serves has a newer Delta version;
    ``derived`` views are defined again in every sandbox built.
    """

    def __init__(
        self,
        lake: Path,
        exposed: Mapping[str, TableLocation] | Iterable[str],
        *,
        tenant_column: str = DEFAULT_TENANT_KEY,
        limits: SandboxLimits = SandboxLimits(),
        max_open: int = 16,
        derived: DerivedViews | None = None,
    ) -> None:
        if max_open < 1:
            raise ValueError("max_open must be at least 1")
        self.lake = lake
        self._exposed = dict(exposed) if isinstance(exposed, Mapping) else list(exposed)
        self.tenant_column = tenant_column
        self.limits = limits
        self.max_open = max_open
        self.derived = derived
        self._lock = threading.Lock()
        self._open: OrderedDict[str, TenantSandbox] = OrderedDict()
        self._building: dict[str, threading.Lock] = {}
        self._closed = False

    @property
    def open_tenants(self) -> tuple[str, ...]:
        """Tenants with an open sandbox, least recently used first."""
        with self._lock:
            return tuple(self._open)

    def get(self, tenant: str) -> TenantSandbox:
        """The tenant's sandbox over the current version of every exposed table."""
        tenant = validate_tenant(tenant)
        with self._lock:
            found = self._current(tenant)
            if found is not None:
                return found
            building = self._building.setdefault(tenant, threading.Lock())
        # One build per tenant at a time, and no other tenant waits for it.
        with building:
            with self._lock:
                found = self._current(tenant)
            if found is not None:
                return found
            sandbox = TenantSandbox.open(
                self.lake,
                self._exposed,
                tenant,
                tenant_column=self.tenant_column,
                limits=self.limits,
                derived=self.derived,
            )
            retired = self._install(tenant, sandbox)
        for old in retired:
            old.close()
        return sandbox

    def run(
        self,
        tenant: str,
        sql: str,
        parameters: Parameters | None = None,
        *,
        timeout_s: float | None = None,
    ) -> pa.Table:
        """``get(tenant).run(...)``, retried once if the sandbox is evicted in between."""
        try:
            return self.get(tenant).run(sql, parameters, timeout_s=timeout_s)
        except SandboxClosedError:
            return self.get(tenant).run(sql, parameters, timeout_s=timeout_s)

    def _current(self, tenant: str) -> TenantSandbox | None:
        """The open sandbox if no table changed since it was built (caller holds the lock)."""
        if self._closed:
            raise SandboxClosedError("the sandbox pool is closed")
        sandbox = self._open.get(tenant)
        if sandbox is None or not all(_is_current(table) for table in sandbox.tables):
            return None
        self._open.move_to_end(tenant)
        return sandbox

    def _install(self, tenant: str, sandbox: TenantSandbox) -> list[TenantSandbox]:
        """Make ``sandbox`` the tenant's; the sandboxes it replaces or evicts, to close."""
        with self._lock:
            if self._closed:
                sandbox.close()
                raise SandboxClosedError("the sandbox pool is closed")
            retired = [self._open.pop(tenant)] if tenant in self._open else []
            self._open[tenant] = sandbox
            while len(self._open) > self.max_open:
                retired.append(self._open.popitem(last=False)[1])
        return retired

    def close(self) -> None:
        with self._lock:
            self._closed = True
            retired = list(self._open.values())
            self._open.clear()
        for sandbox in retired:
            sandbox.close()


def _is_current(table: SandboxTable) -> bool:
    """Whether ``table.version`` is still the latest, from the log's file names alone.

    Delta versions are consecutive, so a newer one exists iff ``{version + 1}.json`` does.
    """
    log = table.path / "_delta_log"
    if (log / f"{table.version + 1:020d}.json").exists():
        return False
    if (log / f"{table.version:020d}.json").exists():
        return True
    # The commit file is gone (log cleanup, or the table was replaced): ask Delta.
    return table_version(table.path) == table.version
