"""Dashboards and their widgets.

A dashboard belongs to one tenant (``source = "api"``, made through the query API) or to no
tenant (``source = "file"``, declared in the project's ``dashboards/*.yml`` and synced at
start-up: a template every tenant sees, read-only through the API). Widgets are stored as
given; what makes one valid (its metric, grain, dimensions, type) is the semantic layer's
business, checked before ``add_widget``. The catalog does not import the semantic layer.

The ``dashboards`` and ``widgets`` models register on the same metadata as ``schema.py``;
revision ``0004_dashboards`` creates their tables.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, delete, func
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Mapped, Session, mapped_column

from strata.catalog import schema as db
from strata.catalog.base import CatalogBase, bounded
from strata.catalog.errors import CatalogError
from strata.catalog.schema import NAME_LENGTH, JsonDocument, UtcDateTime
from strata.core.identifiers import validate_tenant
from strata.core.logging import fields, get_logger

log = get_logger(__name__)

DashboardSource = Literal["api", "file"]
WidgetType = Literal["kpi", "timeseries", "breakdown", "funnel", "heatmap"]

DASHBOARD_SOURCES: Final[tuple[DashboardSource, ...]] = get_args(DashboardSource)
WIDGET_TYPES: Final[tuple[WidgetType, ...]] = get_args(WidgetType)
ID_LENGTH: Final = 64
TITLE_LENGTH: Final = NAME_LENGTH
RANGE_LENGTH: Final = 64
DESCRIPTION_LENGTH: Final = 10_000
_TENANT_LENGTH: Final = 64
_KEY_LENGTH: Final = 64


class DashboardRow(db.Base):
    __tablename__ = "dashboards"
    __table_args__ = (
        CheckConstraint(db._in_check("source", DASHBOARD_SOURCES), name="source"),
        CheckConstraint(
            "(source = 'file' AND tenant IS NULL) OR (source = 'api' AND tenant IS NOT NULL)",
            name="tenant_scope",
        ),
        Index(None, "tenant"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    tenant: Mapped[str | None] = mapped_column(String(_TENANT_LENGTH))
    title: Mapped[str] = mapped_column(String(TITLE_LENGTH))
    description: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(8))
    created_by: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class WidgetRow(db.Base):
    __tablename__ = "widgets"
    __table_args__ = (
        CheckConstraint(db._in_check("type", WIDGET_TYPES), name="type"),
        Index(None, "dashboard_id"),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    dashboard_id: Mapped[str] = mapped_column(ForeignKey("dashboards.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_LENGTH))
    type: Mapped[str] = mapped_column(String(16))
    metric_key: Mapped[str] = mapped_column(String(_KEY_LENGTH))
    metric_version: Mapped[int | None] = mapped_column(Integer)
    grain: Mapped[str] = mapped_column(String(16))
    group_by: Mapped[list[str]] = mapped_column(JsonDocument)
    filters: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    default_range: Mapped[str] = mapped_column(String(RANGE_LENGTH))
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


@dataclass(frozen=True, slots=True)
class NewWidget:
    """A widget to store: checked by the caller against its metric first."""

    title: str
    type: WidgetType
    metric_key: str
    metric_version: int | None
    grain: str
    group_by: tuple[str, ...] = ()
    filters: tuple[dict[str, Any], ...] = ()  # {"dimension", "op", "values"}: JSON only
    default_range: str = "last_90_days"


@dataclass(frozen=True, slots=True)
class Widget:
    id: str
    dashboard_id: str
    tenant: str | None  # its dashboard's: None for a file dashboard's widget
    title: str
    type: WidgetType
    metric_key: str
    metric_version: int | None
    grain: str
    group_by: tuple[str, ...]
    filters: tuple[dict[str, Any], ...]
    default_range: str
    position: int
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Dashboard:
    id: str
    tenant: str | None
    title: str
    description: str
    source: DashboardSource
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    widgets: tuple[Widget, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class FileDashboard:
    """A dashboard of the project's files: ``id`` is stable (from the file name), so its
    widgets keep their ids across restarts while the file does not change."""

    id: str
    title: str
    description: str
    widgets: tuple[NewWidget, ...]


class DashboardStore(CatalogBase):
    def create_dashboard(
        self, tenant: str, title: str, description: str = "", created_by: str | None = None
    ) -> Dashboard:
        """A new, empty dashboard of ``tenant``."""
        now = self._now()
        row = DashboardRow(
            id=uuid.uuid4().hex,
            tenant=validate_tenant(tenant),
            title=bounded(title, TITLE_LENGTH, "dashboard title"),
            description=_description(description),
            source="api",
            created_by=None if created_by is None else created_by[:NAME_LENGTH],
            created_at=now,
            updated_at=now,
        )
        with self._session(write=True) as session:
            session.add(row)
            session.flush()
            dashboard = _dashboard(row, [])
        log.info("dashboard created", extra=fields(dashboard=row.id, tenant=row.tenant))
        return dashboard

    def update_dashboard(
        self, dashboard_id: str, *, title: str | None = None, description: str | None = None
    ) -> Dashboard | None:
        """Change a dashboard's title or description; ``None`` if there is no such one.
        File dashboards are changed by editing their file, never here."""
        with self._session(write=True) as session:
            row = session.get(DashboardRow, dashboard_id[:ID_LENGTH])
            if row is None:
                return None
            if row.source != "api":
                raise CatalogError(f"dashboard {dashboard_id!r} comes from a file: edit the file")
            if title is not None:
                row.title = bounded(title, TITLE_LENGTH, "dashboard title")
            if description is not None:
                row.description = _description(description)
            row.updated_at = self._now()
            session.flush()
            return _dashboard(row, _widget_rows(session, [row.id]).get(row.id, []))

    def dashboard(self, dashboard_id: str) -> Dashboard | None:
        """One dashboard with its widgets in order, or ``None``."""
        with self._session(write=False) as session:
            row = session.get(DashboardRow, dashboard_id[:ID_LENGTH])
            if row is None:
                return None
            return _dashboard(row, _widget_rows(session, [row.id]).get(row.id, []))

    def list_dashboards(self, tenant: str | None) -> list[Dashboard]:
        """``tenant``'s dashboards and the file dashboards (every dashboard if ``tenant`` is
        None), file dashboards first, then by creation."""
        query = sa_select(DashboardRow).order_by(
            DashboardRow.source.desc(), DashboardRow.created_at, DashboardRow.id
        )
        if tenant is not None:
            query = query.where(
                (DashboardRow.tenant == validate_tenant(tenant)) | DashboardRow.tenant.is_(None)
            )
        with self._session(write=False) as session:
            rows = list(session.scalars(query))
            widgets = _widget_rows(session, [r.id for r in rows])
            return [_dashboard(r, widgets.get(r.id, [])) for r in rows]

    def add_widget(self, dashboard_id: str, widget: NewWidget) -> Widget | None:
        """Append ``widget`` to an API dashboard; ``None`` if there is no such dashboard."""
        with self._session(write=True) as session:
            dashboard = session.get(DashboardRow, dashboard_id[:ID_LENGTH])
            if dashboard is None:
                return None
            if dashboard.source != "api":
                raise CatalogError(f"dashboard {dashboard_id!r} comes from a file: edit the file")
            position = session.scalar(
                sa_select(func.count()).where(WidgetRow.dashboard_id == dashboard.id)
            )
            row = _widget_row(
                uuid.uuid4().hex, dashboard.id, widget, int(position or 0), self._now()
            )
            session.add(row)
            dashboard.updated_at = row.created_at
            session.flush()
            return _widget(row, dashboard.tenant)

    def widget(self, widget_id: str) -> Widget | None:
        """One widget, with its dashboard's tenant; ``None`` if there is no such widget."""
        query = (
            sa_select(WidgetRow, DashboardRow.tenant)
            .join(DashboardRow, DashboardRow.id == WidgetRow.dashboard_id)
            .where(WidgetRow.id == widget_id[:ID_LENGTH])
        )
        with self._session(write=False) as session:
            found = session.execute(query).one_or_none()
            return None if found is None else _widget(found[0], found[1])

    def sync_file_dashboards(self, dashboards: Sequence[FileDashboard]) -> None:
        """Make the file dashboards exactly ``dashboards``, in one transaction: others are
        deleted, changed ones rewritten (their widgets replaced), unchanged ones left alone."""
        now = self._now()
        with self._session(write=True) as session:
            existing = {
                row.id: row
                for row in session.scalars(
                    sa_select(DashboardRow).where(DashboardRow.source == "file")
                )
            }
            widgets = _widget_rows(session, list(existing))
            wanted = {d.id: d for d in dashboards}
            gone = [key for key in existing if key not in wanted]
            if gone:
                session.execute(delete(WidgetRow).where(WidgetRow.dashboard_id.in_(gone)))
                session.execute(delete(DashboardRow).where(DashboardRow.id.in_(gone)))
            for spec in dashboards:
                row = existing.get(spec.id)
                rows = [
                    _widget_row(f"{spec.id}-{i}", spec.id, w, i, now)
                    for i, w in enumerate(spec.widgets)
                ]
                if row is not None and _same(row, spec, widgets.get(spec.id, []), rows):
                    continue
                if row is None:
                    row = DashboardRow(
                        id=bounded(spec.id, ID_LENGTH, "dashboard id"),
                        source="file",
                        tenant=None,
                        created_by=None,
                        created_at=now,
                    )
                    session.add(row)
                row.title = bounded(spec.title, TITLE_LENGTH, "dashboard title")
                row.description = _description(spec.description)
                row.updated_at = now
                session.execute(delete(WidgetRow).where(WidgetRow.dashboard_id == spec.id))
                session.flush()
                session.add_all(rows)
            session.flush()
        log.info("file dashboards synced", extra=fields(dashboards=sorted(wanted), removed=gone))


