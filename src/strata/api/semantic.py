"""Metrics and dashboards in the query API: loading them at start-up, computing a metric in
a tenant's sandbox, and a widget's data through the cache.

Start-up (``load_semantic``, in ``create_app``): the project's ``metrics/*.yml`` are loaded
against the explores' columns, read from the Delta schemas of their fact and dimensions (an
explore not built yet is known but its columns go unchecked), then ``dashboards/*.yml``
against those metrics. ``SemanticLayer.prepare`` registers the metrics in the catalog (a
changed definition under a registered version stops the server, naming key and version)
and syncs the file dashboards; ``strata serve`` calls it before listening, the app's
lifespan again (idempotent).

A computation compiles the metric (``metric_compile``), passes the SQL through the guard
with only the metric's explores exposed (the compiler is trusted; the guard is defence in
depth), checks the scan budget and runs it in the caller's tenant sandbox. The catalog is
the registry: any registered version can be computed; "latest" is the highest one.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
from deltalake import DeltaTable
from sqlglot import exp

from strata.api.cache import CacheKey, canonical_hash, widget_key
from strata.api.errors import ApiError
from strata.api.exposed import Served
from strata.api.results import json_table
from strata.api.settings import ServeSettings
from strata.catalog.dashboards import FileDashboard, NewWidget, Widget
from strata.catalog.metrics import MetricVersion
from strata.catalog.records import TableVersion
from strata.catalog.store import Catalog
from strata.core.errors import ConfigError
from strata.semantic.dashboards import (
    funnel_steps,
    load_dashboards,
    pinned_problems,
    previous_range,
    validate_dashboards,
    widget_filters,
)
from strata.semantic.explores import EXPLORE_SCHEMA, ExploreViewError, explore_view
from strata.semantic.guard import DIALECT, guard_query
from strata.semantic.metric_compile import (
    MetricRequest,
    MetricRequestError,
    compile_metric,
)
from strata.semantic.metrics import (
    ExploreColumns,
    MetricDefinition,
    MetricDefinitionError,
    load_metrics,
    validate_metrics,
)
from strata.semantic.sandbox import TenantSandbox
from strata.transform.config import ProjectError
from strata.transform.project import Project
from strata.transform.tables import table_path

_LATEST_TTL_S: Final = 5.0  # how long "the latest version of a key" is remembered
_MAX_REMEMBERED: Final = 4096


# -- start-up ------------------------------------------------------------------------------


def explore_columns(project: Project, lake: Path) -> dict[str, ExploreColumns | None]:
    """Each explore's view columns, from its tables' Delta schemas; ``None`` for an explore
    whose tables are not all built (or cannot be joined as they are)."""
    found: dict[str, ExploreColumns | None] = {}
    for name, explore in project.explores.items():
        models = (explore.fact, *(d.model for d in explore.dimensions))
        columns: dict[str, list[str]] = {}
        for model in models:
            path = table_path(lake, "gold", model)
            if not DeltaTable.is_deltatable(str(path)):
                break
            columns[model] = list(pa.schema(DeltaTable(str(path)).schema().to_arrow()).names)
        else:
            try:
                view = explore_view(explore, columns, project.config.tenant_key)
            except ExploreViewError:
                found[name] = None
                continue
            found[name] = [select.alias_or_name for select in view.selects]
            continue
        found[name] = None
    return found


@dataclass(frozen=True)
class SemanticLayer:
    """The project's metric and dashboard files, loaded and checked."""

    metrics: Mapping[str, MetricDefinition]
    dashboards: tuple[FileDashboard, ...]

    def prepare(self, catalog: Catalog) -> None:
        """Register the metrics (``MetricVersionConflict`` if one changed under its version),
        check pinned widget versions against the registry, sync the file dashboards."""
        catalog.register_metrics(self.metrics[key] for key in sorted(self.metrics))
        store = MetricStore(catalog)
        problems = pinned_problems(list(self.dashboards), store.get)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigError(problems[0] + more)
        catalog.sync_file_dashboards(self.dashboards)


