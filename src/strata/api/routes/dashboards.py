"""Dashboards and widgets (the seed's paths):

    POST /api/v1/analytics/dashboards                 create (tenant_admin, platform_admin)
    PUT  /api/v1/analytics/dashboards/{id}            change title/description (same roles)
    GET  /api/v1/analytics/dashboards                 the tenant's and the file dashboards
    GET  /api/v1/analytics/dashboards/{id}            one, with its widgets
    POST /api/v1/analytics/dashboards/{id}/widgets    add a widget (admins; checked first)
    GET  /api/v1/analytics/widgets/{id}/data          a widget's rows, through the cache

A caller of a tenant sees its tenant's dashboards and the file dashboards (no tenant, read
only: changing one is 409); any other dashboard or widget id is the same 404 as a missing
one. A platform admin names the tenant it acts for (``tenant``) where data or ownership
needs one.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from strata.api.auth import require_role, require_tenant
from strata.api.context import Caller, Ctx, ServeContext
from strata.api.errors import ApiError
from strata.api.results import JSON_TYPE
from strata.api.routes.metrics import FilterBody, acting_tenant
from strata.api.semantic import (
    freshness,
    freshness_basis,
    prepare,
    widget_cache_key,
    widget_result,
)
from strata.catalog.dashboards import (
    DESCRIPTION_LENGTH,
    TITLE_LENGTH,
    Dashboard,
    NewWidget,
    Widget,
    WidgetType,
)
from strata.catalog.errors import CatalogError
from strata.core.access import Principal
from strata.semantic.dashboards import DEFAULT_RANGE, check_dates, resolve_range, widget_problems
from strata.semantic.metrics import Grain
from strata.semantic.sandbox import SandboxClosedError

router = APIRouter(tags=["dashboards"])

DASHBOARDS: Final = "/api/v1/analytics/dashboards"
DASHBOARD: Final = "/api/v1/analytics/dashboards/{dashboard_id}"
WIDGETS: Final = "/api/v1/analytics/dashboards/{dashboard_id}/widgets"
WIDGET_DATA: Final = "/api/v1/analytics/widgets/{widget_id}/data"
_ADMINS: Final = ("tenant_admin", "platform_admin")


class NewDashboardBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(min_length=1, max_length=TITLE_LENGTH)
    description: str = Field(default="", max_length=DESCRIPTION_LENGTH)
    tenant: str | None = Field(default=None, description="Required for a platform_admin.")


class DashboardChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: str | None = Field(default=None, min_length=1, max_length=TITLE_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_LENGTH)


class NewWidgetBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(min_length=1, max_length=TITLE_LENGTH)
    type: WidgetType
    metric: str
    version: int | None = Field(default=None, ge=1, description="Pin a version; default latest.")
    grain: Grain
    group_by: list[str] = Field(default_factory=list, max_length=2)
    filters: list[FilterBody] = Field(default_factory=list, max_length=32)
    range: str = Field(default=DEFAULT_RANGE, max_length=64)


class WidgetOut(BaseModel):
    id: str
    title: str
    type: str
    metric: dict[str, Any]
    grain: str
    group_by: list[str]
    filters: list[dict[str, Any]]
    range: str
    position: int
    data_url: str


class DashboardOut(BaseModel):
    id: str
    tenant: str | None
    title: str
    description: str
    source: str
    read_only: bool
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    widgets: list[WidgetOut]


class DashboardList(BaseModel):
    dashboards: list[DashboardOut]


def _widget_out(widget: Widget) -> WidgetOut:
    return WidgetOut(
        id=widget.id,
        title=widget.title,
        type=widget.type,
        metric={"key": widget.metric_key, "version": widget.metric_version},
        grain=widget.grain,
        group_by=list(widget.group_by),
        filters=list(widget.filters),
        range=widget.default_range,
        position=widget.position,
        data_url=WIDGET_DATA.format(widget_id=widget.id),
    )


def _out(dashboard: Dashboard) -> DashboardOut:
    return DashboardOut(
        id=dashboard.id,
        tenant=dashboard.tenant,
        title=dashboard.title,
        description=dashboard.description,
        source=dashboard.source,
        read_only=dashboard.source == "file",
        created_by=dashboard.created_by,
        created_at=dashboard.created_at,
        updated_at=dashboard.updated_at,
        widgets=[_widget_out(w) for w in dashboard.widgets],
    )


def _visible(owner: str | None, principal: Principal) -> bool:
    return owner is None or principal.is_platform_admin or owner == principal.tenant


def _dashboard(context: ServeContext, dashboard_id: str, principal: Principal) -> Dashboard:
    found = context.catalog.dashboard(dashboard_id)
    if found is None or not _visible(found.tenant, principal):
        raise ApiError(404, "not_found", f"no dashboard {dashboard_id[:64]!r}")
    return found


def _writable(context: ServeContext, dashboard_id: str, principal: Principal) -> Dashboard:
    require_role(principal, *_ADMINS)
    found = _dashboard(context, dashboard_id, principal)
    if found.source != "api":
        raise ApiError(
            409,
            "read_only",
            f"dashboard {found.id!r} comes from the project's dashboards/ files: "
            "change the file instead",
        )
    return found


@router.post(DASHBOARDS, status_code=201, summary="Create a dashboard", response_model=DashboardOut)
def create_dashboard(body: NewDashboardBody, context: Ctx, principal: Caller) -> DashboardOut:
    require_role(principal, *_ADMINS)
    tenant = acting_tenant(principal, body.tenant)
    created = context.catalog.create_dashboard(
        tenant, body.title, body.description, created_by=principal.subject
    )
    return _out(created)


@router.put(
    DASHBOARD,
    summary="Change a dashboard's title or description",
    response_model=DashboardOut,
    responses={409: {"description": "A file dashboard: change its file."}},
)
def update_dashboard(
    dashboard_id: str, body: DashboardChange, context: Ctx, principal: Caller
) -> DashboardOut:
    found = _writable(context, dashboard_id, principal)
    updated = context.catalog.update_dashboard(
        found.id, title=body.title, description=body.description
    )
    if updated is None:  # deleted in between
        raise ApiError(404, "not_found", f"no dashboard {dashboard_id[:64]!r}")
    return _out(updated)


@router.get(DASHBOARDS, summary="The tenant's dashboards and the file dashboards")
def list_dashboards(
    context: Ctx,
    principal: Caller,
    tenant: Annotated[str | None, Query(description="Platform admins: one tenant's.")] = None,
) -> DashboardList:
    scope = require_tenant(principal, tenant)
    return DashboardList(dashboards=[_out(d) for d in context.catalog.list_dashboards(scope)])


@router.get(DASHBOARD, summary="One dashboard with its widgets", response_model=DashboardOut)
def get_dashboard(dashboard_id: str, context: Ctx, principal: Caller) -> DashboardOut:
    return _out(_dashboard(context, dashboard_id, principal))


@router.post(
    WIDGETS,
    status_code=201,
    summary="Add a widget to a dashboard",
    response_model=WidgetOut,
    responses={400: {"description": "The widget does not fit its metric; reasons given."}},
)
def add_widget(
    dashboard_id: str, body: NewWidgetBody, context: Ctx, principal: Caller
) -> WidgetOut:
    found = _writable(context, dashboard_id, principal)
    widget = NewWidget(
        title=body.title,
        type=body.type,
        metric_key=body.metric,
        metric_version=body.version,
        grain=body.grain,
        group_by=tuple(body.group_by),
        filters=tuple(f.model_dump() for f in body.filters),
        default_range=body.range,
    )
    metric = context.metric_store.get(body.metric, body.version) if body.metric else None
    if metric is None:
        which = f"{body.metric[:64]!r}" + (
            "" if body.version is None else f" version {body.version}"
        )
        raise ApiError(400, "invalid_widget", f"widget is not valid: no metric {which}")
    problems = widget_problems(widget, metric)
    if problems:
        raise ApiError(400, "invalid_widget", "widget is not valid: " + "; ".join(problems))
    try:
        added = context.catalog.add_widget(found.id, widget)
    except CatalogError as exc:
        raise ApiError(400, "invalid_widget", f"widget is not valid: {exc}") from None
    if added is None:
        raise ApiError(404, "not_found", f"no dashboard {dashboard_id[:64]!r}")
    return _widget_out(added)


@router.get(
    WIDGET_DATA,
    summary="A widget's data over a range (default: the widget's own), cached",
    responses={404: {"description": "No such widget visible to the caller."}},
)
def widget_data(
    widget_id: str,
    context: Ctx,
    principal: Caller,
    start: Annotated[dt.date | None, Query(description="First day, YYYY-MM-DD.")] = None,
    end: Annotated[dt.date | None, Query(description="Last day, YYYY-MM-DD.")] = None,
    tenant: Annotated[str | None, Query(description="Required for a platform_admin.")] = None,
) -> Response:
    started = time.perf_counter()
    scope = acting_tenant(principal, tenant)
    widget = context.catalog.widget(widget_id)
    if widget is None or widget.tenant not in (None, scope):
        raise ApiError(404, "not_found", f"no widget {widget_id[:64]!r}")
    first, last = _range(widget, start, end)
    metric = context.metric_store.get(widget.metric_key, widget.metric_version)
    if metric is None:
        raise ApiError(
            409,
            "metric_unavailable",
            f"widget {widget.id}: metric '{widget.metric_key}' "
            f"version {widget.metric_version} is not registered",
        )
    store, settings = context.metric_store, context.settings
    registry = store.registry(metric)
    try:
        prepared = prepare(context.exposed.current(), scope, metric, registry, settings)
    except SandboxClosedError:
        prepared = prepare(context.exposed.current(), scope, metric, registry, settings)
    key = widget_cache_key(
        widget, scope, metric, registry, prepared, first, last, context.cache.prefix
    )
    value = context.cache.get(key)
    cached = value is not None
    if value is None:
        try:
            result = widget_result(widget, metric, registry, prepared, settings, first, last)
        except SandboxClosedError:  # replaced between prepare and run: the next read retries
            raise ApiError(503, "unavailable", "the tenant's data changed; retry") from None
        last_refresh, slo = freshness_basis(context.catalog, settings, metric, registry, prepared)
        value = {
            "columns": result.columns,
            "rows": result.rows,
            "last_refresh": last_refresh,
            "slo_s": slo,
        }
        context.cache.put(key, value)
    answer = {
        "widget": {"id": widget.id, "title": widget.title, "type": widget.type},
        "metric": {"key": metric.key, "version": metric.version},
        "grain": widget.grain,
        "start": first.isoformat(),
        "end": last.isoformat(),
        "columns": value["columns"],
        "rows": value["rows"],
        "freshness": freshness(value["last_refresh"], value["slo_s"], dt.datetime.now(dt.UTC)),
        "cached": cached,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
    }
    return Response(orjson.dumps(answer), media_type=JSON_TYPE)


def _range(widget: Widget, start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    if (start is None) != (end is None):
        raise ApiError(400, "invalid_request", "give both start and end, or neither")
    try:
        if start is None or end is None:
            return resolve_range(widget.default_range, dt.datetime.now(dt.UTC).date())
        check_dates(start, end)
    except ValueError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    return start, end