def _description(text: str) -> str:
    if len(text) > DESCRIPTION_LENGTH:
        raise CatalogError(f"dashboard description must be at most {DESCRIPTION_LENGTH} characters")
    return text


def _widget_row(
    widget_id: str, dashboard_id: str, widget: NewWidget, position: int, now: dt.datetime
) -> WidgetRow:
    return WidgetRow(
        id=bounded(widget_id, ID_LENGTH, "widget id"),
        dashboard_id=dashboard_id,
        title=bounded(widget.title, TITLE_LENGTH, "widget title"),
        type=widget.type,
        metric_key=bounded(widget.metric_key, _KEY_LENGTH, "metric key"),
        metric_version=widget.metric_version,
        grain=widget.grain,
        group_by=list(widget.group_by),
        filters=[dict(f) for f in widget.filters],
        default_range=bounded(widget.default_range, RANGE_LENGTH, "widget range"),
        position=position,
        created_at=now,
    )


def _same(
    row: DashboardRow, spec: FileDashboard, old: list[WidgetRow], new: list[WidgetRow]
) -> bool:
    def content(w: WidgetRow) -> tuple[Any, ...]:
        return (
            w.id,
            w.title,
            w.type,
            w.metric_key,
            w.metric_version,
            w.grain,
            w.group_by,
            w.filters,
            w.default_range,
            w.position,
        )

    return (
        row.title == spec.title
        and row.description == spec.description
        and [content(w) for w in old] == [content(w) for w in new]
    )


