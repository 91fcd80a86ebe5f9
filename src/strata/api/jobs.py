"""Refresh jobs: transform runs the API starts and runs on one background worker.

A refresh is recorded in the catalog as a running ``transform`` run before anything else,
so the caller gets its id at once; the worker then builds it with ``run_project``, which
adopts that run. One worker, so runs never build the same tables at the same time. A
tenant's refresh is scoped to that tenant (its bronze, its rows of each table): one tenant
can neither rewrite nor slow down with a full rebuild what the others are served.

A run must never stay 'running': if the project no longer loads, the selection is wrong or
anything else fails before ``run_project`` finishes the run, the job finishes it as
failed with the error. Jobs still queued at shutdown are failed the same way; one running
then is waited for (a thread cannot be stopped). ``mark_interrupted_runs`` at the next
start covers a process that died outright.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Final, Protocol

from strata.catalog.errors import CatalogError, CatalogUnavailableError, RunStateError
from strata.catalog.schema import NAME_LENGTH
from strata.catalog.store import Catalog
from strata.core.access import Principal
from strata.core.errors import Transient
from strata.core.logging import fields, get_logger
from strata.quality.gate import run_checked
from strata.transform.runner import RunSummary

log = get_logger(__name__)

RUN_KIND: Final = "transform"
_CANCELLED: Final = "cancelled: the server shut down before the job started"
_UNFINISHED: Final = "the job ended without finishing its run"


class JobsClosedError(Transient):
    """The server is shutting down and takes no new jobs."""

    def __init__(self) -> None:
        super().__init__("the server is shutting down; submit the refresh again later")


class RunProject(Protocol):
    """``run_project``'s shape, as the job calls it (tests pass their own)."""

    def __call__(
        self,
        root: Path,
        *,
        select: str | None,
        catalog: Catalog,
        run_id: str | None,
        tenant: str | None,
    ) -> RunSummary: ...


class JobRunner:
    """Records refresh runs and builds them one at a time on a background thread."""

    def __init__(
        self,
        root: Path,
        catalog: Catalog,
        *,
        on_finished: Callable[[], None] | None = None,
        run: RunProject = run_checked,
    ) -> None:
        self.root = root
        self.catalog = catalog
        self._on_finished = on_finished
        self._run = run
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-job")
        self._lock = threading.Lock()
        self._pending: dict[str, Future[None]] = {}
        self._closing = False

    def submit(self, projection: str, select: str, principal: Principal) -> str:
        """Record a run refreshing ``projection`` (built by ``select``) and queue it; its id.

        The run's ``tenant`` is the caller's tenant, or ``None`` for a platform admin: it
        scopes the build to that tenant, and decides which tenants may see the job.
        """
        tenant = None if principal.is_platform_admin else principal.tenant
        params = {"projection": projection, "select": select, "tenant": tenant}
        if self.closing:
            raise JobsClosedError
        run_id = self.catalog.start_run(
            RUN_KIND, params=params, triggered_by=principal.subject[:NAME_LENGTH]
        )
        future = self._queue(run_id, select, tenant)
        if future is None:
            self._settle(run_id, _CANCELLED)
            raise JobsClosedError
        future.add_done_callback(lambda _: self._forget(run_id))
        log.info("refresh queued", extra=fields(run_id=run_id, projection=projection))
        return run_id

    @property
    def closing(self) -> bool:
        with self._lock:
            return self._closing

    def _queue(self, run_id: str, select: str, tenant: str | None) -> Future[None] | None:
        """The job's future, or ``None`` if closing: checked under the lock ``close`` takes,
        so every job ``close`` does not see queued is one refused here."""
        with self._lock:
            if self._closing:
                return None
            future = self._executor.submit(self._execute, run_id, select, tenant)
            self._pending[run_id] = future
            return future

    def close(self) -> None:
        """Fail the queued jobs, wait for the running one, stop the worker."""
        with self._lock:
            self._closing = True
            pending = dict(self._pending)
        # Cancelled and failed before waiting: the running job may take a while.
        for run_id, future in pending.items():
            if future.cancel():
                self._settle(run_id, _CANCELLED)
        self._executor.shutdown(wait=True)

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self._pending.pop(run_id, None)

    def _execute(self, run_id: str, select: str, tenant: str | None) -> None:
        error = _UNFINISHED
        try:
            self._run(self.root, select=select, catalog=self.catalog, run_id=run_id, tenant=tenant)
        except Exception as exc:  # the job's outcome is the run's status, not an exception
            error = f"run aborted: {_one_line(exc)}"
            log.warning("refresh failed", extra=fields(run_id=run_id, error=error))
        finally:
            self._settle(run_id, error)
            if self._on_finished is not None:
                self._on_finished()

    def _settle(self, run_id: str, error: str) -> None:
        """Finish the run as failed with ``error`` unless it is finished already."""
        try:
            if self.catalog.get_run(run_id).finished:
                return
            self.catalog.finish_run(run_id, "failed", error)
        except RunStateError:
            pass  # finished in between: its own outcome stands
        except (CatalogError, CatalogUnavailableError):
            # Left 'running'; the next start's mark_interrupted_runs fails it.
            log.exception("could not record a failed run", extra=fields(run_id=run_id))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
