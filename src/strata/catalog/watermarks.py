"""Extraction watermarks: per (source, entity), the highest watermark value already landed.

The value is kept as text with its kind (``timestamp``: ISO-8601 UTC, ``id``: an integer),
so one table serves every source. It only moves when a run's parts are all committed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, Literal

from sqlalchemy import CheckConstraint, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from strata.catalog.base import CatalogBase, bounded
from strata.catalog.errors import CatalogError
from strata.catalog.schema import NAME_LENGTH, Base, UtcDateTime
from strata.core.logging import fields, get_logger

log = get_logger(__name__)

WatermarkKind = Literal["timestamp", "id"]
WATERMARK_KINDS: Final = ("timestamp", "id")


class WatermarkRow(Base):
    __tablename__ = "watermarks"
    __table_args__ = (CheckConstraint("kind IN ('timestamp', 'id')", name="kind"),)

    source: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    entity: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True, slots=True)
class Watermark:
    source: str
    entity: str
    value: str
    kind: WatermarkKind
    run_id: str | None
    updated_at: dt.datetime


class WatermarkStore(CatalogBase):
    def watermark(self, source: str, entity: str) -> Watermark | None:
        """The last landed watermark of ``source``/``entity``, or ``None`` before the first run."""
        with self._session(write=False) as session:
            row = session.get(WatermarkRow, (source, entity))
            return None if row is None else _record(row)

    def advance_watermark(
        self,
        source: str,
        entity: str,
        value: str,
        run_id: str | None,
        *,
        kind: WatermarkKind = "timestamp",
    ) -> Watermark:
        """Set the watermark of ``source``/``entity`` to ``value`` (landed by ``run_id``).

        Call it only after every part of the run is committed to the lake.
        """
        bounded(source, NAME_LENGTH, "source")
        bounded(entity, NAME_LENGTH, "entity")
        if kind not in WATERMARK_KINDS:
            raise CatalogError(f"watermark kind must be one of {WATERMARK_KINDS}, not {kind!r}")
        with self._session(write=True) as session:
            if run_id is not None:
                self._require_run(session, run_id)
            row = session.get(WatermarkRow, (source, entity))
            if row is None:
                row = WatermarkRow(source=source, entity=entity)
                session.add(row)
            row.value, row.kind, row.run_id, row.updated_at = value, kind, run_id, self._now()
            session.flush()
            record = _record(row)
        log.info(
            "watermark advanced",
            extra=fields(source=source, entity=entity, value=value, run_id=run_id),
        )
        return record

    def reset_watermark(self, source: str, entity: str) -> None:
        with self._session(write=True) as session:
            row = session.get(WatermarkRow, (source, entity))
            if row is not None:
                session.delete(row)


def _record(row: WatermarkRow) -> Watermark:
    kind: WatermarkKind = "id" if row.kind == "id" else "timestamp"
    return Watermark(row.source, row.entity, row.value, kind, row.run_id, row.updated_at)