def _widget_rows(session: Session, dashboard_ids: Sequence[str]) -> dict[str, list[WidgetRow]]:
    found: dict[str, list[WidgetRow]] = {}
    if not dashboard_ids:
        return found
    query = (
        sa_select(WidgetRow)
        .where(WidgetRow.dashboard_id.in_(list(dashboard_ids)))
        .order_by(WidgetRow.dashboard_id, WidgetRow.position)
    )
    for row in session.scalars(query):
        found.setdefault(row.dashboard_id, []).append(row)
    return found


def _widget(row: WidgetRow, tenant: str | None) -> Widget:
    kind: Any = row.type  # the CHECK constraint keeps it one of WIDGET_TYPES
    return Widget(
        id=row.id,
        dashboard_id=row.dashboard_id,
        tenant=tenant,
        title=row.title,
        type=kind,
        metric_key=row.metric_key,
        metric_version=row.metric_version,
        grain=row.grain,
        group_by=tuple(row.group_by),
        filters=tuple(row.filters),
        default_range=row.default_range,
        position=row.position,
        created_at=row.created_at,
    )


def _dashboard(row: DashboardRow, widgets: list[WidgetRow]) -> Dashboard:
    source: Any = row.source
    return Dashboard(
        id=row.id,
        tenant=row.tenant,
        title=row.title,
        description=row.description,
        source=source,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        widgets=tuple(_widget(w, row.tenant) for w in widgets),
    )
