"""What the query API exposes, and which of it exists right now.

Declared (from the project, once at start-up): every gold model as ``gold.<model>``, the
silver models ``[serve] expose_silver`` lists as ``silver.<model>``, and every explore as
``explore.<name>``, a view over its fact and dimensions (``strata.semantic.explores``).

Served (checked on every request): the declared tables whose Delta table exists and is
partitioned by the tenant key, and the explores whose every table is served. A table that
was never built is simply not there until a run builds it; a table that is not partitioned
by tenant cannot be isolated, so it is never served (and logged once). The check stats one
folder per table not yet seen; when the served set changes, a new ``SandboxPool`` replaces
the old one, which finishes the queries it runs and closes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from deltalake import DeltaTable
from sqlglot import exp

from strata.core.errors import ConfigError
from strata.core.logging import fields, get_logger
from strata.semantic.explores import EXPLORE_SCHEMA, ExploreViewError, explore_view
from strata.semantic.sandbox import DerivedViews, SandboxLimits, SandboxPool
from strata.semantic.tenant_tables import SandboxTable
from strata.transform.config import ExploreConfig
from strata.transform.project import Project
from strata.transform.tables import table_path

log = get_logger(__name__)

ExposedLayer = Literal["silver", "gold", "explore"]
_DELTA_LOG: Final = "_delta_log"


@dataclass(frozen=True, slots=True)
class Exposed:
    """One thing a query may read: a model's table, or an explore."""

    key: str  # "gold.fct_assignments", "explore.assignments"
    layer: ExposedLayer
    name: str
    tables: tuple[str, ...]  # the lake tables it reads: itself, or a fact then its dimensions

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(t.split(".", 1)[1] for t in self.tables)

    @property
    def select(self) -> str:
        """What ``strata run --select`` builds to refresh it: its models and their inputs."""
        return " ".join(f"+{model}" for model in self.models)


def declare_exposed(project: Project, expose_silver: Sequence[str]) -> dict[str, Exposed]:
    """Everything the project exposes, by key; ``ConfigError`` if ``expose_silver`` names a
    model that is not a silver model."""
    declared: dict[str, Exposed] = {}
    for name in expose_silver:
        model = project.models.get(name)
        if model is None or model.layer != "silver":
            what = "no model" if model is None else f"a {model.layer} model"
            raise ConfigError(f"strata.toml: serve.expose_silver names '{name}', which is {what}")
        declared[f"silver.{name}"] = Exposed(f"silver.{name}", "silver", name, (f"silver.{name}",))
    for gold in sorted(m.name for m in project.layer("gold")):
        declared[f"gold.{gold}"] = Exposed(f"gold.{gold}", "gold", gold, (f"gold.{gold}",))
    for name in sorted(project.explores):
        explore = project.explores[name]
        tables = (explore.fact, *(d.model for d in explore.dimensions))
        key = f"{EXPLORE_SCHEMA}.{name}"
        declared[key] = Exposed(key, "explore", name, tuple(f"gold.{t}" for t in tables))
    return declared


@dataclass(frozen=True, slots=True)
class Served:
    """The exposed things that exist now, and the sandbox pool over their tables."""

    exposed: Mapping[str, Exposed]
    pool: SandboxPool
    tables: frozenset[str]  # the lake tables the pool serves

    def sources(self, keys: Sequence[str]) -> tuple[str, ...]:
        """The lake tables that reading ``keys`` reads, each once."""
        return tuple(dict.fromkeys(t for key in keys for t in self.exposed[key].tables))


class ExposedTables:
    """The declared exposure of a project and the current ``Served`` set; thread-safe."""

    def __init__(
        self,
        project: Project,
        lake: Path,
        declared: Mapping[str, Exposed],
        *,
        limits: SandboxLimits,
        max_open: int,
    ) -> None:
        self.declared: Mapping[str, Exposed] = MappingProxyType(dict(declared))
        self.lake = lake
        self.tenant_key = project.config.tenant_key
        self._explores = dict(project.explores)
        self._limits = limits
        self._max_open = max_open
        self._lock = threading.Lock()
        self._servable: set[str] = set()  # tables seen built and tenant-partitioned
        self._refused: set[str] = set()  # built but not partitioned by tenant: never served
        self._served: Served | None = None
        self._closed = False

    def current(self) -> Served:
        """What is served now, replacing the pool when a table has appeared since."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the exposed tables are closed")
            tables = sorted({t for e in self.declared.values() for t in e.tables})
            servable = {t for t in tables if self._is_servable(t)}
            served = self._served
            if served is not None and servable == served.tables:
                return served
            exposed = {
                key: item
                for key, item in self.declared.items()
                if all(t in servable for t in item.tables)
            }
            explores = [self._explores[e.name] for e in exposed.values() if e.layer == "explore"]
            pool = SandboxPool(
                self.lake,
                sorted(servable),
                tenant_column=self.tenant_key,
                limits=self._limits,
                max_open=self._max_open,
                derived=explore_views(explores, self.tenant_key),
            )
            fresh = Served(MappingProxyType(exposed), pool, frozenset(servable))
            self._served = fresh
        if served is not None:
            served.pool.close()  # queries running on it finish first
        log.info("exposed tables changed", extra=fields(exposed=sorted(exposed)))
        return fresh

    def recheck(self) -> None:
        """Look again at tables refused for their partitioning (after a run rebuilt them)."""
        with self._lock:
            self._refused.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            served, self._served = self._served, None
        if served is not None:
            served.pool.close()

    def _is_servable(self, table: str) -> bool:
        if table in self._servable:
            return True
        if table in self._refused:
            return False
        layer, _, model = table.partition(".")
        path = table_path(self.lake, "gold" if layer == "gold" else "silver", model)
        if not (path / _DELTA_LOG).is_dir() or not DeltaTable.is_deltatable(str(path)):
            return False  # not built yet
        partitions = DeltaTable(str(path)).metadata().partition_columns
        if self.tenant_key not in partitions:
            self._refused.add(table)
            log.warning(
                "table not served: it is not partitioned by the tenant key",
                extra=fields(table=table, tenant_key=self.tenant_key),
            )
            return False
        self._servable.add(table)
        return True


def explore_views(explores: Sequence[ExploreConfig], tenant_key: str) -> DerivedViews:
    """The sandbox hook defining ``explore.<name>`` over a sandbox's gold views."""

    def derived(tables: Sequence[SandboxTable]) -> Mapping[str, exp.Query]:
        columns = {t.table_name: t.schema.names for t in tables if t.schema_name == "gold"}
        views: dict[str, exp.Query] = {}
        for explore in explores:
            try:
                views[f"{EXPLORE_SCHEMA}.{explore.name}"] = explore_view(
                    explore, columns, tenant_key
                )
            except ExploreViewError as exc:  # one broken explore must not take the rest down
                log.warning(
                    "explore not served", extra=fields(explore=explore.name, error=str(exc))
                )
        return views

    return derived
