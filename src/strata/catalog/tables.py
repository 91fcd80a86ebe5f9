"""Committed versions of lake tables with their row counts and the runs that made them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from strata.catalog import schema as db
from strata.catalog.base import CatalogBase, bounded
from strata.catalog.errors import CatalogError, TableVersionExistsError
from strata.catalog.records import TableVersion
from strata.catalog.schema import NAME_LENGTH


class TableVersionStore(CatalogBase):
    def record_table_version(
        self, table: str, version: int, row_count: int, run_id: str | None
    ) -> TableVersion:
        """Record a committed table version; a version is recorded once per table."""
        bounded(table, NAME_LENGTH, "table name")
        if version < 0 or row_count < 0:
            raise CatalogError(f"table {table!r}: version and row_count must be >= 0")
        row = db.TableVersion(
            table_name=table,
            version=version,
            row_count=row_count,
            run_id=run_id,
            created_at=self._now(),
        )
        with self._session(write=True) as session:
            if run_id is not None:
                self._require_run(session, run_id)
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:
                raise TableVersionExistsError(table, version) from exc
            return _table_version(row)

    def latest_table_version(self, table: str) -> TableVersion | None:
        query = (
            select(db.TableVersion)
            .where(db.TableVersion.table_name == table)
            .order_by(db.TableVersion.version.desc())
            .limit(1)
        )
        with self._session(write=False) as session:
            row = session.scalars(query).one_or_none()
            return None if row is None else _table_version(row)

    def table_versions(self, table: str) -> list[TableVersion]:
        """Every recorded version of ``table``, oldest first."""
        query = (
            select(db.TableVersion)
            .where(db.TableVersion.table_name == table)
            .order_by(db.TableVersion.version)
        )
        with self._session(write=False) as session:
            return [_table_version(row) for row in session.scalars(query)]


def _table_version(row: db.TableVersion) -> TableVersion:
    return TableVersion(row.table_name, row.version, row.row_count, row.run_id, row.created_at)
