"""The tenant sandbox (wall 2) must hold alone: no SQL guard runs in front of it here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from strata.semantic.sandbox import (
    QueryMemoryError,
    QueryTimeout,
    ResultTooLargeError,
    SandboxClosedError,
    SandboxLimits,
    SandboxPool,
    SandboxQueryError,
    StatementRefusedError,
    TenantSandbox,
)
from strata.semantic.tenant_tables import TableIsolationError, tenant_tables
from strata.transform.tables import merge_table, write_table

A = "acme"
B = "tenant-b7x"  # a marker no path or test name holds: finding it anywhere is a leak
EMPTY = "nobody"
EXPOSED = ["gold.fct_assignments", "silver.workers"]


def _assignments(rows: list[tuple[int, str, int, float]]) -> pa.Table:
    ids, companies, workers, hours = zip(*rows, strict=True)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "company_id": list(companies),
            "worker_id": pa.array(workers, pa.int64()),
            "hours": list(hours),
            "note": [f"{c}-note-{i}" for i, c in zip(ids, companies, strict=True)],
        }
    )


def _make_lake(lake: Path) -> Path:
    assignments = _assignments(
        [(1, A, 10, 4.0), (2, A, 10, 3.5), (3, A, 11, 8.0), (4, B, 20, 99.0), (5, B, 20, 77.0)]
    )
    write_table(lake / "gold" / "fct_assignments", assignments, "overwrite", ["company_id"])
    workers = pa.table(
        {
            "worker_id": pa.array([10, 11, 20], pa.int64()),
            "company_id": [A, A, B],
            "name": ["ada", "bob", f"{B}-secret-name"],
        }
    )
    write_table(lake / "silver" / "workers", workers, "overwrite", ["company_id"])
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_lake(tmp_path_factory.mktemp("lake"))


@pytest.fixture(scope="module")
def sandbox(lake: Path) -> Iterator[TenantSandbox]:
    with TenantSandbox.open(lake, EXPOSED, A) as opened:
        yield opened


@pytest.fixture(scope="module")
def raw_sandbox(lake: Path) -> Iterator[TenantSandbox]:
    """Tenant A's sandbox with the SELECT-only check off: the DuckDB settings alone."""
    tables = tenant_tables(lake, EXPOSED, "company_id", A)
    with TenantSandbox(A, tables, select_only=False) as opened:
        yield opened


def _b_file(lake: Path) -> Path:
    return next((lake / "gold" / "fct_assignments" / f"company_id={B}").glob("*.parquet"))


COUNT = "select count(*) as n from gold.fct_assignments"


def _scalar(table: pa.Table) -> object:
    """The first cell of a one-row result."""
    return table.column(0)[0].as_py()


def _cells(table: pa.Table) -> str:
    return repr(table.to_pylist())


# -- tenant A sees exactly its rows --------------------------------------------------------


def test_views_hold_only_the_tenants_rows(sandbox: TenantSandbox) -> None:
    facts = sandbox.run("select * from gold.fct_assignments order by id")
    assert facts.column("id").to_pylist() == [1, 2, 3]
    assert set(facts.column("company_id").to_pylist()) == {A}
    workers = sandbox.run("select name from silver.workers order by name")
    assert workers.column("name").to_pylist() == ["ada", "bob"]


def test_views_keep_the_delta_schema(sandbox: TenantSandbox) -> None:
    facts = sandbox.run("select * from gold.fct_assignments")
    assert facts.schema.names == ["id", "company_id", "worker_id", "hours", "note"]
    assert facts.schema.field("company_id").type == pa.string()
    assert facts.schema.field("hours").type == pa.float64()


def test_aggregations_and_joins(sandbox: TenantSandbox) -> None:
    result = sandbox.run(
        "select w.name, sum(f.hours) as hours, count(*) as n"
        " from gold.fct_assignments f join silver.workers w using (company_id, worker_id)"
        " group by all order by w.name"
    )
    assert result.to_pylist() == [
        {"name": "ada", "hours": 7.5, "n": 2},
        {"name": "bob", "hours": 8.0, "n": 1},
    ]


