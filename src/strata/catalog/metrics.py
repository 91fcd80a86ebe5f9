"""The metric registry: every (key, version) of a metric ever registered, with its definition.

A registered version never changes: registering the same (key, version) again is fine if the
definition's hash is the same ("unchanged"), and a ``MetricVersionConflict`` otherwise, so a
number computed as ``occupancy`` v3 always means what v3 meant when it was registered.

The catalog does not import the semantic layer: it stores any definition that can give its
key, version, canonical document and content hash (``strata.semantic.metrics.
MetricDefinition`` does), and hands the documents back for ``MetricDefinition.from_dict``.
The ``metric_versions`` model registers on the same metadata as ``schema.py``; revision
``0003_metrics`` creates its table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, Protocol

from sqlalchemy import CheckConstraint, Integer, String, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from strata.catalog import schema as db
from strata.catalog.base import CatalogBase, chunks
from strata.catalog.errors import CatalogError
from strata.catalog.schema import JsonDocument, UtcDateTime
from strata.core.identifiers import is_valid_name
from strata.core.logging import fields, get_logger

log = get_logger(__name__)

RegistrationStatus = Literal["new", "unchanged"]

_KEY_LENGTH: Final = 64
_HASH_LENGTH: Final = 64
_HEX: Final = frozenset("0123456789abcdef")
_ATTEMPTS: Final = 2  # a concurrent registration of the same new version: read it, compare


class MetricVersionRow(db.Base):
    """One registered version of one metric."""

    __tablename__ = "metric_versions"
    __table_args__ = (CheckConstraint("version > 0", name="version"),)

    key: Mapped[str] = mapped_column(String(_KEY_LENGTH), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    definition_hash: Mapped[str] = mapped_column(String(_HASH_LENGTH))
    registered_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class VersionedDefinition(Protocol):
    """What the registry needs of a definition (``MetricDefinition`` is one)."""

    @property
    def key(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def content_hash(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class MetricVersion:
    """A registered version; ``definition`` is the canonical document as registered."""

    key: str
    version: int
    definition: Mapping[str, Any]
    definition_hash: str
    registered_at: dt.datetime


class MetricRegistration(NamedTuple):
    key: str
    version: int
    status: RegistrationStatus


class MetricVersionConflict(CatalogError):  # noqa: N818 - named for what happened
    """A (key, version) is already registered with a different definition."""

    def __init__(self, conflicts: list[tuple[str, int]]) -> None:
        self.conflicts = tuple(conflicts)
        named = ", ".join(f"'{key}' version {version}" for key, version in conflicts)
        plural = "are" if len(conflicts) > 1 else "is"
        super().__init__(
            f"metric {named} {plural} already registered with a different definition; "
            "change the version to change the definition"
        )


class _RacedError(Exception):
    """A row this transaction meant to insert appeared meanwhile; the caller retries."""


class MetricRegistry(CatalogBase):
    def register_metrics(
        self, definitions: Iterable[VersionedDefinition]
    ) -> list[MetricRegistration]:
        """Register each definition, in one transaction: all of them or (on a conflict, or
        any other error) none. Returns (key, version, "new" | "unchanged") in input order."""
        items = list(definitions)
        seen: set[tuple[str, int]] = set()
        for item in items:
            _check(item)
            if (item.key, item.version) in seen:
                raise CatalogError(f"metric '{item.key}' version {item.version} is listed twice")
            seen.add((item.key, item.version))
        for attempt in range(_ATTEMPTS):
            try:
                with self._session(write=True) as session:
                    result = self._register(session, items)
                break
            except _RacedError:  # another process registered one of them meanwhile
                if attempt + 1 == _ATTEMPTS:
                    raise CatalogError("metric registration kept racing; try again") from None
        new = sum(r.status == "new" for r in result)
        log.info("metrics registered", extra=fields(new=new, unchanged=len(result) - new))
        return result

    def _register(
        self, session: Session, items: list[VersionedDefinition]
    ) -> list[MetricRegistration]:
        stored: dict[tuple[str, int], str] = {}
        keys = sorted({item.key for item in items})
        for part in chunks(keys, 500):
            query = select(
                MetricVersionRow.key, MetricVersionRow.version, MetricVersionRow.definition_hash
            ).where(MetricVersionRow.key.in_(part))
            stored.update({(k, v): h for k, v, h in session.execute(query)})
        conflicts = [
            (item.key, item.version)
            for item in items
            if stored.get((item.key, item.version), item.content_hash) != item.content_hash
        ]
        if conflicts:
            raise MetricVersionConflict(conflicts)
        now = self._now()
        result: list[MetricRegistration] = []
        for item in items:
            if (item.key, item.version) in stored:
                result.append(MetricRegistration(item.key, item.version, "unchanged"))
                continue
            session.add(
                MetricVersionRow(
                    key=item.key,
                    version=item.version,
                    definition=item.to_dict(),
                    definition_hash=item.content_hash,
                    registered_at=now,
                )
            )
            result.append(MetricRegistration(item.key, item.version, "new"))
        try:
            session.flush()
        except IntegrityError as exc:
            raise _RacedError from exc
        return result

    def metric_versions(self, key: str) -> list[MetricVersion]:
        """Every registered version of ``key``, oldest first."""
        query = (
            select(MetricVersionRow)
            .where(MetricVersionRow.key == key)
            .order_by(MetricVersionRow.version)
        )
        with self._session(write=False) as session:
            return [_metric_version(row) for row in session.scalars(query)]

    def latest_metrics(self) -> list[MetricVersion]:
        """The newest registered version of every metric, by key."""
        newest = (
            select(MetricVersionRow.key, func.max(MetricVersionRow.version).label("version"))
            .group_by(MetricVersionRow.key)
            .subquery()
        )
        query = (
            select(MetricVersionRow)
            .join(
                newest,
                (MetricVersionRow.key == newest.c.key)
                & (MetricVersionRow.version == newest.c.version),
            )
            .order_by(MetricVersionRow.key)
        )
        with self._session(write=False) as session:
            return [_metric_version(row) for row in session.scalars(query)]

    def metric(self, key: str, version: int | None = None) -> MetricVersion | None:
        """One registered version of ``key`` (the newest if ``version`` is None), or None."""
        query = select(MetricVersionRow).where(MetricVersionRow.key == key)
        if version is not None:
            query = query.where(MetricVersionRow.version == version)
        query = query.order_by(MetricVersionRow.version.desc()).limit(1)
        with self._session(write=False) as session:
            row = session.scalars(query).one_or_none()
            return None if row is None else _metric_version(row)


def _check(item: VersionedDefinition) -> None:
    key, version, digest = item.key, item.version, item.content_hash
    if not (is_valid_name(key) and len(key) <= _KEY_LENGTH):
        raise CatalogError(f"metric key {key!r} is not a valid name")
    if type(version) is not int or not 0 < version < 2**31:
        raise CatalogError(f"metric '{key}': version must be 1..2**31-1, not {version!r}")
    if len(digest) != _HASH_LENGTH or not set(digest) <= _HEX:
        raise CatalogError(f"metric '{key}': content hash must be 64 lowercase hex characters")


def _metric_version(row: MetricVersionRow) -> MetricVersion:
    return MetricVersion(
        key=row.key,
        version=row.version,
        definition=row.definition,
        definition_hash=row.definition_hash,
        registered_at=row.registered_at,
    )
