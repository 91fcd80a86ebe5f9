"""The API's routes, one module per resource (the seed's names and paths).

``ROUTERS`` make the full server; ``COLLECTOR_ROUTERS`` the HTTP collector on its own
(``strata serve --collector-only``): ingest, ``/health`` and ``/metrics``.
"""

from strata.api.routes.dashboards import router as dashboards_router
from strata.api.routes.health import router as health_router
from strata.api.routes.ingest import ops_router as collector_ops_router
from strata.api.routes.ingest import router as ingest_router
from strata.api.routes.jobs import router as jobs_router
from strata.api.routes.metrics import router as metrics_router
from strata.api.routes.projections import router as projections_router
from strata.api.routes.quality import router as quality_router
from strata.api.routes.queries import router as queries_router

ROUTERS = (
    health_router,
    queries_router,
    projections_router,
    jobs_router,
    metrics_router,
    dashboards_router,
    quality_router,
    ingest_router,
)
COLLECTOR_ROUTERS = (collector_ops_router, ingest_router)

__all__ = ["COLLECTOR_ROUTERS", "ROUTERS"]