def test_parameters_are_bound_not_pasted(sandbox: TenantSandbox) -> None:
    query = "select id from gold.fct_assignments where hours >= $min and note <> $note order by id"
    assert sandbox.run(query, {"min": 4, "note": "x"}).column("id").to_pylist() == [1, 3]
    # Pasted into the text this would read "note <> 'x' or true --'" and match every row.
    hostile = {"min": 0, "note": "' or true --"}
    assert sandbox.run(query, hostile).num_rows == 3
    injected = "select count(*) as n from gold.fct_assignments where note = $note"
    assert sandbox.run(injected, {"note": "' or '1'='1"}).column("n").to_pylist() == [0]


def test_missing_parameter_is_a_query_error(sandbox: TenantSandbox) -> None:
    with pytest.raises(SandboxQueryError, match="not provided") as info:
        sandbox.run("select $absent as x")
    assert "\n" not in str(info.value)


def test_empty_tenant_gets_empty_typed_relations(lake: Path, sandbox: TenantSandbox) -> None:
    with TenantSandbox.open(lake, EXPOSED, EMPTY) as empty:
        counts = empty.run(
            "select (select count(*) from gold.fct_assignments) as f,"
            " (select count(*) from silver.workers) as w"
        )
        assert counts.to_pylist() == [{"f": 0, "w": 0}]
        rows = empty.run("select * from gold.fct_assignments")
        assert rows.num_rows == 0
        assert rows.schema == sandbox.run("select * from gold.fct_assignments").schema
        assert {t.name: t.bytes for t in empty.tables} == dict.fromkeys(EXPOSED, 0)


def test_tables_report_files_bytes_and_versions(lake: Path, sandbox: TenantSandbox) -> None:
    facts = {t.name: t for t in sandbox.tables}["gold.fct_assignments"]
    directory = lake / "gold" / "fct_assignments" / f"company_id={A}"
    assert facts.version == 0
    assert facts.rows == 3
    assert facts.directories == (directory.resolve(),)
    assert facts.bytes == sum(p.stat().st_size for p in directory.glob("*.parquet")) > 0


def test_table_not_partitioned_by_tenant_is_refused(tmp_path: Path) -> None:
    write_table(tmp_path / "gold" / "flat", _assignments([(1, A, 1, 1.0)]), "overwrite")
    with pytest.raises(TableIsolationError, match=r"gold\.flat.*not partitioned by 'company_id'"):
        tenant_tables(tmp_path, ["gold.flat"], "company_id", A)


def test_paths_duckdb_would_glob_are_refused(tmp_path: Path) -> None:
    lake = tmp_path / "la*ke"  # DuckDB would read this as a pattern matching other dirs
    write_table(lake / "gold" / "fct", _assignments([(1, A, 1, 1.0)]), "overwrite", ["company_id"])
    with pytest.raises(TableIsolationError, match="glob characters"):
        tenant_tables(lake, ["gold.fct"], "company_id", A)


def test_files_without_a_later_column_read_as_null(tmp_path: Path) -> None:
    path = tmp_path / "gold" / "fct_assignments"
    write_table(path, _assignments([(1, A, 10, 4.0), (2, B, 20, 1.0)]), "overwrite", ["company_id"])
    grown = _assignments([(3, A, 11, 2.0)]).append_column("grade", pa.array(["x"]))
    merge_table(path, grown, ["id"])
    with TenantSandbox.open(tmp_path, ["gold.fct_assignments"], A) as sandbox:
        rows = sandbox.run("select id, grade from gold.fct_assignments order by id")
    assert rows.to_pylist() == [{"id": 1, "grade": None}, {"id": 3, "grade": "x"}]


