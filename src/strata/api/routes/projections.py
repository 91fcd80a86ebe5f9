"""``GET /api/v1/analytics/projections`` (what is exposed, and how fresh) and
``POST /api/v1/analytics/projections/{key}:refresh`` (rebuild one, as a background job).

A projection is one exposed key: ``gold.<model>``, ``silver.<model>`` or
``explore.<name>``. Its freshness is the age of its last recorded table version (for an
explore, its stalest table's) against its SLO. A tenant's caller sees its own row counts,
read from its sandbox's file statistics; a platform admin sees the table totals the catalog
recorded, or one tenant's counts when it names the tenant.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from strata.api.auth import require_role, require_tenant
from strata.api.context import Caller, Ctx, ServeContext
from strata.api.errors import ApiError
from strata.api.exposed import Exposed, Served
from strata.catalog.records import TableVersion
from strata.semantic.sandbox import SandboxClosedError
from strata.semantic.tenant_tables import SandboxTable

router = APIRouter(tags=["projections"])

LIST_PATH: Final = "/api/v1/analytics/projections"
REFRESH_PATH: Final = "/api/v1/analytics/projections/{key}:refresh"
JOB_PATH: Final = "/api/v1/analytics/etl/jobs/{job_id}"

Status = Literal["fresh", "late", "never_built"]


class Projection(BaseModel):
    key: str
    layer: str
    version: int | None
    rows: int | None
    last_refresh: dt.datetime | None
    freshness_slo_s: float
    lag_s: float | None
    status: Status


class Projections(BaseModel):
    tenant: str | None  # whose rows ``rows`` counts; None: every tenant's
    projections: list[Projection]


class RefreshAccepted(BaseModel):
    job_id: str
    projection: str
    status_url: str


@router.get(LIST_PATH, summary="Exposed tables and explores with their freshness")
def list_projections(
    context: Ctx,
    principal: Caller,
    tenant: Annotated[str | None, Query(description="Platform admins: count one tenant.")] = None,
) -> Projections:
    scope = require_tenant(principal, tenant)
    served, tables = _tenant_tables(context, scope)
    now = dt.datetime.now(dt.UTC)
    versions = {
        t: context.catalog.latest_table_version(t)
        for item in context.exposed.declared.values()
        for t in item.tables
    }
    return Projections(
        tenant=scope,
        projections=[
            _projection(context, item, served, versions, tables, now)
            for item in sorted(context.exposed.declared.values(), key=lambda e: e.key)
        ],
    )


def _tenant_tables(
    context: ServeContext, tenant: str | None
) -> tuple[Served, dict[str, SandboxTable] | None]:
    """What is served, and the tenant's tables in its sandbox (``None``: all tenants)."""
    served = context.exposed.current()
    if tenant is None:
        return served, None
    try:
        sandbox = served.pool.get(tenant)
    except SandboxClosedError:  # replaced in between: once more with the new pool
        served = context.exposed.current()
        sandbox = served.pool.get(tenant)
    return served, {t.name: t for t in sandbox.tables}


def _projection(
    context: ServeContext,
    item: Exposed,
    served: Served,
    versions: dict[str, TableVersion | None],
    tables: dict[str, SandboxTable] | None,
    now: dt.datetime,
) -> Projection:
    slo = context.settings.freshness_slo(item.key)
    recorded = [versions[t] for t in item.tables]
    built = item.key in served.exposed and all(v is not None for v in recorded)
    last_refresh = min(v.created_at for v in recorded if v is not None) if built else None
    lag = None if last_refresh is None else max(0.0, (now - last_refresh).total_seconds())
    status: Status = "never_built" if lag is None else ("late" if lag > slo else "fresh")
    version = rows = None
    if item.layer != "explore" and built:  # an explore is a view: no version, no count
        table = versions[item.tables[0]]
        version = None if table is None else table.version
        if tables is None:
            rows = None if table is None else table.row_count
        elif item.tables[0] in tables:
            rows = tables[item.tables[0]].rows
    return Projection(
        key=item.key,
        layer=item.layer,
        version=version,
        rows=rows,
        last_refresh=last_refresh,
        freshness_slo_s=slo,
        lag_s=lag,
        status=status,
    )


@router.post(
    REFRESH_PATH,
    status_code=202,
    summary="Rebuild a projection and its inputs in the background",
    responses={
        403: {"description": "Only tenant_admin and platform_admin may refresh."},
        404: {"description": "No such projection."},
    },
)
def refresh_projection(key: str, context: Ctx, principal: Caller) -> RefreshAccepted:
    require_role(principal, "tenant_admin", "platform_admin")
    item = context.exposed.declared.get(key)
    if item is None:
        raise ApiError(404, "not_found", f"no projection {key[:200]!r}")
    job_id = context.jobs.submit(item.key, item.select, principal)
    return RefreshAccepted(
        job_id=job_id, projection=item.key, status_url=JOB_PATH.format(job_id=job_id)
    )
