"""A workforce service that lands its workers in the Strata lake.

Run it with ``STRATA_LAKE=./lake uvicorn app:app``. The lake (a folder or an object store
URL) comes from ``STRATA_LAKE``, the local journal from ``STRATA_JOURNAL_DIR``.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request
from pydantic import BaseModel

from strata.ingest import IngestClient


class Worker(BaseModel):
    id: int
    name: str
    role: str


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client per process: it starts the background writer, and closing it on
    # shutdown lands whatever is still batched.
    with IngestClient(
        os.environ.get("STRATA_LAKE", "./lake"),
        namespace="wfm",
        source_service="wfm-service",
        journal_dir=os.environ.get("STRATA_JOURNAL_DIR", ".strata/journal"),
    ) as lake:
        app.state.lake = lake
        app.state.db = {}  # stands in for the service's own database
        yield


app = FastAPI(lifespan=lifespan)


def profile_row(company_id: str, worker: Worker) -> dict[str, Any]:
    return {"company_id": company_id, **worker.model_dump()}


@app.post("/companies/{company_id}/workers", status_code=201)
def create_worker(company_id: str, worker: Worker, request: Request) -> Worker:
    request.app.state.db[company_id, worker.id] = worker  # the service's transaction
    # After the commit. ingest() only appends to a local journal and returns (O(1)),
    # so there is no need for a background task; the lake write happens later.
    request.app.state.lake.ingest("profiles", company_id, profile_row(company_id, worker))
    return worker


@app.post("/companies/{company_id}/workers/import", status_code=202)
def import_workers(
    company_id: str, workers: list[Worker], request: Request, tasks: BackgroundTasks
) -> dict[str, int]:
    for worker in workers:
        request.app.state.db[company_id, worker.id] = worker
    # Encoding thousands of records is O(n): do it after the response is sent.
    # ingest_many is all-or-nothing, so a bad row never lands half an import.
    rows = [profile_row(company_id, worker) for worker in workers]
    tasks.add_task(request.app.state.lake.ingest_many, "profiles", company_id, rows)
    return {"accepted": len(rows)}