def test_other_partition_columns_come_from_the_log(tmp_path: Path) -> None:
    table = _assignments([(1, A, 10, 4.0), (2, A, 11, 1.0), (3, B, 20, 9.0)])
    table = table.append_column("region", pa.array(["eu", "us", "eu"]))
    write_table(tmp_path / "gold" / "fct", table, "overwrite", ["company_id", "region"])
    with TenantSandbox.open(tmp_path, ["gold.fct"], A) as sandbox:
        rows = sandbox.run("select id, company_id, region from gold.fct order by id")
    assert rows.to_pylist() == [
        {"id": 1, "company_id": A, "region": "eu"},
        {"id": 2, "company_id": A, "region": "us"},
    ]


# -- escapes, with no SQL guard in front -----------------------------------------------------

# Each must fail (or, marked "rows", return nothing of B's). {b_file} is one of B's data
# files, {b_dir} its partition, {a_dir} A's, {out} a directory the sandbox must not write.
ESCAPES = {
    "read_parquet B's partition": "select * from read_parquet('{b_dir}/*.parquet')",
    "read_parquet A and B": "select * from read_parquet(['{a_file}', '{b_file}'])",
    "replacement scan of a path": "select * from '{b_file}'",
    "path traversal from A's dir": "select * from read_parquet('{a_dir}/../{b_name}')",
    "file URL": "select * from read_parquet('file://{b_file}')",
    "read_csv /etc/passwd": "select * from read_csv('/etc/passwd')",
    "read_text /etc/passwd": "select * from read_text('/etc/passwd')",
    "read_blob /etc/passwd": "select * from read_blob('/etc/passwd')",
    "read_csv B's file": "select * from read_csv('{b_file}')",
    "read_text B's file": "select * from read_text('{b_file}')",
    "read_blob B's file": "select * from read_blob('{b_file}')",
    "read_text the Delta log": "select * from read_text('{lake}/gold/*/_delta_log/*')",
    "parquet_metadata": "select * from parquet_metadata('{b_file}')",
    "glob the lake": "select * from glob('{lake}/**')",
    "glob A's dir": "select * from glob('{a_dir}/*')",
    "query()": "select * from query('select * from read_parquet(''{b_file}'')')",
    "query_table()": "select * from query_table('{b_file}')",
    "copy to": "copy (select * from gold.fct_assignments) to '{out}/x.csv'",
    "copy from": "create or replace temp table t (x int); copy t from '{b_file}'",
    "attach a file": "attach '{out}/x.db'",
    "export database": "export database '{out}/export'",
    "install httpfs": "install httpfs",
    "load httpfs": "load httpfs",
    "load a file": "load '{out}/evil.duckdb_extension'",
    "enable external access": "set enable_external_access = true",
    "reset external access": "reset enable_external_access",
    "widen allowed_directories": "set allowed_directories = ['/']",
    "widen allowed_paths": "set allowed_paths = ['{b_file}']",
    "unlock": "set lock_configuration = false",
    "allowed_configs": "set allowed_configs = ['enable_external_access']",
    "python replacements on": "set python_enable_replacements = true",
    "session scope": "set session enable_external_access = true",
    "pragma setting": "pragma enable_profiling",
    "stacked": "select 1; set enable_external_access = true; from read_parquet('{b_file}')",
    "view over B": "create view gold.b as select * from read_parquet('{b_file}')",
    "replace A's view": (
        "create or replace view gold.fct_assignments as select * from read_parquet('{b_file}')"
    ),
    "secret": "create secret s (type s3, key_id 'k', secret 's')",
}
ROWS_WITHOUT_B = {
    "settings": "select * from duckdb_settings()",
    "views": "select * from duckdb_views()",
    "databases": "select * from duckdb_databases()",
    "pragma database_list": "pragma database_list",
}


def _escape(sql: str, lake: Path, out: Path) -> str:
    a_dir = lake / "gold" / "fct_assignments" / f"company_id={A}"
    b_file = _b_file(lake)
    return sql.format(
        lake=lake,
        out=out,
        a_dir=a_dir,
        a_file=next(a_dir.glob("*.parquet")),
        b_dir=b_file.parent,
        b_file=b_file,
        b_name=f"company_id={B}/{b_file.name}",
    )


