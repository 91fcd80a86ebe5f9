"""DuckDB-written Delta files and the file-level merge: correctness against the Delta log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from sqlglot import exp

from strata.transform.delta_files import active_files, commit_files, copy_to_table, output_schema
from strata.transform.file_merge import merge_files
from strata.transform.tables import read_table, write_table

KEYS = ["company_id", "id"]
ORDER = ["ts"]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def rows(path: Path, version: int | None = None) -> list[tuple[object, ...]]:
    connection = duckdb.connect()
    connection.register("t", read_table(path, version))
    result = connection.sql("select company_id, id, v, ts from t order by all").fetchall()
    connection.close()
    return result


def batch(con: duckdb.DuckDBPyConnection, values: str) -> exp.Query:
    """A batch relation of (id, company_id, v, ts, _deleted) rows in the table's types."""
    con.execute(
        "create or replace table batch as select id, company_id, v::bigint as v, "
        f"ts::bigint as ts, _deleted from (values {values}) x(id, company_id, v, ts, _deleted)"
    )
    return exp.select(exp.Star()).from_("batch")


def make_table(path: Path) -> None:
    """Tenant a in two files (ids 1-2, then 3), tenant b in one."""
    first = pa.table(
        {"id": ["1", "2", "5"], "company_id": ["a", "a", "b"], "v": [1, 2, 5], "ts": [1, 1, 1]}
    )
    write_table(path, first, "overwrite", ["company_id"])
    second = pa.table({"id": ["3"], "company_id": ["a"], "v": [3], "ts": [1]})
    write_table(path, second, "append", ["company_id"])


def merge(con: duckdb.DuckDBPyConnection, path: Path, values: str) -> tuple[int, int] | None:
    return merge_files(
        con, batch(con, values), path, KEYS, deleted_column="_deleted", newer_by=ORDER
    )