def validate_semantic(project: Project) -> list[ProjectError]:
    """Every problem in the metric files, then (if they load) in the dashboard files.
    Explore columns are checked where the lake is a local folder with the tables built."""
    url = project.config.lake_url
    if "://" in url:
        columns: dict[str, ExploreColumns | None] = dict.fromkeys(project.explores)
    else:
        columns = explore_columns(project, Path(url))
    problems = validate_metrics(project.root, columns)
    if problems:
        return problems
    return validate_dashboards(project.root, load_metrics(project.root, columns))


def load_semantic(project: Project, lake: Path) -> SemanticLayer:
    """``MetricLoadError`` / ``DashboardLoadError`` (both ``ConfigError``) if a file is wrong."""
    metrics = load_metrics(project.root, explore_columns(project, lake))
    dashboards = load_dashboards(project.root, metrics)
    return SemanticLayer(metrics, tuple(dashboards))


# -- the registry, memoised ----------------------------------------------------------------


class MetricStore:
    """Metric definitions from the catalog. A registered (key, version) never changes, so
    it is remembered for good; which version is the latest, for a few seconds."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._lock = threading.Lock()
        self._pinned: dict[tuple[str, int], MetricDefinition] = {}
        self._latest: dict[str, tuple[float, int]] = {}

    def get(self, key: str, version: int | None = None) -> MetricDefinition | None:
        now = time.monotonic()
        with self._lock:
            if version is None:
                latest = self._latest.get(key)
                if latest is not None and latest[0] > now:
                    version = latest[1]
            if version is not None and (key, version) in self._pinned:
                return self._pinned[(key, version)]
        found = self.catalog.metric(key, version)
        if found is None:
            return None
        definition = MetricDefinition.from_dict(found.definition)
        with self._lock:
            if len(self._pinned) >= _MAX_REMEMBERED:
                self._pinned.clear()
            self._pinned[(found.key, found.version)] = definition
            if version is None:
                self._latest[key] = (now + _LATEST_TTL_S, found.version)
        return definition

    def registry(self, metric: MetricDefinition) -> dict[str, MetricDefinition]:
        """The latest definition of every metric ``metric`` uses, recursively."""
        found: dict[str, MetricDefinition] = {}
        todo = list(metric.uses)
        while todo:
            key = todo.pop()
            if key in found:
                continue
            used = self.get(key)
            if used is None:
                raise ApiError(
                    409,
                    "metric_unavailable",
                    f"metric '{metric.key}' uses '{key}', which is not registered",
                )
            found[key] = used
            todo.extend(used.uses)
        return found


def describe(version: MetricVersion) -> dict[str, Any]:
    """A registered version as ``GET /metrics`` lists it."""
    metric = MetricDefinition.from_dict(version.definition)
    slo = None if metric.freshness_slo is None else metric.freshness_slo.total_seconds()
    return {
        "key": metric.key,
        "version": metric.version,
        "description": metric.description,
        "owner": metric.owner,
        "type": metric.type,
        "explore": metric.explore,
        "time_dimension": metric.time_dimension,
        "grains": list(metric.grains),
        "dimensions": list(metric.dimensions),
        "uses": list(metric.uses),
        "freshness_slo_s": slo,
        "registered_at": version.registered_at.isoformat(),
    }


# -- computing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """Where a metric of one tenant runs: the sandbox, its explores and their tables."""

    sandbox: TenantSandbox
    exposed: tuple[str, ...]  # "explore.<name>" keys the query may read
    tables: dict[str, int]  # lake table -> the Delta version the sandbox reads


@dataclass(frozen=True)
class Result:
    columns: list[dict[str, str]]
    rows: list[list[Any]]


def explores_of(metric: MetricDefinition, registry: Mapping[str, MetricDefinition]) -> list[str]:
    """The explores a metric reads, its used metrics' included."""
    names: list[str] = []
    todo = [metric]
    while todo:
        item = todo.pop()
        if item.explore is not None and item.explore not in names:
            names.append(item.explore)
        todo.extend(registry[u] for u in item.uses if u in registry)
    return sorted(names)