@pytest.mark.parametrize("sql", ESCAPES.values(), ids=ESCAPES.keys())
def test_escape_fails_on_settings_alone(
    raw_sandbox: TenantSandbox, lake: Path, tmp_path: Path, sql: str
) -> None:
    with pytest.raises(SandboxQueryError) as info:
        raw_sandbox.run(_escape(sql, lake, tmp_path))
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert _scalar(raw_sandbox.run(COUNT)) == 3


@pytest.mark.parametrize("sql", ROWS_WITHOUT_B.values(), ids=ROWS_WITHOUT_B.keys())
def test_catalog_and_settings_reveal_nothing_of_b(
    raw_sandbox: TenantSandbox, lake: Path, sql: str
) -> None:
    cells = _cells(raw_sandbox.run(sql))
    assert B not in cells
    assert str(_b_file(lake).parent) not in cells


@pytest.mark.parametrize("sql", ESCAPES.values(), ids=ESCAPES.keys())
def test_escape_fails_with_select_only(
    sandbox: TenantSandbox, lake: Path, tmp_path: Path, sql: str
) -> None:
    with pytest.raises(SandboxQueryError):
        sandbox.run(_escape(sql, lake, tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_settings_are_locked_down(sandbox: TenantSandbox) -> None:
    rows = sandbox.run("select name, value from duckdb_settings()").to_pylist()
    settings = {row["name"]: row["value"] for row in rows}
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["python_enable_replacements"] == "false"
    assert settings["autoinstall_known_extensions"] == "false"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["allow_community_extensions"] == "false"
    assert settings["threads"] == "1"
    assert settings["temp_directory"] == str(sandbox.temp_directory)


def test_own_temp_directory_is_not_writable_by_copy(sandbox: TenantSandbox) -> None:
    # DuckDB always allows its temp directory, so only the SELECT-only check stops this.
    with pytest.raises(StatementRefusedError, match="only SELECT"):
        sandbox.run(f"copy (select 1) to '{sandbox.temp_directory}/x.csv'")
    assert list(sandbox.temp_directory.iterdir()) == []


def test_python_variables_are_not_scanned(raw_sandbox: TenantSandbox) -> None:
    secret_b = pa.table({"leak": [f"{B}-python-secret"]})
    # The technique is live in this DuckDB: a plain connection reads the local variable.
    plain = duckdb.connect()
    try:
        assert plain.sql("select * from secret_b").fetchall() == [(f"{B}-python-secret",)]
    finally:
        plain.close()
    with pytest.raises(SandboxQueryError, match="secret_b"):
        raw_sandbox.run("select * from secret_b")
    assert secret_b.num_rows == 1


@pytest.mark.parametrize("sql", ["", "select 1; select 2", "explain select 1"])
def test_only_single_selects_run(sandbox: TenantSandbox, sql: str) -> None:
    with pytest.raises(StatementRefusedError):
        sandbox.run(sql)


def test_runaway_query_is_interrupted(lake: Path) -> None:
    limits = SandboxLimits(timeout_s=0.5)
    with TenantSandbox.open(lake, EXPOSED, A, limits=limits) as sandbox:
        started = time.monotonic()
        with pytest.raises(QueryTimeout, match=r"longer than 0\.5 s"):
            sandbox.run("select count(*) from range(10000000000000)")
        assert time.monotonic() - started < 3
        # A query streaming rows slowly is interrupted too.
        with pytest.raises(QueryTimeout):
            sandbox.run("select range from range(10000000000000) where range % 100000000 = 7")
        assert _scalar(sandbox.run(COUNT)) == 3


def test_memory_limit_fails_cleanly_and_sandbox_keeps_serving(lake: Path) -> None:
    limits = SandboxLimits(memory_limit="64MB", max_temp_directory_size="64MB")
    with TenantSandbox.open(lake, EXPOSED, A, limits=limits) as sandbox:
        with pytest.raises(QueryMemoryError, match="memory_limit 64MB") as info:
            sandbox.run("select list(range) as l from range(100000000)")
        assert "\n" not in str(info.value)
        assert _scalar(sandbox.run(COUNT)) == 3


def test_results_are_capped(lake: Path) -> None:
    limits = SandboxLimits(max_rows=10, max_result_bytes=2**20)
    with TenantSandbox.open(lake, EXPOSED, A, limits=limits) as sandbox:
        assert sandbox.run("select * from range(10)").num_rows == 10
        with pytest.raises(ResultTooLargeError, match="larger than 10 rows"):
            sandbox.run("select * from range(11)")
        with pytest.raises(ResultTooLargeError, match="larger than 1048576 bytes"):
            sandbox.run("select repeat('x', 200000) as s from range(10)")


def test_temp_directories_are_private_and_removed(lake: Path) -> None:
    first = TenantSandbox.open(lake, EXPOSED, A)
    second = TenantSandbox.open(lake, EXPOSED, B)
    assert first.temp_directory != second.temp_directory
    assert first.temp_directory.is_dir()
    first.close()
    second.close()
    assert not first.temp_directory.exists()
    assert not second.temp_directory.exists()
    with pytest.raises(SandboxClosedError):
        first.run("select 1")


def test_close_waits_for_a_running_query(lake: Path) -> None:
    sandbox = TenantSandbox.open(lake, EXPOSED, A, limits=SandboxLimits(timeout_s=0.5))
    outcome: list[BaseException] = []

    def endless() -> None:
        try:
            sandbox.run("select count(*) from range(10000000000000)")
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=endless)
    worker.start()
    time.sleep(0.1)
    sandbox.close()
    assert sandbox.temp_directory.exists()  # still in use
    worker.join(5)
    assert [type(e) for e in outcome] == [QueryTimeout]
    assert not sandbox.temp_directory.exists()


# -- the pool ----------------------------------------------------------------------------------


@pytest.fixture
def own_lake(tmp_path: Path) -> Path:
    return _make_lake(tmp_path / "lake")


def test_pool_rebuilds_when_a_version_changes(own_lake: Path) -> None:
    with SandboxPool(own_lake, EXPOSED) as pool:
        before = pool.get(A)
        assert pool.get(A) is before
        assert _scalar(before.run(COUNT)) == 3
        path = own_lake / "gold" / "fct_assignments"
        write_table(path, _assignments([(6, A, 10, 1.0), (7, B, 20, 1.0)]), "append")
        after = pool.get(A)
        assert after is not before
        assert before.closed
        assert _scalar(after.run(COUNT)) == 4
        assert {t.name: t.version for t in after.tables}["gold.fct_assignments"] == 1
        assert _scalar(pool.run(A, "select max(id) from gold.fct_assignments")) == 6


def test_pool_evicts_least_recently_used(own_lake: Path) -> None:
    with SandboxPool(own_lake, EXPOSED, max_open=2) as pool:
        acme = pool.get(A)
        other = pool.get(B)
        pool.get(A)
        empty = pool.get(EMPTY)
        assert pool.open_tenants == (A, EMPTY)
        assert other.closed
        assert not other.temp_directory.exists()
        assert not acme.closed
        assert pool.get(B) is not other
    assert acme.closed
    assert empty.closed


def test_pool_serves_concurrent_queries(own_lake: Path) -> None:
    query = "select count(*) as n, sum(hours) as h from gold.fct_assignments where worker_id = $w"
    expected = {10: (2, 7.5), 11: (1, 8.0), 20: (0, None)}
    failures: list[str] = []

    def work(worker: int) -> None:
        for _ in range(10):
            row = pool.run(A, query, {"w": worker}).to_pylist()[0]
            if (row["n"], row["h"]) != expected[worker]:
                failures.append(f"{worker}: {row}")

    with SandboxPool(own_lake, EXPOSED) as pool:
        threads = [threading.Thread(target=work, args=([10, 11, 20][i % 3],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert pool.open_tenants == (A,)
    assert failures == []


def test_pool_refuses_invalid_tenants(own_lake: Path) -> None:
    with SandboxPool(own_lake, EXPOSED) as pool, pytest.raises(ValueError, match="invalid tenant"):
        pool.get("../acme")
