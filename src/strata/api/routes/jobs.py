"""``GET /api/v1/analytics/etl/jobs/{job_id}``: a refresh job (a catalog run) and its steps.

A tenant's caller sees only the jobs started for its tenant; any other job, existing or
not, is the same 404, so ids cannot be probed across tenants.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Final

from fastapi import APIRouter
from pydantic import BaseModel

from strata.api.context import Caller, Ctx
from strata.api.errors import ApiError
from strata.catalog.errors import RunNotFoundError
from strata.catalog.records import RunRecord
from strata.core.access import Principal

router = APIRouter(tags=["jobs"])

PATH: Final = "/api/v1/analytics/etl/jobs/{job_id}"
_MAX_ID_CHARS: Final = 64  # run ids are UUIDs; anything longer is no job


class JobStep(BaseModel):
    model: str
    status: str
    rows_in: int | None
    rows_out: int | None
    error: str | None


class Job(BaseModel):
    job_id: str
    kind: str
    status: str
    projection: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_s: float | None
    error: str | None
    steps: list[JobStep]


@router.get(
    PATH,
    summary="A refresh job's status and steps",
    response_model=Job,
    responses={404: {"description": "No such job visible to the caller."}},
)
def get_job(job_id: str, context: Ctx, principal: Caller) -> Job:
    run = _visible_run(context.catalog.get_run, job_id, principal)
    steps = context.catalog.run_steps(run.run_id)
    duration = (
        None if run.finished_at is None else (run.finished_at - run.started_at).total_seconds()
    )
    projection = run.params.get("projection")
    return Job(
        job_id=run.run_id,
        kind=run.kind,
        status=run.status,
        projection=projection if isinstance(projection, str) else None,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_s=duration,
        error=run.error,
        steps=[
            JobStep(
                model=s.name,
                status=s.status,
                rows_in=s.rows_in,
                rows_out=s.rows_out,
                error=s.error,
            )
            for s in steps
        ],
    )


def _visible_run(
    get_run: Callable[[str], RunRecord], job_id: str, principal: Principal
) -> RunRecord:
    missing = ApiError(404, "not_found", f"no job {job_id[:_MAX_ID_CHARS]!r}")
    if len(job_id) > _MAX_ID_CHARS:
        raise missing
    try:
        run = get_run(job_id)
    except RunNotFoundError:
        raise missing from None
    if not principal.is_platform_admin and run.params.get("tenant") != principal.tenant:
        raise missing
    return run
