"""``GET /health`` for load balancers and ``GET /metrics`` for Prometheus; no auth, and
nothing in either answer names a tenant."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from strata.api.context import Ctx
from strata.api.errors import ApiError
from strata.api.metrics import CONTENT_TYPE, ApiMetrics
from strata.catalog.errors import CatalogError, CatalogUnavailableError
from strata.core.logging import fields, get_logger

router = APIRouter(tags=["operations"])
log = get_logger(__name__)


@router.get("/health", summary="Whether the server and its catalog answer")
def health(context: Ctx) -> dict[str, str]:
    try:
        context.catalog.schema_revision()  # one round trip to the catalog database
    except (CatalogError, CatalogUnavailableError) as exc:
        log.warning("health check failed", extra=fields(error=str(exc)))
        raise ApiError(503, "catalog_unavailable", "the catalog database does not answer") from None
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)