def prepare(
    served: Served,
    tenant: str,
    metric: MetricDefinition,
    registry: Mapping[str, MetricDefinition],
    settings: ServeSettings,
) -> Prepared:
    exposed = tuple(f"{EXPLORE_SCHEMA}.{name}" for name in explores_of(metric, registry))
    missing = [key for key in exposed if key not in served.exposed]
    if missing:
        raise ApiError(
            409,
            "not_built",
            f"metric '{metric.key}' reads {', '.join(missing)}, which is not built yet; "
            "refresh it first",
        )
    sandbox = served.pool.get(tenant)
    sources = set(served.sources(exposed))
    tables = {t.name: t for t in sandbox.tables if t.name in sources}
    scanned = sum(t.bytes for t in tables.values())
    if scanned > settings.scan_budget_bytes:
        raise ApiError(
            400,
            "scan_budget_exceeded",
            f"metric '{metric.key}' reads {', '.join(sorted(tables))}: {scanned} bytes of this "
            f"tenant's data, over the scan budget of {settings.scan_budget_bytes} bytes",
        )
    return Prepared(sandbox, exposed, {name: t.version for name, t in sorted(tables.items())})


def run(
    prepared: Prepared,
    metric: MetricDefinition,
    request: MetricRequest,
    registry: Mapping[str, MetricDefinition],
    settings: ServeSettings,
) -> Result:
    """Compile, guard and run ``request`` in the prepared sandbox."""
    try:
        query: exp.Select = compile_metric(metric, request, registry)
    except MetricRequestError as exc:
        raise ApiError(400, "invalid_metric_request", str(exc)) from None
    except MetricDefinitionError as exc:
        raise ApiError(409, "metric_unavailable", str(exc)) from None
    guarded = guard_query(query.sql(dialect=DIALECT), prepared.exposed, max_rows=settings.max_rows)
    table = prepared.sandbox.run(guarded.sql, timeout_s=settings.timeout_s)
    if table.num_rows > settings.max_rows:
        raise ApiError(
            400,
            "result_too_large",
            f"metric '{metric.key}' gives more than {settings.max_rows} rows: use a coarser "
            "grain, fewer group-by dimensions or a shorter range",
        )
    columns, rows = json_table(table)
    return Result(columns, rows)


# -- freshness -----------------------------------------------------------------------------


def freshness_basis(
    catalog: Catalog,
    settings: ServeSettings,
    metric: MetricDefinition,
    registry: Mapping[str, MetricDefinition],
    prepared: Prepared,
) -> tuple[str | None, float]:
    """The last refresh of the metric's stalest table (ISO text; ``None`` if one was never
    recorded) and its SLO: the metric's own, else the explores' from ``[serve]``."""
    recorded: list[TableVersion | None] = [
        catalog.latest_table_version(name) for name in prepared.tables
    ]
    last = (
        None
        if not recorded or any(v is None for v in recorded)
        else min(v.created_at for v in recorded if v is not None)
    )
    slos = [
        item.freshness_slo.total_seconds()
        for item in (metric, *registry.values())
        if item.freshness_slo is not None
    ]
    if not slos:
        slos = [settings.freshness_slo(key) for key in prepared.exposed]
    return (None if last is None else last.isoformat()), min(slos)


def freshness(last_refresh: str | None, slo_s: float, now: dt.datetime) -> dict[str, Any]:
    if last_refresh is None:
        return {"last_refresh": None, "lag_s": None, "slo_s": slo_s, "status": "never_built"}
    lag = max(0.0, (now - dt.datetime.fromisoformat(last_refresh)).total_seconds())
    return {
        "last_refresh": last_refresh,
        "lag_s": round(lag, 3),
        "slo_s": slo_s,
        "status": "late" if lag > slo_s else "fresh",
    }


