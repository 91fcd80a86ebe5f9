"""``POST /api/v1/analytics/queries:run``: one read-only query over the caller's tenant.

Two walls stand between the caller's SQL and another tenant's rows: the SQL guard vets the
text against the exposed tables (wall 1), then the query runs in the tenant's locked-down
DuckDB sandbox, whose views hold only that tenant's files (wall 2). Before it runs, the
tenant's bytes of the tables it reads are checked against the scan budget.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Annotated, Final

import pyarrow as pa
from fastapi import APIRouter, Header
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from strata.api.auth import require_tenant
from strata.api.context import Caller, Ctx, ServeContext
from strata.api.errors import ApiError, classify
from strata.api.exposed import Served
from strata.api.results import ARROW_TYPE, CSV_TYPE, JSON_TYPE, negotiate, render
from strata.core.access import Principal
from strata.semantic.guard import GuardedQuery, QueryRefused, guard_query
from strata.semantic.sandbox import SandboxClosedError, SandboxQueryError

router = APIRouter(tags=["queries"])

PATH: Final = "/api/v1/analytics/queries:run"
Scalar = bool | int | float | str | None
# DuckDB binds larger Python ints as HUGEINT and wraps at 2**127; 64 bits is what columns hold.
_INT_RANGE: Final = range(-(2**63), 2**63)
# Vetting a query (two parses, two generations) costs ~2.5 ms, more than many queries take
# to run; dashboards send the same few queries again and again. Long SQL is not cached.
_GUARD_CACHE_SIZE: Final = 512
_GUARD_CACHE_MAX_SQL: Final = 8_000


class QueryRequest(BaseModel):
    """A query. ``max_rows`` and ``timeout_s`` may lower the server's limits, not raise them."""

    # Strict: "10" is not a number and 1 is not a string; unknown fields are mistakes.
    model_config = ConfigDict(extra="forbid", strict=True)

    sql: str = Field(description="One SELECT over the exposed tables; $name for parameters.")
    parameters: dict[str, Scalar] = Field(
        default_factory=dict, description="Values bound to the query's $name parameters."
    )
    tenant: str | None = Field(
        default=None, description="The tenant to query: required for a platform_admin."
    )
    max_rows: int | None = Field(default=None, ge=0)
    timeout_s: float | None = Field(default=None, gt=0)

    @field_validator("parameters", mode="before")
    @classmethod
    def _ints_fit(cls, value: object) -> object:
        if isinstance(value, dict):
            for name, item in value.items():
                if type(item) is int and item not in _INT_RANGE:
                    raise ValueError(
                        f"parameter {name!r} is outside the 64-bit integer range; "
                        "send it as a string and cast it in the query"
                    )
        return value


class Column(BaseModel):
    name: str
    type: str


class QueryResult(BaseModel):
    columns: list[Column]
    rows: list[list[object]]
    row_count: int
    truncated: bool
    elapsed_ms: float