def test_newer_rows_update_older_are_ignored_new_keys_insert(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    make_table(tmp_path)
    result = merge(
        con,
        tmp_path,
        "('2', 'a', 20, 2, false), ('3', 'a', 30, 0, false), ('4', 'a', 40, 2, false)",
    )
    assert result is not None
    assert result[1] == 2  # '3' is older than the table's row
    assert rows(tmp_path) == [
        ("a", "1", 1, 1),
        ("a", "2", 20, 2),
        ("a", "3", 3, 1),
        ("a", "4", 40, 2),
        ("b", "5", 5, 1),
    ]
    assert rows(tmp_path, 1) == [
        ("a", "1", 1, 1),
        ("a", "2", 2, 1),
        ("a", "3", 3, 1),
        ("b", "5", 5, 1),
    ]


def test_only_files_holding_a_won_key_are_rewritten(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    make_table(tmp_path)
    before = {f.path for f in active_files(tmp_path)}
    merge(con, tmp_path, "('1', 'a', 10, 2, false)")
    after = {f.path for f in active_files(tmp_path)}
    removed, added = before - after, after - before
    assert len(removed) == 1
    assert "company_id=a" in next(iter(removed))
    assert len(added) == 2  # the batch's rows, and the rewritten file's other rows
    # tenant b's file and tenant a's second file (id 3) are untouched
    assert len(before & after) == 2


def test_a_winning_deletion_removes_the_key(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    make_table(tmp_path)
    merge(con, tmp_path, "('2', 'a', 0, 5, true), ('9', 'a', 9, 5, true)")
    assert rows(tmp_path) == [("a", "1", 1, 1), ("a", "3", 3, 1), ("b", "5", 5, 1)]


def test_a_batch_that_wins_nothing_commits_nothing(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    make_table(tmp_path)
    version = DeltaTable(str(tmp_path)).version()
    assert merge(con, tmp_path, "('1', 'a', 10, 0, false)") == (version, 0)
    assert DeltaTable(str(tmp_path)).version() == version


def test_a_batch_in_another_schema_is_left_to_the_caller(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    make_table(tmp_path)
    con.execute("create table other as select '1' as id, 'a' as company_id, 1 as extra")
    query = exp.select(exp.Star()).from_("other")
    assert merge_files(con, query, tmp_path, KEYS, deleted_column=None, newer_by=()) is None
    assert len(rows(tmp_path)) == 4


def test_duckdb_written_files_carry_delta_statistics(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    query = exp.select(
        exp.alias_(exp.column("range"), "n"),
        exp.alias_(exp.func("concat", exp.Literal.string("t"), exp.column("range") % 2), "tenant"),
    ).from_(exp.func("range", exp.Literal.number(10)))
    schema = output_schema(con, query)
    written = copy_to_table(con, query, tmp_path, ["tenant"], schema)
    version = commit_files(tmp_path, schema, ["tenant"], written, overwrite=True)
    assert version == 0
    actions = pa.table(DeltaTable(str(tmp_path)).get_add_actions(flatten=True)).to_pylist()
    by_tenant = {a["partition.tenant"]: a for a in actions}
    assert by_tenant["t0"]["num_records"] == 5
    assert (by_tenant["t0"]["min.n"], by_tenant["t0"]["max.n"]) == (0, 8)
    assert (by_tenant["t1"]["min.n"], by_tenant["t1"]["max.n"]) == (1, 9)
    # Delta readers see the files, partition column included
    table = DeltaTable(str(tmp_path)).to_pyarrow_dataset().to_table()
    assert sorted(zip(table["tenant"].to_pylist(), table["n"].to_pylist(), strict=True)) == sorted(
        (f"t{n % 2}", n) for n in range(10)
    )


def test_integer_keys_prune_files_by_their_bounds_and_still_merge_correctly(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    low = pa.table({"id": [1, 2], "company_id": ["a", "a"], "v": [1, 2], "ts": [1, 1]})
    high = pa.table({"id": [11, 12], "company_id": ["a", "a"], "v": [11, 12], "ts": [1, 1]})
    write_table(tmp_path, low, "overwrite", ["company_id"])
    write_table(tmp_path, high, "append", ["company_id"])
    before = {f.path for f in active_files(tmp_path)}
    con.execute(
        "create table ints as select id::bigint as id, company_id, v::bigint as v, "
        "ts::bigint as ts, _deleted from (values (12, 'a', 120, 2, false), "
        "(100, 'a', 1000, 2, false)) x(id, company_id, v, ts, _deleted)"
    )
    query = exp.select(exp.Star()).from_("ints")
    merge_files(con, query, tmp_path, KEYS, deleted_column="_deleted", newer_by=ORDER)
    after = {f.path for f in active_files(tmp_path)}
    assert rows(tmp_path) == [
        ("a", 1, 1, 1),
        ("a", 2, 2, 1),
        ("a", 11, 11, 1),
        ("a", 12, 120, 2),
        ("a", 100, 1000, 2),
    ]
    assert len(before & after) == 1  # the file of ids 1-2 was neither read for keys nor rewritten


def test_each_rewritten_file_keeps_its_survivors_in_a_file_of_their_own(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    first = pa.table({"id": ["1", "2"], "company_id": ["a", "a"], "v": [1, 2], "ts": [1, 1]})
    second = pa.table({"id": ["3", "4"], "company_id": ["a", "a"], "v": [3, 4], "ts": [1, 1]})
    write_table(tmp_path, first, "overwrite", ["company_id"])
    write_table(tmp_path, second, "append", ["company_id"])
    before = {f.path for f in active_files(tmp_path)}

    merge(con, tmp_path, "('1', 'a', 10, 2, false), ('3', 'a', 30, 2, false)")

    after = active_files(tmp_path)
    assert not before & {f.path for f in after}  # both files were rewritten
    assert len(after) == 3  # the batch's rows, and one file per rewritten file's survivors
    assert rows(tmp_path) == [
        ("a", "1", 10, 2),
        ("a", "2", 2, 1),
        ("a", "3", 30, 2),
        ("a", "4", 4, 1),
    ]
