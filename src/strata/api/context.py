"""What every route works with, opened by the app's lifespan, and the caller's principal.

Routes take these as FastAPI dependencies (``Ctx``, ``Caller``), so a route's signature
says what it needs. ``caller`` and the routes are plain functions: FastAPI runs them in its
thread pool, off the event loop, since the catalog and DuckDB block.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from strata.api.auth import authenticate
from strata.api.cache import WidgetCache
from strata.api.errors import ApiError
from strata.api.exposed import ExposedTables
from strata.api.jobs import JobRunner
from strata.api.metrics import ApiMetrics
from strata.api.semantic import MetricStore
from strata.api.settings import ServeSettings
from strata.catalog.store import Catalog
from strata.core.access import Principal
from strata.transform.project import Project


@dataclass(frozen=True, slots=True)
class ServeContext:
    root: Path
    project: Project
    settings: ServeSettings
    catalog: Catalog
    exposed: ExposedTables
    jobs: JobRunner
    metrics: ApiMetrics
    metric_store: MetricStore
    cache: WidgetCache


async def serve_context(request: Request) -> ServeContext:
    # async, though it awaits nothing: a plain function would cost a thread-pool hop.
    context = getattr(request.app.state, "strata", None)
    if not isinstance(context, ServeContext):  # a request before start-up or after shutdown
        raise ApiError(503, "unavailable", "the server is starting or stopping; retry")
    return context


Ctx = Annotated[ServeContext, Depends(serve_context)]


def caller(request: Request, context: Ctx) -> Principal:
    """The authenticated caller; ``AuthError`` (401) if the token is missing or invalid."""
    return authenticate(request.headers.get("authorization"), context.catalog, context.settings.jwt)


Caller = Annotated[Principal, Depends(caller)]
