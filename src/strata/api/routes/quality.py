"""``GET /api/v1/analytics/data-quality``: the latest result of every data-quality check.

A tenant's caller sees its own tenant's results (with sample rows of its own tenant only)
and the table-wide ones (schema checks, which hold no rows); a platform admin sees every
tenant's, or one tenant's with ``?tenant=``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from strata.api.context import Caller, Ctx
from strata.api.errors import ApiError
from strata.catalog.quality import StoredCheckResult
from strata.core.errors import InvalidIdentifierError
from strata.core.identifiers import validate_tenant

router = APIRouter(tags=["data quality"])

PATH: Final = "/api/v1/analytics/data-quality"


class QualityResult(BaseModel):
    table: str
    check: str
    kind: str
    tenant: str | None
    status: Literal["pass", "warn", "error"]
    severity: str
    failing: int | None
    measured: float | None
    threshold: str
    message: str
    samples: list[dict[str, Any]]
    table_version: int | None
    published: bool
    run_id: str | None
    checked_at: dt.datetime


class QualitySummary(BaseModel):
    passed: int
    warnings: int
    errors: int


class QualityReport(BaseModel):
    summary: QualitySummary
    results: list[QualityResult]


@router.get(
    PATH,
    summary="The latest data-quality results",
    response_model=QualityReport,
)
def data_quality(
    context: Ctx,
    principal: Caller,
    table: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[Literal["pass", "warn", "error"] | None, Query()] = None,
    tenant: Annotated[str | None, Query(max_length=64)] = None,
) -> QualityReport:
    if principal.is_platform_admin:
        scope = _tenant(tenant) if tenant is not None else None
    else:
        if tenant is not None and tenant != principal.tenant:
            raise ApiError(403, "forbidden", "a tenant's caller sees only its own tenant")
        scope = principal.tenant
    rows = context.catalog.latest_check_results(tenant=scope, table=table)
    if status is not None:
        rows = [r for r in rows if r.status == status]
    results = [_result(r) for r in rows]
    return QualityReport(
        summary=QualitySummary(
            passed=sum(r.status == "pass" for r in results),
            warnings=sum(r.status == "warn" for r in results),
            errors=sum(r.status == "error" for r in results),
        ),
        results=results,
    )


def _tenant(value: str) -> str:
    try:
        return validate_tenant(value)
    except InvalidIdentifierError as exc:
        raise ApiError(422, "invalid_tenant", str(exc)) from exc


def _result(row: StoredCheckResult) -> QualityResult:
    status: Literal["pass", "warn", "error"] = (
        "error" if row.status == "error" else "warn" if row.status == "warn" else "pass"
    )
    return QualityResult(
        table=row.table,
        check=row.check,
        kind=row.kind,
        tenant=row.tenant,
        status=status,
        severity=row.severity,
        failing=row.failing,
        measured=row.measured,
        threshold=row.threshold,
        message=row.message,
        samples=[dict(s) for s in row.samples],
        table_version=row.table_version,
        published=row.published,
        run_id=row.run_id,
        checked_at=row.created_at,
    )
