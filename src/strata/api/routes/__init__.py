"""The query API's routes, one module per resource (the seed's names and paths)."""

from strata.api.routes.dashboards import router as dashboards_router
from strata.api.routes.health import router as health_router
from strata.api.routes.jobs import router as jobs_router
from strata.api.routes.metrics import router as metrics_router
from strata.api.routes.projections import router as projections_router
from strata.api.routes.queries import router as queries_router

ROUTERS = (
    health_router,
    queries_router,
    projections_router,
    jobs_router,
    metrics_router,
    dashboards_router,
)

__all__ = ["ROUTERS"]
