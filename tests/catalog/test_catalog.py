"""The catalog against real databases: a SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from strata.catalog import (
    Catalog,
    CatalogConfig,
    CatalogError,
    CatalogSchemaError,
    CatalogUnavailableError,
    FileRef,
    RunNotFoundError,
    RunStateError,
    TableVersionExistsError,
    migrate,
)
from strata.catalog.config import engine_url
from strata.catalog.schema import Base
from strata.core.errors import ConfigError, InvalidIdentifierError, Terminal, Transient

TABLES = {
    "runs",
    "run_steps",
    "model_state",
    "consumed_files",
    "table_versions",
    "api_keys",
    "metric_versions",
    "dashboards",
    "watermarks",
    "widgets",
    "check_results",
}


class StepClock:
    """A clock that advances one second per reading, so ordering by time is deterministic."""

    def __init__(self, start: dt.datetime) -> None:
        self._us = int(start.timestamp() * 1_000_000)

    def __call__(self) -> int:
        self._us += 1_000_000
        return self._us


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(engine_url(url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


# -- schema and migrations ------------------------------------------------------------------


def test_open_creates_schema_from_empty_and_reopening_is_idempotent(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        assert catalog.schema_revision() == migrate.head_revision() == "0007"
        run_id = catalog.start_run("transform")
    assert _tables(catalog_url) == TABLES | {migrate.VERSION_TABLE}

    with Catalog.open(catalog_url) as again:
        assert again.schema_revision() == migrate.head_revision()
        assert again.get_run(run_id).status == "running"


def test_models_match_the_migrated_schema(catalog: Catalog, catalog_url: str) -> None:
    """schema.py and the revisions must describe the same tables (autogenerate sees no diff)."""
    engine = sa.create_engine(engine_url(catalog_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE}
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def _names_in_database(url: str) -> set[str]:
    engine = sa.create_engine(engine_url(url))
    try:
        inspector = sa.inspect(engine)
        names: set[str] = set()
        for table in TABLES:
            names.add(str(inspector.get_pk_constraint(table)["name"]))
            for group in (
                inspector.get_foreign_keys(table),
                inspector.get_unique_constraints(table),
                inspector.get_check_constraints(table),
                inspector.get_indexes(table),
            ):
                names.update(str(item["name"]) for item in group)
        return names
    finally:
        engine.dispose()


def test_constraint_names_follow_the_models_naming_convention(
    catalog: Catalog, catalog_url: str
) -> None:
    """Later revisions alter constraints by name, so the migrated names must be the models'."""
    expected = {
        str(item.name) for table in Base.metadata.sorted_tables for item in table.constraints
    }
    expected |= {
        str(index.name) for table in Base.metadata.sorted_tables for index in table.indexes
    }
    assert _names_in_database(catalog_url) == expected