# -- widgets -------------------------------------------------------------------------------


def widget_definition_hash(widget: Widget) -> str:
    return canonical_hash(
        {
            "type": widget.type,
            "metric": [widget.metric_key, widget.metric_version],
            "grain": widget.grain,
            "group_by": list(widget.group_by),
            "filters": list(widget.filters),
        }
    )


def as_new_widget(widget: Widget) -> NewWidget:
    return NewWidget(
        title=widget.title,
        type=widget.type,
        metric_key=widget.metric_key,
        metric_version=widget.metric_version,
        grain=widget.grain,
        group_by=widget.group_by,
        filters=widget.filters,
        default_range=widget.default_range,
    )


def widget_result(
    widget: Widget,
    metric: MetricDefinition,
    registry: Mapping[str, MetricDefinition],
    prepared: Prepared,
    settings: ServeSettings,
    start: dt.date,
    end: dt.date,
) -> Result:
    """The widget's rows over ``[start, end]``, shaped for its type (see
    ``strata.semantic.dashboards``)."""
    try:
        filters = widget_filters(as_new_widget(widget))
        request = MetricRequest(start, end, widget.grain, widget.group_by, filters)  # type: ignore[arg-type]
    except MetricRequestError as exc:
        raise ApiError(409, "widget_invalid", f"widget {widget.id}: {exc}") from None

    def whole(start: dt.date, end: dt.date) -> Result:
        """One row per group for the whole range, without the period column. A cumulative
        metric's value for a range is its last period's."""
        ranged = MetricRequest(
            start,
            end,
            request.grain,
            request.group_by,
            request.filters,
            whole_range=metric.type != "cumulative",
        )
        result = run(prepared, metric, ranged, registry, settings)
        rows = result.rows
        if metric.type == "cumulative":
            last: dict[tuple[Any, ...], list[Any]] = {}
            for row in rows:  # ordered by period: the last one per group wins
                last[tuple(row[1:-1])] = row
            rows = list(last.values())
        return Result(result.columns[1:], [row[1:] for row in rows])

    kind = widget.type
    if kind == "timeseries" or (kind == "heatmap" and len(widget.group_by) == 1):
        return run(prepared, metric, request, registry, settings)
    if kind == "kpi":
        current = whole(start, end)
        before = whole(*previous_range(start, end))
        value = current.rows[0][-1] if current.rows else None
        previous = before.rows[0][-1] if before.rows else None
        change = (
            value - previous
            if isinstance(value, int | float) and isinstance(previous, int | float)
            else None
        )
        kind_of = current.columns[-1]["type"] if current.columns else "DOUBLE"
        columns = [
            {"name": "value", "type": kind_of},
            {"name": "previous", "type": kind_of},
            {"name": "change", "type": kind_of},
        ]
        return Result(columns, [[value, previous, change]])
    result = whole(start, end)
    if kind == "breakdown":
        ordered = sorted(result.rows, key=lambda r: (r[-1] is None, -_number(r[-1])))
        return Result(result.columns, ordered)
    if kind == "funnel":
        values = {row[0]: row[-1] for row in result.rows}
        steps = funnel_steps(as_new_widget(widget))
        return Result(result.columns, [[step, values.get(step)] for step in steps])
    return result  # heatmap of two dimensions


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def widget_cache_key(
    widget: Widget,
    tenant: str,
    metric: MetricDefinition,
    registry: Mapping[str, MetricDefinition],
    prepared: Prepared,
    start: dt.date,
    end: dt.date,
    prefix: str,
) -> CacheKey:
    metrics: Sequence[tuple[str, int]] = sorted(
        {(metric.key, metric.version), *((m.key, m.version) for m in registry.values())}
    )
    return widget_key(
        prefix=prefix,
        tenant=tenant,
        widget_id=widget.id,
        definition_hash=widget_definition_hash(widget),
        metrics=metrics,
        tables=prepared.tables,
        start=start.isoformat(),
        end=end.isoformat(),
    )
