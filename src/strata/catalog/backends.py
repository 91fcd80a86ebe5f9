"""What differs between the catalog's databases, declared per backend.

The store asks a backend for an engine, an insert that ignores duplicates, a "path is one
of these" predicate and a migration lock; it never branches on the database name itself.
"""

from __future__ import annotations

import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

from sqlalchemy import String, Table, any_, create_engine, event, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import ColumnElement, Insert

from strata.catalog.errors import CatalogError
from strata.catalog.schema import Base

WRITE_OPTION: Final = "strata_catalog_write"
"""Execution option marking a connection that will write (SQLite then takes the lock up front)."""

# An arbitrary constant: every Strata process migrating the same PostgreSQL database takes
# this advisory lock, so two processes opening a fresh catalog at once do not both run DDL.
_PG_MIGRATION_LOCK_KEY: Final = 0x5374726174610001

# sqlite3 primary result codes that mean "not now" rather than "wrong".
_SQLITE_TRANSIENT_CODES: Final = frozenset({5, 6, 10, 13, 14})  # BUSY LOCKED IOERR FULL CANTOPEN


class CatalogBackend(ABC):
    """One supported catalog database."""

    name: ClassVar[str]
    lookup_chunk: ClassVar[int]
    """How many paths one "which of these are consumed?" query checks."""

    @abstractmethod
    def create_engine(self, url: URL) -> Engine: ...

    @abstractmethod
    def insert_ignoring_duplicates(self, model: type[Base]) -> Insert: ...

    @abstractmethod
    def bulk_insert_ignoring_duplicates(
        self,
        session: Session,
        table: Table,
        rows: Sequence[dict[str, Any]],
        constants: dict[str, Any],
    ) -> None:
        """Insert ``rows`` (same keys, plain column types), each completed by ``constants``;
        rows whose key already exists are skipped."""

    @abstractmethod
    def path_in(
        self, column: InstrumentedAttribute[str], paths: Sequence[str]
    ) -> ColumnElement[bool]:
        """``column`` is one of ``paths``."""

    @abstractmethod
    def lock_for_migration(self, connection: Connection) -> None:
        """Serialise concurrent migrations of the same database."""

    @abstractmethod
    def is_unavailable(self, exc: DBAPIError) -> bool:
        """Whether the error means the database cannot be reached now (worth a retry)."""


_WAL_ATTEMPTS: Final = 600  # x 50 ms: as long as the 30 s busy timeout


class SqliteBackend(CatalogBackend):
    """A file next to the project: WAL for concurrent readers, foreign keys on.

    Python 3.11's sqlite3 does not BEGIN before DDL or SELECT, so SQLAlchemy emits BEGIN
    itself (the recipe from SQLAlchemy's SQLite docs); that makes migrations transactional.
    Writers BEGIN IMMEDIATE so two writers queue on the busy timeout instead of failing
    with "database is locked" when a read lock cannot be upgraded.
    """

    name = "sqlite"
    lookup_chunk = 500  # well under SQLite's bound-parameter limit on any build

    def create_engine(self, url: URL) -> Engine:
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CatalogError(f"cannot create the catalog folder {folder}: {exc}") from exc
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine

    def insert_ignoring_duplicates(self, model: type[Base]) -> Insert:
        return sqlite.insert(model).on_conflict_do_nothing()

    def bulk_insert_ignoring_duplicates(
        self,
        session: Session,
        table: Table,
        rows: Sequence[dict[str, Any]],
        constants: dict[str, Any],
    ) -> None:
        if rows:  # Core executemany: sqlite3 loops in C, no ORM bookkeeping per row
            statement = sqlite.insert(table).on_conflict_do_nothing()
            session.execute(statement, [{**row, **constants} for row in rows])

    def path_in(
        self, column: InstrumentedAttribute[str], paths: Sequence[str]
    ) -> ColumnElement[bool]:
        return column.in_(paths)

    def lock_for_migration(self, connection: Connection) -> None:
        """Nothing to do: migrations run in a BEGIN IMMEDIATE transaction, one at a time."""

    def is_unavailable(self, exc: DBAPIError) -> bool:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        return isinstance(code, int) and (code & 0xFF) in _SQLITE_TRANSIENT_CODES


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe with WAL
    finally:
        cursor.close()


def _enable_wal(cursor: sqlite3.Cursor) -> None:
    """Switch a (possibly fresh) database to WAL, waiting out other openers.

    The switch needs an exclusive lock and SQLite may answer "locked" at once instead of
    using the busy timeout while another connection is creating the same file. WAL is
    persistent, so only the first opener of a new database ever waits here.
    """
    for _ in range(_WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA journal_mode = WAL")  # last try: let its error speak


def _sqlite_on_begin(connection: Connection) -> None:
    writes = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


class PostgresBackend(CatalogBackend):
    """PostgreSQL through psycopg 3; one array parameter per lookup instead of N."""

    name = "postgresql"
    lookup_chunk = 10_000

    def create_engine(self, url: URL) -> Engine:
        connect_args: dict[str, Any] = {}
        if "connect_timeout" not in url.query:
            connect_args["connect_timeout"] = 10
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)

    def insert_ignoring_duplicates(self, model: type[Base]) -> Insert:
        return postgresql.insert(model).on_conflict_do_nothing()

    def bulk_insert_ignoring_duplicates(
        self,
        session: Session,
        table: Table,
        rows: Sequence[dict[str, Any]],
        constants: dict[str, Any],
    ) -> None:
        """One ``INSERT ... SELECT FROM unnest(array, ...)`` instead of one statement per row."""
        if not rows:
            return
        varying = list(rows[0])
        arrays = [
            literal([row[name] for row in rows], ARRAY(table.c[name].type)) for name in varying
        ]
        source = func.unnest(*arrays).table_valued(*varying).render_derived()
        fixed = [literal(value, table.c[name].type) for name, value in constants.items()]
        statement = (
            postgresql.insert(table)
            .from_select([*varying, *constants], select(*source.c, *fixed))
            .on_conflict_do_nothing()
        )
        session.execute(statement)

    def path_in(
        self, column: InstrumentedAttribute[str], paths: Sequence[str]
    ) -> ColumnElement[bool]:
        return column == any_(literal(list(paths), ARRAY(String())))

    def lock_for_migration(self, connection: Connection) -> None:
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
        )

    def is_unavailable(self, exc: DBAPIError) -> bool:
        return isinstance(exc, OperationalError) or exc.connection_invalidated


BACKENDS: Final[dict[str, CatalogBackend]] = {
    b.name: b for b in (SqliteBackend(), PostgresBackend())
}


def backend_for(url: URL) -> CatalogBackend:
    backend = BACKENDS.get(url.get_backend_name())
    if backend is None:
        raise CatalogError(f"no catalog backend for {url.get_backend_name()!r}")
    return backend