@router.post(
    PATH,
    summary="Run one read-only SQL query over the caller's tenant",
    response_model=QueryResult,
    responses={
        200: {"content": {CSV_TYPE: {}, ARROW_TYPE: {}}},
        400: {"description": "The query was refused or failed; the message says why."},
        401: {"description": "Missing, invalid or revoked token."},
        403: {"description": "The caller may not query that tenant."},
        406: {"description": f"Accept names none of {JSON_TYPE}, {CSV_TYPE}, {ARROW_TYPE}."},
        408: {"description": "The query ran longer than its timeout."},
        413: {"description": "The request body is over the size limit."},
    },
)
def run_query(
    body: QueryRequest,
    context: Ctx,
    principal: Caller,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    started = time.perf_counter()
    fmt = negotiate(accept)  # before any work: a 406 costs nothing
    tenant = _tenant(principal, body.tenant)
    settings = context.settings
    max_rows = settings.max_rows if body.max_rows is None else min(body.max_rows, settings.max_rows)
    timeout_s = (
        settings.timeout_s if body.timeout_s is None else min(body.timeout_s, settings.timeout_s)
    )
    try:
        table = _execute(context, tenant, body, max_rows, timeout_s)
    except (QueryRefused, SandboxQueryError, ApiError) as exc:
        context.metrics.refusals.labels(_kind(exc)).inc()
        raise
    # The guard asked for one row more than max_rows, so a full page tells it was cut.
    truncated = table.num_rows > max_rows
    if truncated:
        table = table.slice(0, max_rows)
    context.metrics.rows.inc(table.num_rows)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return render(table, fmt, truncated=truncated, elapsed_ms=elapsed_ms)


def _tenant(principal: Principal, requested: str | None) -> str:
    tenant = require_tenant(principal, requested)
    if tenant is None:  # only a platform admin acts for all tenants, and a query cannot
        raise ApiError(
            400, "tenant_required", "a platform_admin must name the tenant to query in 'tenant'"
        )
    return tenant


def _execute(
    context: ServeContext, tenant: str, body: QueryRequest, max_rows: int, timeout_s: float
) -> pa.Table:
    try:
        return _run(context.exposed.current(), context, tenant, body, max_rows, timeout_s)
    except SandboxClosedError:
        # The pool was replaced (a table appeared) between taking it and using it.
        return _run(context.exposed.current(), context, tenant, body, max_rows, timeout_s)


def _run(
    served: Served,
    context: ServeContext,
    tenant: str,
    body: QueryRequest,
    max_rows: int,
    timeout_s: float,
) -> pa.Table:
    guarded = vet(body.sql, tuple(sorted(served.exposed)), body.parameters, max_rows)
    sandbox = served.pool.get(tenant)
    _check_budget(context, served, guarded, {t.name: t.bytes for t in sandbox.tables})
    return sandbox.run(guarded.sql, body.parameters, timeout_s=timeout_s)


def vet(
    sql: str, exposed: tuple[str, ...], parameters: Mapping[str, Scalar], max_rows: int
) -> GuardedQuery:
    """``guard_query``, remembered for short SQL. The guard is pure, and what it checks of
    the parameters is their names and exact types, so those are part of the key."""
    if len(sql) > _GUARD_CACHE_MAX_SQL:
        return guard_query(sql, exposed, parameters=parameters, max_rows=max_rows)
    signature = tuple(sorted((name, type(value)) for name, value in parameters.items()))
    return _vet_cached(sql, exposed, signature, max_rows)


@functools.lru_cache(maxsize=_GUARD_CACHE_SIZE)
def _vet_cached(
    sql: str, exposed: tuple[str, ...], signature: tuple[tuple[str, type], ...], max_rows: int
) -> GuardedQuery:
    # A stand-in value of each exact type: the guard looks at names and types only.
    stand_ins = {name: _STAND_IN[kind] for name, kind in signature}
    return guard_query(sql, exposed, parameters=stand_ins, max_rows=max_rows)


_STAND_IN: Final[dict[type, Scalar]] = {
    type(None): None,
    bool: False,
    int: 0,
    float: 0.0,
    str: "",
}


def _check_budget(
    context: ServeContext, served: Served, guarded: GuardedQuery, sizes: dict[str, int]
) -> None:
    """Refuse a query whose tables hold more of the tenant's bytes than the scan budget.

    A full scan is what a filter cannot rule out in advance, so the budget bounds the worst
    case, the way the seed's "bytes scanned" cap does.
    """
    tables = served.sources(guarded.tables)
    scanned = sum(sizes.get(t, 0) for t in tables)
    budget = context.settings.scan_budget_bytes
    if scanned > budget:
        raise ApiError(
            400,
            "scan_budget_exceeded",
            f"query reads {', '.join(tables)}: {scanned} bytes of this tenant's data, over "
            f"the scan budget of {budget} bytes",
        )


def _kind(exc: QueryRefused | SandboxQueryError | ApiError) -> str:
    if isinstance(exc, ApiError):
        return exc.code
    found = classify(exc)
    return found[1] if found is not None else "query_failed"
