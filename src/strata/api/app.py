"""``create_app``: the query API of one project as a FastAPI app (``strata serve`` runs it).

Everything that can be wrong with the project or its ``[serve]`` settings is found here,
before the server listens: the project loads, the lake is a local folder, the silver
models to expose exist, the metric and dashboard files are valid. The lifespan then opens
the catalog, fails the runs a previous server left 'running' (it died with them), registers
the metrics and syncs the file dashboards, opens the widget cache, and builds the exposed
tables, the sandbox pool and the job worker; shutdown closes them in reverse.

Middleware, outermost first: metrics (sees every answer, 500s included), the catch-all
500, the body limit (counts the bytes actually read). Errors are mapped in ``errors``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

import strata
from strata.api.cache import open_cache
from strata.api.context import ServeContext
from strata.api.errors import CatchAllMiddleware, install_error_handlers
from strata.api.exposed import ExposedTables, declare_exposed
from strata.api.jobs import JobRunner
from strata.api.limits import BodyLimitMiddleware
from strata.api.metrics import ApiMetrics, MetricsMiddleware
from strata.api.routes import ROUTERS
from strata.api.semantic import MetricStore, load_semantic
from strata.api.settings import ServeSettings, load_serve_settings
from strata.catalog.store import Catalog
from strata.core.logging import fields, get_logger
from strata.semantic.sandbox import SandboxLimits
from strata.transform.project import load_project
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
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    # add_middleware wraps what is there: the last added runs first.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    mount_ui(app)  # the dashboards page at /ui/: static files, same origin, strict CSP
    return app
