"""``Catalog``: the metadata database as one object, migrated to head when opened."""

from __future__ import annotations

from alembic.util.exc import CommandError

from strata.catalog import migrate
from strata.catalog.backends import backend_for
from strata.catalog.config import CatalogConfig, engine_url
from strata.catalog.dashboards import DashboardStore
from strata.catalog.errors import CatalogSchemaError
from strata.catalog.keys import ApiKeyStore
from strata.catalog.metrics import MetricRegistry
from strata.catalog.model_state import ModelStateStore
from strata.catalog.quality import QualityStore
from strata.catalog.runs import RunLedger
from strata.catalog.tables import TableVersionStore
from strata.catalog.watermarks import WatermarkStore
from strata.core.logging import fields, get_logger
from strata.core.timeutil import Clock, now_us

log = get_logger(__name__)


class Catalog(
    RunLedger,
    ModelStateStore,
    TableVersionStore,
    ApiKeyStore,
    MetricRegistry,
    DashboardStore,
    WatermarkStore,
    QualityStore,
):
    """Runs, per-model state, table versions, API keys, metric versions, dashboards,
    extraction watermarks and data-quality results; every method is one short transaction.

    Open it once per process with ``Catalog.open(url)`` and share it; ``close()`` (or a
    ``with`` block) releases its connections.
    """

    @classmethod
    def open(cls, url: str | CatalogConfig, *, clock: Clock = now_us) -> Catalog:
        """Connect, and migrate the schema to the newest revision this Strata knows.

        Raises ``CatalogUnavailableError`` if the database cannot be reached and
        ``CatalogSchemaError`` if it was migrated by a newer Strata.
        """
        config = url if isinstance(url, CatalogConfig) else CatalogConfig(url)
        sa_url = engine_url(config.url)
        backend = backend_for(sa_url)
        catalog = cls(backend.create_engine(sa_url), backend, clock=clock)
        try:
            catalog._migrate()
        except BaseException:
            catalog.close()
            raise
        return catalog

    def _migrate(self) -> None:
        try:
            with self._translated(), self._write_engine.begin() as connection:
                migrate.upgrade(connection)
        except CommandError as exc:
            raise CatalogSchemaError(self.url, str(exc)) from exc
        log.info("catalog ready", extra=fields(url=self.url, revision=migrate.head_revision()))
