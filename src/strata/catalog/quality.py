"""Data-quality results: one row per run, table, tenant and check, kept for trends.

``recent_measures`` feeds drift checks (the same table's, check's and tenant's earlier
measurements) and ``last_schema`` feeds schema drift. The ``check_results`` model lives
here, next to the methods that use it; revision ``0007`` creates its table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    Index,
    Integer,
    String,
    Text,
    func,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from strata.catalog.base import CatalogBase, bounded
from strata.catalog.errors import CatalogError
from strata.catalog.schema import NAME_LENGTH, Base, JsonDocument, UtcDateTime

CHECK_STATUSES: Final = ("pass", "warn", "error")
CHECK_SEVERITIES: Final = ("warn", "error")
_TENANT_LENGTH: Final = 64
_KIND_LENGTH: Final = 32
HISTORY_LIMIT: Final = 50


class CheckResultRow(Base):
    __tablename__ = "check_results"
    __table_args__ = (
        CheckConstraint("status IN ('pass', 'warn', 'error')", name="status"),
        Index("ix_check_results_lookup", "table_name", "check_name", "tenant", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str | None] = mapped_column(String(36))
    table_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    table_version: Mapped[int | None] = mapped_column(BigInteger)
    check_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str | None] = mapped_column(String(_TENANT_LENGTH))
    status: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str] = mapped_column(String(8))
    failing: Mapped[int | None] = mapped_column(BigInteger)
    measured: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text)
    samples: Mapped[Any] = mapped_column(JsonDocument)
    detail: Mapped[Any] = mapped_column(JsonDocument)
    published: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class CheckOutcome(Protocol):
    """What ``record_check_results`` stores (``strata.quality.evaluate.CheckResult``)."""

    @property
    def table(self) -> str: ...
    @property
    def check(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def tenant(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def failing(self) -> int | None: ...
    @property
    def measured(self) -> float | None: ...
    @property
    def threshold(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def samples(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def detail(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class StoredCheckResult:
    id: int
    run_id: str | None
    table: str
    table_version: int | None
    check: str
    kind: str
    tenant: str | None
    status: str
    severity: str
    failing: int | None
    measured: float | None
    threshold: str
    message: str
    published: bool
    created_at: dt.datetime
    samples: tuple[Mapping[str, Any], ...] = ()
    detail: Mapping[str, Any] = field(default_factory=dict)


class QualityStore(CatalogBase):
    def record_check_results(
        self,
        run_id: str | None,
        results: Sequence[CheckOutcome],
        *,
        table_version: int | None,
        published: bool,
    ) -> int:
        """Store one table's results of one run; ``published`` says whether the version
        they judged was promoted. Returns how many rows were written."""
        now = self._now()
        rows = []
        for result in results:
            if result.status not in CHECK_STATUSES:
                raise CatalogError(f"check status must be one of {CHECK_STATUSES}")
            if result.severity not in CHECK_SEVERITIES:
                raise CatalogError(f"check severity must be one of {CHECK_SEVERITIES}")
            tenant = result.tenant
            rows.append(
                CheckResultRow(
                    run_id=run_id,
                    table_name=bounded(result.table, NAME_LENGTH, "table"),
                    table_version=table_version,
                    check_name=bounded(result.check, NAME_LENGTH, "check"),
                    kind=bounded(result.kind, _KIND_LENGTH, "check kind"),
                    tenant=None if tenant is None else bounded(tenant, _TENANT_LENGTH, "tenant"),
                    status=result.status,
                    severity=result.severity,
                    failing=result.failing,
                    measured=_finite(result.measured),
                    threshold=result.threshold,
                    message=result.message,
                    samples=_json([dict(s) for s in result.samples]),
                    detail=_json(dict(result.detail)),
                    published=published,
                    created_at=now,
                )
            )
        with self._session(write=True) as session:
            if run_id is not None:
                self._require_run(session, run_id)
            session.add_all(rows)
        return len(rows)

    def recent_measures(
        self, table: str, check: str, tenant: str | None, limit: int
    ) -> list[float]:
        """The last ``limit`` measurements of a check for one tenant, newest first."""
        query = (
            select(CheckResultRow.measured)
            .where(
                CheckResultRow.table_name == table,
                CheckResultRow.check_name == check,
                _tenant_is(tenant),
                CheckResultRow.measured.is_not(None),
            )
            .order_by(CheckResultRow.id.desc())
            .limit(limit)
        )
        with self._session(write=False) as session:
            return [float(v) for v in session.scalars(query) if v is not None]

    def last_schema(self, table: str) -> Mapping[str, str] | None:
        """The columns the latest schema check of ``table`` saw, if one ever ran."""
        query = (
            select(CheckResultRow.detail)
            .where(CheckResultRow.table_name == table, CheckResultRow.kind == "schema")
            .order_by(CheckResultRow.id.desc())
            .limit(1)
        )
        with self._session(write=False) as session:
            detail = session.scalars(query).first()
        columns = detail.get("columns") if isinstance(detail, dict) else None
        return {str(k): str(v) for k, v in columns.items()} if isinstance(columns, dict) else None

    def latest_check_results(
        self, *, tenant: str | None = None, table: str | None = None
    ) -> list[StoredCheckResult]:
        """The newest result of every (table, check, tenant); with ``tenant``, only that
        tenant's results and the table-wide ones (``tenant`` None: schema, a table without
        the tenant column), never another tenant's. A table-wide result shown to a tenant
        carries no sample rows: they are not that tenant's alone."""
        # The filters go inside: the newest ids are found among the rows asked for only.
        filters = []
        if table is not None:
            filters.append(CheckResultRow.table_name == table)
        if tenant is not None:
            filters.append((CheckResultRow.tenant == tenant) | CheckResultRow.tenant.is_(None))
        newest = (
            select(func.max(CheckResultRow.id))
            .where(*filters)
            .group_by(CheckResultRow.table_name, CheckResultRow.check_name, CheckResultRow.tenant)
        )
        query = select(CheckResultRow).where(CheckResultRow.id.in_(newest))
        with self._session(write=False) as session:
            found = [_stored(row) for row in session.scalars(query)]
        if tenant is not None:
            found = [r if r.tenant is not None else _without_samples(r) for r in found]
        # Sorted here: SQLite and PostgreSQL place NULL tenants at opposite ends.
        return sorted(found, key=lambda r: (r.table, r.check, r.tenant is not None, r.tenant or ""))

    def run_check_results(self, run_id: str) -> list[StoredCheckResult]:
        """Every result recorded by one run, in the order recorded."""
        query = (
            select(CheckResultRow)
            .where(CheckResultRow.run_id == run_id)
            .order_by(CheckResultRow.id)
        )
        with self._session(write=False) as session:
            return [_stored(row) for row in session.scalars(query)]

    def check_history(
        self,
        table: str,
        *,
        check: str | None = None,
        tenant: str | None = None,
        limit: int = HISTORY_LIMIT,
    ) -> list[StoredCheckResult]:
        """Results of ``table`` newest first (optionally one check's, one tenant's)."""
        query = select(CheckResultRow).where(CheckResultRow.table_name == table)
        if check is not None:
            query = query.where(CheckResultRow.check_name == check)
        if tenant is not None:
            query = query.where(CheckResultRow.tenant == tenant)
        query = query.order_by(CheckResultRow.id.desc()).limit(limit)
        with self._session(write=False) as session:
            return [_stored(row) for row in session.scalars(query)]


def _tenant_is(tenant: str | None) -> Any:
    if tenant is None:
        return CheckResultRow.tenant.is_(None)
    return CheckResultRow.tenant == tenant


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)


def _json(value: Any) -> Any:
    """``value`` as plain JSON: non-finite floats become null (PostgreSQL's JSONB refuses
    them), anything else unknown its text."""
    return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))


def _without_samples(result: StoredCheckResult) -> StoredCheckResult:
    return dataclasses.replace(result, samples=())


def _stored(row: CheckResultRow) -> StoredCheckResult:
    return StoredCheckResult(
        id=row.id,
        run_id=row.run_id,
        table=row.table_name,
        table_version=row.table_version,
        check=row.check_name,
        kind=row.kind,
        tenant=row.tenant,
        status=row.status,
        severity=row.severity,
        failing=row.failing,
        measured=row.measured,
        threshold=row.threshold,
        message=row.message,
        published=row.published,
        created_at=row.created_at,
        samples=tuple(row.samples or ()),
        detail=dict(row.detail or {}),
    )
