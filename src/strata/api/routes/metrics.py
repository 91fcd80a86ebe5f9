"""``GET /api/v1/analytics/metrics`` (the registered metric definitions) and
``POST /api/v1/analytics/metrics/{key}:compute`` (one metric over a window, in the caller's
tenant sandbox).

Definitions are the same for every tenant (any authenticated caller lists them); what a
computation reads is only the caller's tenant's rows: the compiled SQL runs in its sandbox.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from strata.api.auth import require_tenant
from strata.api.context import Caller, Ctx
from strata.api.errors import ApiError
from strata.api.results import JSON_TYPE
from strata.api.semantic import describe, freshness, freshness_basis, prepare, run
from strata.core.access import Principal
from strata.core.identifiers import is_valid_name
from strata.semantic.metric_compile import Filter, FilterOp, MetricRequest, MetricRequestError
from strata.semantic.metrics import Grain
from strata.semantic.sandbox import SandboxClosedError

router = APIRouter(tags=["metrics"])

LIST_PATH: Final = "/api/v1/analytics/metrics"
COMPUTE_PATH: Final = "/api/v1/analytics/metrics/{key}:compute"
Scalar = bool | int | float | str | None


class FilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dimension: str
    op: FilterOp
    values: list[Scalar] = Field(min_length=1, max_length=1000)


class ComputeRequest(BaseModel):
    """One metric over ``[start, end]`` (dates, both included) at ``grain``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    start: Annotated[dt.date, Field(strict=False, description="First day, YYYY-MM-DD.")]
    end: Annotated[dt.date, Field(strict=False, description="Last day, YYYY-MM-DD.")]
    grain: Grain
    group_by: list[str] = Field(default_factory=list, max_length=8)
    filters: list[FilterBody] = Field(default_factory=list, max_length=32)
    version: int | None = Field(default=None, ge=1, description="Default: the latest.")
    tenant: str | None = Field(default=None, description="Required for a platform_admin.")


class MetricInfo(BaseModel):
    key: str
    version: int
    description: str
    owner: str | None
    type: str
    explore: str | None
    time_dimension: str | None
    grains: list[str]
    dimensions: list[str]
    uses: list[str]
    freshness_slo_s: float | None
    registered_at: dt.datetime


class MetricList(BaseModel):
    metrics: list[MetricInfo]


class Freshness(BaseModel):
    last_refresh: dt.datetime | None
    lag_s: float | None
    slo_s: float
    status: str


class MetricRef(BaseModel):
    key: str
    version: int


class ComputeResult(BaseModel):
    metric: MetricRef
    grain: str
    columns: list[dict[str, str]]
    rows: list[list[Any]]
    freshness: Freshness
    elapsed_ms: float


def acting_tenant(principal: Principal, requested: str | None) -> str:
    """The one tenant a read acts for: the caller's own, or the one a platform admin names."""
    tenant = require_tenant(principal, requested)
    if tenant is None:
        raise ApiError(400, "tenant_required", "a platform_admin must name the tenant in 'tenant'")
    return tenant


@router.get(
    LIST_PATH,
    summary="Metric definitions: the latest version of each, or every version of one",
    response_model=MetricList,
    responses={404: {"description": "No metric with that key (with ?key=)."}},
)
def list_metrics(
    context: Ctx,
    principal: Caller,
    key: Annotated[str | None, Query(description="List every version of this metric.")] = None,
) -> Response:
    if key is None:
        versions = context.catalog.latest_metrics()
    else:
        versions = context.catalog.metric_versions(key) if is_valid_name(key) else []
        if not versions:
            raise ApiError(404, "not_found", f"no metric {key[:64]!r}")
    body = {"metrics": [describe(v) for v in versions]}
    return Response(orjson.dumps(body), media_type=JSON_TYPE)


@router.post(
    COMPUTE_PATH,
    summary="Compute one metric over a window in the caller's tenant",
    response_model=ComputeResult,
    responses={
        400: {"description": "The request does not fit the metric; the message says why."},
        403: {"description": "The caller may not act for that tenant."},
        404: {"description": "No such metric or version."},
        409: {"description": "The metric's explore is not built yet."},
    },
)
def compute_metric(key: str, body: ComputeRequest, context: Ctx, principal: Caller) -> Response:
    started = time.perf_counter()
    tenant = acting_tenant(principal, body.tenant)
    metric = context.metric_store.get(key, body.version) if is_valid_name(key) else None
    if metric is None:
        which = f"{key[:64]!r}" + ("" if body.version is None else f" version {body.version}")
        raise ApiError(404, "not_found", f"no metric {which}")
    try:
        request = MetricRequest(
            body.start,
            body.end,
            body.grain,
            tuple(body.group_by),
            tuple(Filter(f.dimension, f.op, tuple(f.values)) for f in body.filters),
        )
    except MetricRequestError as exc:
        raise ApiError(400, "invalid_metric_request", str(exc)) from None
    registry = context.metric_store.registry(metric)
    settings = context.settings
    try:
        prepared = prepare(context.exposed.current(), tenant, metric, registry, settings)
        result = run(prepared, metric, request, registry, settings)
    except SandboxClosedError:  # the pool was replaced in between: once more
        prepared = prepare(context.exposed.current(), tenant, metric, registry, settings)
        result = run(prepared, metric, request, registry, settings)
    last_refresh, slo = freshness_basis(context.catalog, settings, metric, registry, prepared)
    answer = {
        "metric": {"key": metric.key, "version": metric.version},
        "grain": request.grain,
        "columns": result.columns,
        "rows": result.rows,
        "freshness": freshness(last_refresh, slo, dt.datetime.now(dt.UTC)),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    return Response(orjson.dumps(answer), media_type=JSON_TYPE)
