"""What every part of the catalog shares: the engine, short transactions, error translation.

The catalog's methods live in one mixin per concern (``runs``, ``model_state``,
``tables``), each subclassing ``CatalogBase``; ``store.Catalog`` combines them. A later
concern (tenants, API keys, dashboards) is a new table, a new revision and a new mixin.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final, TypeVar

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from strata.catalog import migrate
from strata.catalog import schema as db
from strata.catalog.backends import WRITE_OPTION, CatalogBackend
from strata.catalog.config import redact
from strata.catalog.errors import CatalogError, CatalogUnavailableError, RunNotFoundError
from strata.core.lifecycle import Closing
from strata.core.timeutil import Clock, now_us

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

T = TypeVar("T")


class CatalogBase(Closing):
    """A handle on the metadata database; safe to share between threads."""

    def __init__(self, engine: Engine, backend: CatalogBackend, *, clock: Clock = now_us):
        self._engine = engine
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})
        self._backend = backend
        self._clock = clock
        self._reads = sessionmaker(engine, expire_on_commit=False)
        self._writes = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def url(self) -> str:
        """The database URL with the password masked."""
        return redact(self._engine.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def close(self) -> None:
        self._engine.dispose()

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first migration)."""
        with self._translated(), self._engine.connect() as connection:
            return migrate.current_revision(connection)

    def _now(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self._clock())

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        """One transaction; writers take SQLite's write lock up front (see ``backends``)."""
        with self._translated(), (self._writes if write else self._reads).begin() as session:
            yield session

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Database errors as catalog errors, naming the URL without its password."""
        try:
            yield
        except DBAPIError as exc:
            cause = _first_line(exc.orig if exc.orig is not None else exc)
            password = self._engine.url.password
            if password:
                cause = cause.replace(str(password), "***")
            if self._backend.is_unavailable(exc):
                raise CatalogUnavailableError(self.url, cause) from exc
            raise CatalogError(f"catalog database {self.url} rejected a request: {cause}") from exc

    @staticmethod
    def _require_run(session: Session, run_id: str) -> None:
        if session.get(db.Run, run_id) is None:
            raise RunNotFoundError(run_id)


def bounded(value: str, limit: int, what: str) -> str:
    """``value`` if it fits the column, else a ``CatalogError`` naming what was too long."""
    if not 0 < len(value) <= limit:
        raise CatalogError(f"{what} must be 1..{limit} characters, got {len(value)}")
    return value


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
