"""The run ledger: one row per run (transform, extract, ingest...) and one per step."""

from __future__ import annotations

import json
import uuid
from typing import Any, Final, cast

from sqlalchemy import select, update

from strata.catalog import schema as db
from strata.catalog.base import CatalogBase, bounded
from strata.catalog.errors import CatalogError, RunNotFoundError, RunStateError
from strata.catalog.records import RunRecord, StepRecord
from strata.catalog.schema import (
    FINISHED_STATUSES,
    NAME_LENGTH,
    RUN_STATUSES,
    STEP_STATUSES,
    FinishedStatus,
    RunStatus,
    StepStatus,
)
from strata.core.identifiers import validate_name
from strata.core.logging import fields, get_logger

log = get_logger(__name__)

INTERRUPTED: Final = "interrupted"
_STEP_DONE: Final = (*FINISHED_STATUSES, "skipped")


class RunLedger(CatalogBase):
    def start_run(
        self, kind: str, params: dict[str, Any] | None = None, triggered_by: str | None = None
    ) -> str:
        """Record a run of ``kind`` (``transform``, ``extract``...) as running; returns its id."""
        validate_name(kind, "run kind")
        if triggered_by is not None:
            bounded(triggered_by, NAME_LENGTH, "triggered_by")
        params = dict(params or {})
        try:
            json.dumps(params)
        except (TypeError, ValueError) as exc:
            raise CatalogError(f"run params must be JSON-serialisable: {exc}") from exc
        run_id = str(uuid.uuid4())
        with self._session(write=True) as session:
            session.add(
                db.Run(
                    id=run_id,
                    kind=kind,
                    status="running",
                    started_at=self._now(),
                    params=params,
                    triggered_by=triggered_by,
                )
            )
        log.info("run started", extra=fields(run_id=run_id, kind=kind))
        return run_id

    def finish_run(
        self, run_id: str, status: FinishedStatus, error: str | None = None
    ) -> RunRecord:
        """Close a queued or running run; finishing a finished run raises ``RunStateError``."""
        if status not in FINISHED_STATUSES:
            raise CatalogError(f"a run finishes as one of {FINISHED_STATUSES}, not {status!r}")
        with self._session(write=True) as session:
            run = session.get(db.Run, run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if run.finished_at is not None:
                raise RunStateError(run_id, run.status, f"finish it as {status}")
            run.status, run.error, run.finished_at = status, error, self._now()
            record = _run_record(run)
        log.info("run finished", extra=fields(run_id=run_id, status=status))
        return record

    def get_run(self, run_id: str) -> RunRecord:
        with self._session(write=False) as session:
            run = session.get(db.Run, run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            return _run_record(run)

    def list_runs(
        self, kind: str | None = None, status: RunStatus | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """The newest runs first, optionally only of one kind and/or status."""
        if limit < 1:
            raise CatalogError(f"list_runs limit must be >= 1, got {limit}")
        query = select(db.Run).order_by(db.Run.started_at.desc(), db.Run.id).limit(limit)
        if kind is not None:
            query = query.where(db.Run.kind == kind)
        if status is not None:
            query = query.where(db.Run.status == status)
        with self._session(write=False) as session:
            return [_run_record(run) for run in session.scalars(query)]

    def mark_interrupted_runs(self) -> int:
        """Fail every run (and its steps) still 'running'; returns how many runs changed.

        Call it when the process that executes runs starts: a run still 'running' then was
        left by a process that died. Several live workers sharing one catalog (later) need
        per-worker heartbeats instead, or this would fail their live runs.
        """
        now = self._now()
        running = select(db.Run.id).where(db.Run.status == "running")
        with self._session(write=True) as session:
            session.execute(
                update(db.RunStep)
                .where(db.RunStep.run_id.in_(running), db.RunStep.status == "running")
                .values(status="failed", error=INTERRUPTED, finished_at=now)
            )
            result = session.execute(
                update(db.Run)
                .where(db.Run.status == "running")
                .values(status="failed", error=INTERRUPTED, finished_at=now)
            )
            count = int(getattr(result, "rowcount", 0))
        if count:
            log.warning("interrupted runs marked failed", extra=fields(count=count))
        return count

    def record_step(
        self,
        run_id: str,
        name: str,
        status: StepStatus,
        *,
        rows_in: int | None = None,
        rows_out: int | None = None,
        error: str | None = None,
    ) -> StepRecord:
        """Create or update step ``name`` (usually a model) of a run; call it at start and end.

        ``started_at`` is set the first time the step is seen past 'queued', ``finished_at``
        when it reaches a final status. Row counts left as ``None`` keep their stored value.
        """
        if status not in STEP_STATUSES:
            raise CatalogError(f"step status must be one of {STEP_STATUSES}, not {status!r}")
        bounded(name, NAME_LENGTH, "step name")
        now = self._now()
        with self._session(write=True) as session:
            self._require_run(session, run_id)
            step = session.scalars(
                select(db.RunStep).where(db.RunStep.run_id == run_id, db.RunStep.name == name)
            ).one_or_none()
            if step is None:
                step = db.RunStep(run_id=run_id, name=name)
                session.add(step)
            step.status = status
            if step.started_at is None and status != "queued":
                step.started_at = now
            step.finished_at = now if status in _STEP_DONE else None
            if rows_in is not None:
                step.rows_in = rows_in
            if rows_out is not None:
                step.rows_out = rows_out
            step.error = error
            session.flush()
            return _step_record(step)

    def run_steps(self, run_id: str) -> list[StepRecord]:
        """The steps of a run in the order they were first recorded."""
        query = select(db.RunStep).where(db.RunStep.run_id == run_id).order_by(db.RunStep.id)
        with self._session(write=False) as session:
            return [_step_record(step) for step in session.scalars(query)]


def _run_record(run: db.Run) -> RunRecord:
    if run.status not in RUN_STATUSES:
        raise CatalogError(f"run {run.id} has unknown status {run.status!r}")
    return RunRecord(
        run_id=run.id,
        kind=run.kind,
        status=cast(RunStatus, run.status),
        started_at=run.started_at,
        finished_at=run.finished_at,
        error=run.error,
        params=dict(run.params),
        triggered_by=run.triggered_by,
    )


def _step_record(step: db.RunStep) -> StepRecord:
    if step.status not in STEP_STATUSES:
        raise CatalogError(f"step {step.name!r} has unknown status {step.status!r}")
    return StepRecord(
        run_id=step.run_id,
        name=step.name,
        status=cast(StepStatus, step.status),
        started_at=step.started_at,
        finished_at=step.finished_at,
        rows_in=step.rows_in,
        rows_out=step.rows_out,
        error=step.error,
    )
