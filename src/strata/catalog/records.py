"""What the catalog hands back: frozen values, detached from any database session."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from strata.catalog.schema import RunStatus, StepStatus


class FileRef(NamedTuple):
    """A bronze file as the catalog tracks it: its lake path and size in bytes."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    kind: str
    status: RunStatus
    started_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None
    params: dict[str, Any]
    triggered_by: str | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True, slots=True)
class StepRecord:
    run_id: str
    name: str
    status: StepStatus
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    rows_in: int | None
    rows_out: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class ModelState:
    model: str
    last_run_id: str | None
    config_hash: str | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class TableVersion:
    table: str
    version: int
    row_count: int
    run_id: str | None
    created_at: dt.datetime
