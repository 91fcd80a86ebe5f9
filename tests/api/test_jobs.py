"""``JobRunner``: a refresh is recorded at once, built in the background, and its run never
stays 'running', whatever happens to the job."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from strata.api.jobs import JobRunner, JobsClosedError
from strata.catalog.records import RunRecord
from strata.catalog.store import Catalog
from strata.core.access import Principal
from strata.transform.runner import RunSummary

ADMIN = Principal(tenant="acme", role="tenant_admin", subject="key-1", via="api_key")
PLATFORM = Principal(tenant=None, role="platform_admin", subject="ops", via="jwt")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    with Catalog.open(f"sqlite:///{tmp_path / 'catalog.db'}") as opened:
        yield opened


class FakeRun:
    """Stands in for ``run_project``: waits for ``release``, then ends as told."""

    def __init__(self, catalog: Catalog, outcome: str = "succeeded") -> None:
        self.catalog = catalog
        self.outcome = outcome
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls: list[tuple[str | None, str, str | None]] = []

    def __call__(
        self,
        root: Path,
        *,
        select: str | None,
        catalog: Catalog,
        run_id: str | None,
        tenant: str | None,
    ) -> RunSummary:
        assert run_id is not None
        self.calls.append((select, run_id, tenant))
        self.started.set()
        self.release.wait(30)
        if self.outcome == "raise":
            raise RuntimeError("boom\nsecond line")
        if self.outcome == "succeeded":
            self.catalog.finish_run(run_id, "succeeded")
        return RunSummary(run_id, ())  # "unfinished": returns, the run left running


def wait_until_finished(catalog: Catalog, run_id: str) -> RunRecord:
    """The run once it is finished; the deadline only stops a hung test."""
    give_up = time.monotonic() + 30
    while not (run := catalog.get_run(run_id)).finished and time.monotonic() < give_up:
        time.sleep(0.01)
    return run


def test_submit_records_the_run_and_returns_before_it_runs(
    tmp_path: Path, catalog: Catalog
) -> None:
    run = FakeRun(catalog)
    finished: list[str] = []
    runner = JobRunner(tmp_path, catalog, run=run, on_finished=lambda: finished.append("x"))
    try:
        job_id = runner.submit("gold.dim_workers", "+dim_workers", ADMIN)
        record = catalog.get_run(job_id)
        assert (record.status, record.kind, record.triggered_by) == (
            "running",
            "transform",
            "key-1",
        )
        assert record.params == {
            "projection": "gold.dim_workers",
            "select": "+dim_workers",
            "tenant": "acme",
        }
        run.release.set()
        assert wait_until_finished(catalog, job_id).status == "succeeded"
    finally:
        runner.close()
    assert run.calls == [("+dim_workers", job_id, "acme")]
    assert finished == ["x"]


def test_a_platform_admins_job_has_no_tenant(tmp_path: Path, catalog: Catalog) -> None:
    run = FakeRun(catalog)
    run.release.set()
    runner = JobRunner(tmp_path, catalog, run=run)
    job_id = runner.submit("gold.dim_workers", "+dim_workers", PLATFORM)
    runner.close()
    assert catalog.get_run(job_id).params["tenant"] is None
    assert run.calls == [("+dim_workers", job_id, None)]  # every tenant's rows


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        ("raise", "run aborted: boom second line"),
        ("unfinished", "the job ended without finishing its run"),
    ],
)
def test_a_job_that_does_not_finish_its_run_fails_it(
    tmp_path: Path, catalog: Catalog, outcome: str, error: str
) -> None:
    run = FakeRun(catalog, outcome)
    run.release.set()
    runner = JobRunner(tmp_path, catalog, run=run)
    job_id = runner.submit("gold.x", "+x", ADMIN)
    runner.close()
    record = catalog.get_run(job_id)
    assert (record.status, record.error) == ("failed", error)


def test_a_project_that_does_not_load_fails_the_run(tmp_path: Path, catalog: Catalog) -> None:
    runner = JobRunner(tmp_path / "missing", catalog)  # the real run_project
    job_id = runner.submit("gold.x", "+x", ADMIN)
    runner.close()
    record = catalog.get_run(job_id)
    assert record.status == "failed"
    assert record.error is not None
    assert record.error.startswith("run aborted: strata.toml: ")


def test_close_fails_queued_jobs_and_waits_for_the_running_one(
    tmp_path: Path, catalog: Catalog
) -> None:
    run = FakeRun(catalog)
    runner = JobRunner(tmp_path, catalog, run=run)
    running = runner.submit("gold.a", "+a", ADMIN)
    assert run.started.wait(30)
    queued = runner.submit("gold.b", "+b", ADMIN)
    closer = threading.Thread(target=runner.close)
    closer.start()
    cancelled = wait_until_finished(catalog, queued)
    assert (cancelled.status, cancelled.error) == (
        "failed",
        "cancelled: the server shut down before the job started",
    )
    assert catalog.get_run(running).status == "running"  # still waited for
    run.release.set()
    closer.join(30)
    assert not closer.is_alive()
    assert catalog.get_run(running).status == "succeeded"
    assert [call[1] for call in run.calls] == [running]
    with pytest.raises(JobsClosedError):
        runner.submit("gold.c", "+c", ADMIN)
    assert len(catalog.list_runs()) == 2  # the refused job was never recorded
