"""The metadata catalog: runs, per-model state and table versions in SQLite or PostgreSQL.

catalog = Catalog.open(CatalogConfig.from_env(project_dir).url)
run_id = catalog.start_run("transform", {"select": "silver"}, triggered_by="cli")
todo = catalog.new_files("silver_orders", [(path, size), ...])
"""

from strata.catalog.config import CatalogConfig
from strata.catalog.errors import (
    CatalogError,
    CatalogSchemaError,
    CatalogUnavailableError,
    RunNotFoundError,
    RunStateError,
    TableVersionExistsError,
)
from strata.catalog.records import FileRef, ModelState, RunRecord, StepRecord, TableVersion
from strata.catalog.schema import FinishedStatus, RunStatus, StepStatus
from strata.catalog.store import Catalog

__all__ = [
    "Catalog",
    "CatalogConfig",
    "CatalogError",
    "CatalogSchemaError",
    "CatalogUnavailableError",
    "FileRef",
    "FinishedStatus",
    "ModelState",
    "RunNotFoundError",
    "RunRecord",
    "RunStateError",
    "RunStatus",
    "StepRecord",
    "StepStatus",
    "TableVersion",
    "TableVersionExistsError",
]
