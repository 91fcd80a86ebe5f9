"""Silver builds over a real local lake: Parquet bronze files, a SQLite catalog, Delta tables
and DuckDB."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from strata.catalog.store import Catalog
from strata.lake.paths import BronzePartition
from strata.transform.config import ModelConfig
from strata.transform.delta_files import active_files
from strata.transform.silver import ModelRunError, build_silver, compile_silver
from strata.transform.sql import DIALECT, ModelSql, parse_model
from strata.transform.tables import read_table, table_path, table_version

SQL = """
SELECT id, company_id, lower(email) AS email, CAST(score AS DOUBLE) AS score, deleted_at
FROM bronze.wfm.profiles
WHERE deleted_at IS NULL
"""
T0 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("company_id", pa.string()),
        ("email", pa.string()),
        ("score", pa.string()),
        ("deleted_at", pa.timestamp("us", tz="UTC")),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("source_service", pa.string()),
    ]
)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def model() -> ModelSql:
    return parse_model("profiles", "silver", SQL)


@pytest.fixture
def config() -> ModelConfig:
    return ModelConfig(
        name="profiles",
        layer="silver",
        materialized="incremental",
        primary_key=("company_id", "id"),
        soft_delete_column="deleted_at",
    )


def row(
    id_: int,
    email: str,
    minutes: int,
    *,
    company: str = "acme",
    score: str = "1.5",
    deleted: bool = False,
) -> dict[str, Any]:
    at = T0 + dt.timedelta(minutes=minutes)
    return {
        "id": id_,
        "company_id": company,
        "email": email,
        "score": score,
        "deleted_at": at if deleted else None,
        "ingested_at": at,
        "source_service": "wfm-api",
    }


def write_bronze(
    lake: Path, rows: list[dict[str, Any]], *, tenant: str = "acme", quarantine: bool = False
) -> str:
    partition = BronzePartition("wfm", "profiles", tenant, T0.date(), quarantine=quarantine)
    rel = partition.file(uuid.uuid4()).path
    (lake / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), lake / rel)
    return rel


def rows_of(lake: Path, version: int | None = None) -> list[dict[str, Any]]:
    table = read_table(table_path(lake, "silver", "profiles"), version).to_table()
    return sorted(table.to_pylist(), key=lambda r: (r["company_id"], r["id"]))


def content_hash(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, default=str, sort_keys=True).encode()).hexdigest()


def build(model: ModelSql, config: ModelConfig, lake: Path, catalog: Catalog, **kw: Any) -> Any:
    return build_silver(model, config, lake, catalog, **kw)


def test_first_build_keeps_latest_version_per_key_with_lineage(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    first = write_bronze(lake, [row(1, "A@X.COM", 0), row(2, "b@x.com", 0)])
    second = write_bronze(lake, [row(3, "c@x.com", 5), row(1, "A2@X.COM", 5, score="2")])
    write_bronze(lake, [row(9, "q@x.com", 9)], quarantine=True)

    result = build(model, config, lake, catalog)

    assert (result.rows_in, result.files_read, result.version) == (4, 2, 0)
    rows = rows_of(lake)
    assert [(r["id"], r["email"], r["score"]) for r in rows] == [
        (1, "a2@x.com", 2.0),
        (2, "b@x.com", 1.5),
        (3, "c@x.com", 1.5),
    ]
    lineage = {r["id"]: (r["_bronze_file"], r["_bronze_row"]) for r in rows}
    assert lineage == {1: (second, 1), 2: (first, 1), 3: (second, 0)}
    assert "_deleted" not in rows[0]
    assert catalog.latest_table_version("silver.profiles") is not None
    assert catalog.consumed_count("profiles") == 2  # the quarantined file is never read


def test_ties_on_ingested_at_break_by_file_then_row(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    rel = write_bronze(lake, [row(1, "first@x.com", 0), row(1, "second@x.com", 0)])
    build(model, config, lake, catalog)
    (only,) = rows_of(lake)
    assert (only["email"], only["_bronze_file"], only["_bronze_row"]) == ("second@x.com", rel, 1)


def test_no_new_files_is_a_noop(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    write_bronze(lake, [row(1, "a@x.com", 0)])
    first = build(model, config, lake, catalog)
    again = build(model, config, lake, catalog)
    assert (again.files_read, again.version, again.run_id) == (0, first.version, None)
    assert table_version(table_path(lake, "silver", "profiles")) == first.version


def test_incremental_build_reads_only_new_files(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    write_bronze(lake, [row(1, "a@x.com", 0), row(2, "b@x.com", 0), row(3, "c@x.com", 0)])
    build(model, config, lake, catalog)
    update = write_bronze(
        lake,
        [
            row(1, "a-new@x.com", 10),
            row(2, "b@x.com", 10, deleted=True),
            row(4, "d@x.com", 10),
            row(5, "e@x.com", 10, deleted=True),  # born deleted: never inserted
        ],
    )
    other = write_bronze(lake, [row(1, "other@y.com", 10, company="globex")], tenant="globex")

    result = build(model, config, lake, catalog)

    assert (result.files_read, result.rows_in, result.version) == (2, 5, 1)
    rows = rows_of(lake)
    assert [(r["company_id"], r["id"], r["email"]) for r in rows] == [
        ("acme", 1, "a-new@x.com"),
        ("acme", 3, "c@x.com"),
        ("acme", 4, "d@x.com"),
        ("globex", 1, "other@y.com"),
    ]
    assert {r["_bronze_file"] for r in rows if r["id"] != 3} == {update, other}
    assert len(rows_of(lake, version=0)) == 3  # time travel to the first build still works
    versions = catalog.table_versions("silver.profiles")
    assert [(v.version, v.row_count) for v in versions] == [(0, 3), (1, 4)]

    # A rebuild from scratch gives exactly what the increments did.
    incremental = content_hash(rows)
    build(model, config, lake, catalog, full_refresh=True)
    assert content_hash(rows_of(lake)) == incremental


def test_full_refresh_twice_gives_identical_content(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    write_bronze(lake, [row(1, "a@x.com", 0), row(2, "b@x.com", 0)])
    write_bronze(lake, [row(1, "a2@x.com", 3), row(2, "b@x.com", 3, deleted=True)])
    build(model, config, lake, catalog)
    first = build(model, config, lake, catalog, full_refresh=True)
    hash_one = content_hash(rows_of(lake))
    second = build(model, config, lake, catalog, full_refresh=True)
    assert content_hash(rows_of(lake)) == hash_one
    assert [r["id"] for r in rows_of(lake)] == [1]
    assert (first.files_read, second.files_read) == (2, 2)
    assert second.version == first.version + 1
    assert catalog.consumed_count("profiles") == 2


def test_bad_cast_fails_naming_the_model_and_writes_nothing(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    write_bronze(lake, [row(1, "a@x.com", 0)])
    good = build(model, config, lake, catalog)
    before = rows_of(lake)
    write_bronze(lake, [row(2, "b@x.com", 5, score="not-a-number")])

    with pytest.raises(ModelRunError, match="profiles") as info:
        build(model, config, lake, catalog)

    assert "not-a-number" in str(info.value)
    assert "column score" in str(info.value)  # DuckDB names the column it was casting
    assert "LINE 1" not in str(info.value)  # without the statement, which lists every file
    assert table_version(table_path(lake, "silver", "profiles")) == good.version
    assert rows_of(lake) == before
    assert catalog.consumed_count("profiles") == 1  # the bad file stays unconsumed
    assert catalog.list_runs(status="failed")


def test_columns_that_appear_later_are_unified(
    lake: Path, catalog: Catalog, config: ModelConfig
) -> None:
    sql = "SELECT id, company_id, nickname FROM bronze.wfm.profiles WHERE deleted_at IS NULL"
    model = parse_model("profiles", "silver", sql)
    write_bronze(lake, [row(1, "a@x.com", 0)])  # written before 'nickname' existed
    newer = pa.Table.from_pylist([{**row(2, "b@x.com", 5), "nickname": "bee"}])
    partition = BronzePartition("wfm", "profiles", "acme", T0.date())
    pq.write_table(newer, lake / partition.file(uuid.uuid4()).path)
    build(model, config, lake, catalog)
    # A batch of old-shaped files only still has the column, as nulls.
    write_bronze(lake, [row(3, "c@x.com", 9)])

    result = build(model, config, lake, catalog)

    assert result.files_read == 1
    assert [(r["id"], r["nickname"]) for r in rows_of(lake)] == [(1, None), (2, "bee"), (3, None)]


def test_compiled_query_keeps_other_filters_and_runs_in_duckdb(config: ModelConfig) -> None:
    model = parse_model(
        "profiles",
        "silver",
        "SELECT id, company_id FROM bronze.wfm.profiles AS p "
        "WHERE p.deleted_at IS NULL AND company_id <> 'test'",
    )
    query = compile_silver(model, config, "batch")
    sql = query.sql(dialect=DIALECT)
    assert "ANTI JOIN superseded" in sql
    assert "WHERE company_id <> 'test'), repeated_keys" in sql  # only the live filter is gone
    batch = pa.Table.from_pylist(
        [
            {**row(1, "a", 0), "_bronze_file": "f", "_bronze_row": 0},
            {**row(1, "a", 1, deleted=True), "_bronze_file": "f", "_bronze_row": 1},
            {**row(2, "b", 0, company="test"), "_bronze_file": "f", "_bronze_row": 2},
        ]
    )
    con = duckdb.connect()
    con.register("batch", batch)
    out = con.sql(sql).to_arrow_table().to_pylist()
    assert [(r["id"], r["_deleted"], r["_bronze_row"]) for r in out] == [(1, True, 1)]


def test_a_column_that_was_only_ever_null_is_read_as_null(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    """The SDK writes a column once it holds a value: before any soft delete, bronze files
    have no ``deleted_at`` at all, and the model that names it must still build."""
    rows = [{k: v for k, v in row(i, f"{i}@x.com", i).items() if k != "deleted_at"} for i in (1, 2)]
    rel = BronzePartition("wfm", "profiles", "acme", T0.date()).file(uuid.uuid4()).path
    (lake / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), lake / rel)

    result = build(model, config, lake, catalog)

    assert result.rows_out == 2
    assert [(r["id"], r["deleted_at"]) for r in rows_of(lake)] == [(1, None), (2, None)]


def test_new_files_that_change_nothing_record_no_new_version(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    write_bronze(lake, [row(1, "new@x.com", 10)])
    first = build(model, config, lake, catalog)
    write_bronze(lake, [row(1, "old@x.com", 0)])  # an older version of the key, late

    again = build(model, config, lake, catalog)  # used to fail: version recorded twice

    assert again.files_read == 1
    assert [(r["id"], r["email"]) for r in rows_of(lake)] == [(1, "new@x.com")]
    latest = catalog.latest_table_version("silver.profiles")
    assert latest is not None
    assert latest.version == again.version >= first.version


def test_a_null_key_fails_the_build_before_anything_is_committed(
    lake: Path, catalog: Catalog, model: ModelSql, config: ModelConfig
) -> None:
    write_bronze(lake, [row(1, "a@x.com", 0)])
    good = build(model, config, lake, catalog)
    bad = row(2, "b@x.com", 5)
    bad["company_id"] = None
    write_bronze(lake, [bad])

    with pytest.raises(ModelRunError, match=r"profiles.*company_id"):
        build(model, config, lake, catalog)
    with pytest.raises(ModelRunError, match="company_id"):
        build(model, config, lake, catalog, full_refresh=True)

    assert table_version(table_path(lake, "silver", "profiles")) == good.version
    assert [r["id"] for r in rows_of(lake)] == [1]


def test_a_full_build_writes_integer_key_ranges_to_files_of_their_own(
    lake: Path,
    catalog: Catalog,
    model: ModelSql,
    config: ModelConfig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("strata.transform.silver._ROWS_PER_RANGE", 3)
    write_bronze(lake, [row(i, f"{i}@x.com", i) for i in range(1, 13)])
    build(model, config, lake, catalog)
    path = table_path(lake, "silver", "profiles")
    files = active_files(path, ["id"])
    assert len(files) == 4  # 12 keys, ranges of about 3
    bounds = sorted((f.low["id"], f.high["id"]) for f in files)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(bounds))  # disjoint ranges
    assert "__strata_cluster" not in read_table(path).schema.names
    # an update of the newest key rewrites that range's file only
    write_bronze(lake, [row(12, "new@x.com", 100)])
    build(model, config, lake, catalog)
    after = {f.path for f in active_files(path)}
    assert len(after & {f.path for f in files}) == 3
    assert [r["email"] for r in rows_of(lake) if r["id"] == 12] == ["new@x.com"]
    assert len(rows_of(lake)) == 12