def test_downgrade_to_base_then_upgrade_to_head(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as catalog:
        catalog.start_run("ingest")
    engine = sa.create_engine(engine_url(catalog_url))
    try:
        with engine.begin() as connection:
            migrate.downgrade(connection, "base")
        assert _tables(catalog_url) & TABLES == set()
        with engine.begin() as connection:
            assert migrate.current_revision(connection) is None
            migrate.upgrade(connection, "head")
    finally:
        engine.dispose()
    assert _tables(catalog_url) >= TABLES
    with Catalog.open(catalog_url) as catalog:
        assert catalog.schema_revision() == migrate.head_revision()
        assert catalog.list_runs() == []


def test_concurrent_opens_of_a_fresh_catalog_all_succeed(catalog_url: str) -> None:
    errors: list[BaseException] = []

    def open_once() -> None:
        try:
            Catalog.open(catalog_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_concurrent_processes_opening_a_fresh_catalog_all_succeed(catalog_url: str) -> None:
    """Processes are serialised by the database (advisory lock / BEGIN IMMEDIATE)."""
    script = "import sys; from strata.catalog import Catalog; Catalog.open(sys.argv[1]).close()"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, catalog_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    failures = []
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            failures.append(stderr.strip().splitlines()[-1:])
    assert failures == []
    with Catalog.open(catalog_url) as catalog:
        assert catalog.schema_revision() == migrate.head_revision()


def test_a_schema_from_a_newer_strata_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    Catalog.open(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(sa.table(migrate.VERSION_TABLE, sa.column("version_num"))).values(
                version_num="9999"
            )
        )
    engine.dispose()
    with pytest.raises(CatalogSchemaError, match="9999"):
        Catalog.open(url)


# -- runs -----------------------------------------------------------------------------------


def test_run_lifecycle(catalog: Catalog) -> None:
    run_id = catalog.start_run("transform", {"select": ["silver"], "full": False}, "cli:alice")
    run = catalog.get_run(run_id)
    assert (run.kind, run.status, run.triggered_by) == ("transform", "running", "cli:alice")
    assert run.params == {"select": ["silver"], "full": False}
    assert run.started_at.tzinfo is not None
    assert run.finished_at is None

    step = catalog.record_step(run_id, "silver_orders", "running", rows_in=120)
    assert step.started_at is not None
    assert step.finished_at is None
    step = catalog.record_step(run_id, "silver_orders", "succeeded", rows_out=118)
    assert (step.rows_in, step.rows_out, step.status) == (120, 118, "succeeded")
    assert step.finished_at is not None
    assert step.started_at is not None
    assert step.finished_at >= step.started_at
    catalog.record_step(run_id, "gold_revenue", "skipped", error="upstream failed")
    assert [s.name for s in catalog.run_steps(run_id)] == ["silver_orders", "gold_revenue"]

    done = catalog.finish_run(run_id, "succeeded")
    assert done.status == "succeeded"
    assert done.finished
    assert done.finished_at is not None
    assert done.finished_at >= done.started_at
    assert catalog.get_run(run_id) == done

    with pytest.raises(RunStateError, match="succeeded"):
        catalog.finish_run(run_id, "failed", "late")
    with pytest.raises(RunNotFoundError):
        catalog.get_run("no-such-run")
    with pytest.raises(RunNotFoundError):
        catalog.record_step("no-such-run", "m", "running")


def test_failed_run_keeps_its_error(catalog: Catalog) -> None:
    run_id = catalog.start_run("extract", triggered_by=None)
    catalog.finish_run(run_id, "failed", "source timed out\nafter 30s")
    run = catalog.get_run(run_id)
    assert (run.status, run.error, run.params) == ("failed", "source timed out\nafter 30s", {})


def test_invalid_run_input_is_terminal(catalog: Catalog) -> None:
    with pytest.raises(InvalidIdentifierError):
        catalog.start_run("Transform; DROP TABLE runs")
    with pytest.raises(CatalogError, match="JSON"):
        catalog.start_run("transform", {"since": dt.date(2025, 1, 1)})
    run_id = catalog.start_run("transform")
    with pytest.raises(CatalogError):
        catalog.finish_run(run_id, "running")  # type: ignore[arg-type]
    with pytest.raises(CatalogError):
        catalog.record_step(run_id, "m", "exploded")  # type: ignore[arg-type]
    with pytest.raises(CatalogError):
        catalog.list_runs(limit=0)


def test_list_runs_newest_first_with_filters(catalog_url: str) -> None:
    clock = StepClock(dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    with Catalog.open(catalog_url, clock=clock) as catalog:
        ids = [catalog.start_run(kind) for kind in ("transform", "extract", "transform")]
        catalog.finish_run(ids[0], "cancelled")
        assert [r.run_id for r in catalog.list_runs()] == ids[::-1]
        assert [r.run_id for r in catalog.list_runs(kind="transform")] == [ids[2], ids[0]]
        assert [r.run_id for r in catalog.list_runs(status="cancelled")] == [ids[0]]
        assert [r.run_id for r in catalog.list_runs(limit=1)] == [ids[2]]
        first = catalog.get_run(ids[0])
        assert first.started_at == dt.datetime(2025, 3, 1, 0, 0, 1, tzinfo=dt.UTC)


def test_mark_interrupted_runs(catalog_url: str) -> None:
    with Catalog.open(catalog_url) as crashed:  # a process that dies mid-run
        left_a = crashed.start_run("transform")
        crashed.record_step(left_a, "silver_orders", "succeeded")
        crashed.record_step(left_a, "gold_revenue", "running")
        left_b = crashed.start_run("ingest")
        finished = crashed.start_run("extract")
        crashed.finish_run(finished, "succeeded")

    with Catalog.open(catalog_url) as restarted:
        assert restarted.mark_interrupted_runs() == 2
        for run_id in (left_a, left_b):
            run = restarted.get_run(run_id)
            assert (run.status, run.error) == ("failed", "interrupted")
            assert run.finished_at is not None
        steps = {s.name: s for s in restarted.run_steps(left_a)}
        assert steps["gold_revenue"].status == "failed"
        assert steps["gold_revenue"].error == "interrupted"
        assert steps["silver_orders"].status == "succeeded"
        assert restarted.get_run(finished).status == "succeeded"
        assert restarted.mark_interrupted_runs() == 0


# -- per-model state ------------------------------------------------------------------------


def _bronze(i: int) -> tuple[str, int]:
    path = f"events/orders/tenant=t{i % 7}/year=2025/month=01/day={i % 28 + 1:02d}/{i:08x}.parquet"
    return path, 1000 + i


def test_new_files_and_mark_consumed_at_100k_paths(catalog: Catalog) -> None:
    files = [_bronze(i) for i in range(100_000)]
    consumed = [f for i, f in enumerate(files) if i % 5 in (0, 3)]
    run_id = catalog.start_run("transform")

    assert catalog.new_files("silver_orders", files) == [FileRef(*f) for f in files]
    catalog.mark_consumed("silver_orders", consumed, run_id)
    assert catalog.consumed_count("silver_orders") == 40_000

    expected = [FileRef(*f) for i, f in enumerate(files) if i % 5 not in (0, 3)]
    assert catalog.new_files("silver_orders", files) == expected
    # duplicates in the input collapse, order of first appearance is kept
    assert catalog.new_files("silver_orders", files[1:3] * 3 + files[:1]) == expected[:2]
    # other models have their own history
    assert len(catalog.new_files("silver_customers", files)) == 100_000

    # marking again, overlapping what is known, is idempotent and keeps the first run
    second = catalog.start_run("transform")
    catalog.mark_consumed("silver_orders", files, second)
    assert catalog.consumed_count("silver_orders") == 100_000
    assert catalog.new_files("silver_orders", files) == []
    state = catalog.model_state("silver_orders")
    assert state is not None
    assert state.last_run_id == second

    with pytest.raises(RunNotFoundError):
        catalog.mark_consumed("silver_orders", files[:1], "no-such-run")
    assert catalog.new_files("silver_orders", []) == []


def test_reset_model_forgets_consumed_files(catalog: Catalog) -> None:
    files = [_bronze(i) for i in range(50)]
    run_id = catalog.start_run("transform")
    catalog.mark_consumed("silver_orders", files, run_id)
    catalog.mark_consumed("silver_customers", files[:10], run_id)

    assert catalog.reset_model("silver_orders") == 50
    assert catalog.new_files("silver_orders", files) == [FileRef(*f) for f in files]
    assert catalog.consumed_count("silver_customers") == 10
    assert catalog.reset_model("never_ran") == 0
    state = catalog.model_state("silver_orders")
    assert state is not None
    assert state.last_run_id == run_id


def test_model_state_remembers_config_hash(catalog: Catalog) -> None:
    assert catalog.model_state("gold_revenue") is None
    run_id = catalog.start_run("transform")
    saved = catalog.save_model_state("gold_revenue", run_id=run_id, config_hash="sha256:ab12")
    assert catalog.model_state("gold_revenue") == saved
    assert (saved.last_run_id, saved.config_hash) == (run_id, "sha256:ab12")
    with pytest.raises(RunNotFoundError):
        catalog.save_model_state("gold_revenue", run_id="no-such-run", config_hash=None)


# -- table versions -------------------------------------------------------------------------


def test_table_versions(catalog: Catalog) -> None:
    assert catalog.latest_table_version("silver_orders") is None
    run_id = catalog.start_run("transform")
    catalog.record_table_version("silver_orders", 1, 100, run_id)
    catalog.record_table_version("silver_orders", 3, 90, None)
    catalog.record_table_version("silver_orders", 2, 120, run_id)
    catalog.record_table_version("silver_customers", 7, 5, run_id)

    latest = catalog.latest_table_version("silver_orders")
    assert latest is not None
    assert (latest.table, latest.version, latest.row_count, latest.run_id) == (
        "silver_orders",
        3,
        90,
        None,
    )
    assert [v.version for v in catalog.table_versions("silver_orders")] == [1, 2, 3]

    with pytest.raises(TableVersionExistsError):
        catalog.record_table_version("silver_orders", 2, 1, run_id)
    with pytest.raises(RunNotFoundError):
        catalog.record_table_version("silver_orders", 4, 1, "no-such-run")
    latest = catalog.latest_table_version("silver_orders")
    assert latest is not None
    assert latest.version == 3


# -- connection failures and configuration --------------------------------------------------


def test_unreachable_postgres_is_transient_and_hides_the_password() -> None:
    url = "postgresql://strata:pa55-w0rd-x@127.0.0.1:1/test?connect_timeout=3"
    with pytest.raises(CatalogUnavailableError) as caught:
        Catalog.open(url)
    error = caught.value
    assert isinstance(error, Transient)
    assert "127.0.0.1:1" in str(error)
    assert "***" in str(error)
    assert "pa55-w0rd-x" not in str(error)
    assert "pa55-w0rd-x" not in error.url


def test_a_sqlite_path_that_cannot_exist_is_terminal(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the catalog's folder should be")
    with pytest.raises(CatalogError, match="catalog folder"):
        Catalog.open(f"sqlite:///{blocker / 'catalog.db'}")


def test_config_defaults_to_a_sqlite_file_in_the_project(tmp_path: Path) -> None:
    config = CatalogConfig.from_env(tmp_path, environ={})
    assert config.url == f"sqlite:///{tmp_path.resolve() / '.strata' / 'catalog.db'}"
    with Catalog.open(config) as catalog:
        catalog.start_run("ingest")
    assert (tmp_path / ".strata" / "catalog.db").is_file()


def test_config_from_env(tmp_path: Path) -> None:
    pg = CatalogConfig.from_env(tmp_path, {"STRATA_CATALOG_URL": "postgresql://u:secret@db/x"})
    assert engine_url(pg.url).drivername == "postgresql+psycopg"
    assert "secret" not in repr(pg)
    assert "secret" not in pg.redacted_url

    relative = CatalogConfig.from_env(tmp_path, {"STRATA_CATALOG_URL": "sqlite:///meta/c.db"})
    assert relative.url == f"sqlite:///{tmp_path.resolve() / 'meta' / 'c.db'}"


@pytest.mark.parametrize("url", ["not a url", "mysql://root@localhost/x", "oracle://a@b/c"])
def test_config_rejects_unsupported_urls(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        CatalogConfig(url)
    assert isinstance(caught.value, Terminal)
