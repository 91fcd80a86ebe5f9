"""``create_app``: the query API of one project as a FastAPI app (``strata serve`` runs it),
with the HTTP collector beside it; ``create_collector_app``: the collector alone
(``strata serve --collector-only``), which needs only strata.toml's lake and catalog.

Everything that can be wrong with the project or its ``[serve]`` settings is found here,
before the server listens: the project loads, the lake is a local folder, the silver
models to expose exist, the metric and dashboard files are valid. The lifespan then opens
the catalog, fails the runs a previous server left 'running' (it died with them), registers
the metrics and syncs the file dashboards, opens the widget cache, and builds the exposed
tables, the sandbox pool and the job worker, then the collector (which lands what a
previous run left in its journal); shutdown closes them in reverse, so the collector's
records are flushed to the lake before the catalog closes.

Middleware, outermost first: metrics (sees every answer, 500s included), the catch-all
500, the body limit (counts the bytes actually read; the collector's routes have their
own, larger limit). Errors are mapped in ``errors``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

import strata
from strata.api.cache import open_cache
from strata.api.context import ServeContext
from strata.api.errors import CatchAllMiddleware, install_error_handlers
from strata.api.exposed import ExposedTables, declare_exposed
from strata.api.jobs import JobRunner
from strata.api.limits import BodyLimitMiddleware
from strata.api.metrics import ApiMetrics, MetricsMiddleware
from strata.api.routes import COLLECTOR_ROUTERS, ROUTERS
from strata.api.routes.ingest import PREFIX as INGEST_PREFIX
from strata.api.routes.ingest import Collector, CollectorContext
from strata.api.semantic import MetricStore, load_semantic
from strata.api.settings import ServeSettings, load_serve_settings
from strata.catalog.store import Catalog
from strata.core.errors import ConfigError
from strata.core.logging import fields, get_logger
from strata.ingest.config import IngestConfig
from strata.semantic.sandbox import SandboxLimits
from strata.transform.config import ProjectConfig, ProjectError
from strata.transform.project import PROJECT_FILE, _read_config, load_project
from strata.transform.runner import local_lake
from strata.web import mount_ui

log = get_logger(__name__)


def create_app(
    root: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    settings: ServeSettings | None = None,
) -> FastAPI:
    """The query API over the project at ``root``; ``environ`` (default ``os.environ``)
    overrides its lake and catalog URLs and holds the JWT secret. ``settings`` replaces
    its ``[serve]`` table (tests use it to set limits)."""
    project = load_project(root, environ=environ)
    settings = settings or load_serve_settings(project.root, environ)
    ingest_config = IngestConfig.from_env(environ)  # a bad STRATA_INGEST_* stops here
    lake = local_lake(project)
    declared = declare_exposed(project, settings.expose_silver)
    semantic = load_semantic(project, lake)  # metric and dashboard files, checked
    limits = SandboxLimits(
        threads=settings.threads,
        memory_limit=settings.memory_limit,
        timeout_s=settings.timeout_s,
        max_rows=settings.max_rows + 1,  # the guard's extra row says "truncated"
    )
    # sqlglot logs a warning quoting SQL it could not fully parse: that is tenant SQL, which
    # has no place in the server's log. The guard reports the problem to the caller instead.
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Closed in reverse on shutdown, or on a failed start-up after each step that opened.
        async with AsyncExitStack() as opened:
            catalog = Catalog.open(project.config.catalog_url)
            opened.callback(catalog.close)
            interrupted = catalog.mark_interrupted_runs()
            semantic.prepare(catalog)  # a changed metric under an old version stops here
            cache = open_cache(
                settings.cache_url,
                ttl_s=settings.cache_ttl_s,
                max_entries=settings.cache_max_entries,
                prefix=settings.cache_prefix,
            )
            opened.callback(cache.close)
            exposed = ExposedTables(
                project, lake, declared, limits=limits, max_open=settings.sandboxes
            )
            opened.callback(exposed.close)
            jobs = JobRunner(project.root, catalog, on_finished=exposed.recheck)
            opened.push_async_callback(anyio.to_thread.run_sync, jobs.close)  # may wait a job
            served = exposed.current()  # what is built now; checked again on every request
            app.state.strata = ServeContext(
                project.root,
                project,
                settings,
                catalog,
                exposed,
                jobs,
                metrics,
                MetricStore(catalog),
                cache,
            )
            opened.callback(setattr, app.state, "strata", None)  # first: refuse new requests
            await _open_collector(
                opened, app, catalog, settings, project.root, project.config, ingest_config, metrics
            )
            log.info(
                "serving",
                extra=fields(project=project.config.name, exposed=sorted(served.exposed)),
            )
            if interrupted:
                log.warning("runs left running were marked failed", extra=fields(runs=interrupted))
            yield

    app = FastAPI(
        title=f"Strata query API: {project.config.name}",
        version=strata.__version__,
        summary="Read-only SQL over each tenant's gold tables and explores.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.semantic = semantic  # strata serve prepares the catalog before listening
    app.state.strata = None
    app.state.collector = None
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    _add_middleware(app, settings, metrics)
    mount_ui(app)  # the dashboards page at /ui/: static files, same origin, strict CSP
    return app


def create_collector_app(
    root: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    settings: ServeSettings | None = None,
) -> FastAPI:
    """The HTTP collector of the project at ``root`` alone: ``POST /api/v1/ingest/...``,
    ``/health`` and ``/metrics``. Only strata.toml is read (its lake, catalog and
    ``[serve]`` table): the models need not be valid or built."""
    env = os.environ if environ is None else environ
    project_root = Path(root).resolve()
    config = _project_config(project_root, env)
    settings = settings or load_serve_settings(project_root, env)
    ingest_config = IngestConfig.from_env(env)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as opened:
            catalog = Catalog.open(config.catalog_url)
            opened.callback(catalog.close)
            await _open_collector(
                opened, app, catalog, settings, project_root, config, ingest_config, metrics
            )
            log.info("serving the collector", extra=fields(project=config.name))
            yield

    app = FastAPI(
        title=f"Strata collector: {config.name}",
        version=strata.__version__,
        summary="Lands records sent over HTTP in the bronze lake.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.collector = None
    install_error_handlers(app)
    for router in COLLECTOR_ROUTERS:
        app.include_router(router)
    _add_middleware(app, settings, metrics)
    return app


async def _open_collector(
    opened: AsyncExitStack,
    app: FastAPI,
    catalog: Catalog,
    settings: ServeSettings,
    root: Path,
    config: ProjectConfig,
    ingest_config: IngestConfig,
    metrics: ApiMetrics,
) -> None:
    """Start the collector on ``opened``: closed (its records flushed) after new requests
    are refused, and before the catalog closes."""
    journal = settings.collector_journal
    collector = Collector(
        config.lake_url, journal if journal.is_absolute() else root / journal, ingest_config
    )

    async def close() -> None:  # waits for the records to land: off the event loop
        await anyio.to_thread.run_sync(collector.close)

    opened.push_async_callback(close)
    recovered = await anyio.to_thread.run_sync(collector.recover)
    if recovered:
        log.info("collector journals reopened", extra=fields(namespaces=recovered))
    app.state.collector = CollectorContext(catalog, settings, collector, metrics)
    opened.callback(setattr, app.state, "collector", None)


def _add_middleware(app: FastAPI, settings: ServeSettings, metrics: ApiMetrics) -> None:
    # add_middleware wraps what is there: the last added runs first.
    app.add_middleware(
        _BodyLimits,
        default=settings.max_body_bytes,
        collector=settings.collector_max_body_bytes,
    )
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)


class _BodyLimits:
    """The body limit of the path: the collector's own for its routes, else the API's."""

    def __init__(self, app: ASGIApp, default: int, collector: int) -> None:
        self._default = BodyLimitMiddleware(app, max_body_bytes=default)
        self._collector = BodyLimitMiddleware(app, max_body_bytes=collector)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        limited = self._collector if path.startswith(INGEST_PREFIX) else self._default
        await limited(scope, receive, send)


def _project_config(root: Path, environ: Mapping[str, str]) -> ProjectConfig:
    """strata.toml's settings alone (``STRATA_LAKE``/``STRATA_CATALOG_URL`` win)."""
    if not (root / PROJECT_FILE).is_file():
        raise ProjectError(PROJECT_FILE, None, f"not found in {root}; `strata init` creates one")
    problems: list[ProjectError] = []
    config = _read_config(root, environ, problems)
    if problems:
        raise problems[0]
    if config is None:  # pragma: no cover - _read_config reports why whenever it gives up
        raise ConfigError(f"cannot read {root / PROJECT_FILE}")
    return config
