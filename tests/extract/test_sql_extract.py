"""Incremental SQL extraction against real PostgreSQL and MariaDB (see conftest.py)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa

from strata.catalog import Catalog
from strata.extract.config import SourceConfig, TableSpec
from strata.extract.landing import read_part
from strata.extract.sql import ExtractError, extract_source
from strata.lake.faults import FaultInjectingStorage
from strata.lake.storage import LocalStorage

T0 = dt.datetime(2026, 1, 1, 12, 0, 0)
TENANTS = ("acme", "globex", "initech")


def _create(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        dt_type = "DATETIME(6)" if conn.dialect.name in ("mysql", "mariadb") else "TIMESTAMP"
        conn.exec_driver_sql(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id VARCHAR(32) NOT NULL, "
            f"amount NUMERIC(12, 2) NOT NULL, note VARCHAR(200), updated_at {dt_type} NOT NULL)"
        )


def _insert(engine: sa.Engine, ids: range, at: dt.datetime | None = None) -> None:
    rows = [
        {
            "id": i,
            "tenant_id": TENANTS[i % 3],
            "amount": f"{i}.25",
            "note": f"order {i} ünïcode",
            "updated_at": at or T0 + dt.timedelta(seconds=i),
        }
        for i in ids
    ]
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO orders (id, tenant_id, amount, note, updated_at) "
                "VALUES (:id, :tenant_id, :amount, :note, :updated_at)"
            ),
            rows,
        )


def _source(url: str, fmt: str = "jsonl.gz", **table: object) -> SourceConfig:
    spec = {
        "entity": "orders",
        "table": "orders",
        "query": None,
        "watermark_column": "updated_at",
        "watermark_kind": "timestamp",
        "tenant_column": "tenant_id",
        "primary_key": ("id",),
        "lookback": dt.timedelta(minutes=10),
        "chunk_rows": 1000,
    } | table
    return SourceConfig("shop", url, "eu1", fmt, (TableSpec(**spec),), "sources/shop.yml")  # type: ignore[arg-type]


def _lines(lake: LocalStorage, parts: tuple[str, ...]) -> list[dict[str, object]]:
    return [record for part in parts for record in read_part(lake, part)]


def test_first_run_lands_every_row_in_chunked_parts_at_the_seed_path(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create(source_engine)
    _insert(source_engine, range(3000))
    summary = extract_source(_source(source_url), lake, catalog, today=dt.date(2026, 1, 2))

    [result] = summary.entities
    assert result.rows == 3000
    assert len(result.parts) == 3
    prefix = (
        f"bronze/shop/scope=eu1/entity=orders/ingestion_date=2026-01-02/run_id={summary.run_id}"
    )
    assert result.parts == tuple(f"{prefix}/part-{n}.jsonl.gz" for n in range(3))
    records = _lines(lake, result.parts)
    assert [r["id"] for r in records] == list(range(3000))  # ordered by the watermark
    first = records[1]
    assert first == {
        "id": 1,
        "tenant_id": "globex",
        "amount": "1.25",
        "note": "order 1 ünïcode",
        "updated_at": "2026-01-01T12:00:01+00:00",
        "_tenant": "globex",
    }
    assert {r["_tenant"] for r in records} == set(TENANTS)
    assert result.watermark_before is None
    assert result.watermark_after == "2026-01-01T12:49:59+00:00"
    mark = catalog.watermark("shop", "orders")
    assert mark is not None
    assert mark.value == result.watermark_after
    assert mark.kind == "timestamp"
    assert mark.run_id == summary.run_id
    run = catalog.get_run(summary.run_id)
    assert run.kind == "extract"
    assert run.status == "succeeded"


def test_parquet_parts_keep_native_types(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create(source_engine)
    _insert(source_engine, range(1500))
    summary = extract_source(
        _source(source_url, fmt="parquet"), lake, catalog, today=dt.date(2026, 1, 2)
    )
    [result] = summary.entities
    assert [p.rsplit("/", 1)[1] for p in result.parts] == ["part-0.parquet", "part-1.parquet"]
    records = _lines(lake, result.parts)
    assert [r["id"] for r in records] == list(range(1500))
    assert records[1]["updated_at"] == dt.datetime(2026, 1, 1, 12, 0, 1, tzinfo=dt.UTC)
    assert str(records[1]["amount"]) == "1.25"
    assert records[1]["_tenant"] == "globex"


@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_both_readers_land_the_same_parts(
    fmt: str, source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    # PostgreSQL reads with COPY unless told not to; MariaDB always takes the cursor path.
    _create(source_engine)
    _insert(source_engine, range(2500))
    source = _source(source_url, fmt=fmt)
    fast = extract_source(source, lake, catalog, full=True).entities[0]
    cursor = extract_source(source, lake, catalog, full=True, use_copy=False).entities[0]
    assert (fast.rows, len(fast.parts)) == (cursor.rows, len(cursor.parts)) == (2500, 3)
    assert fast.watermark_after == cursor.watermark_after == "2026-01-01T12:41:39+00:00"
    assert _lines(lake, fast.parts) == _lines(lake, cursor.parts)
    if fmt == "jsonl.gz":
        for mine, theirs in zip(fast.parts, cursor.parts, strict=True):
            text = gzip.decompress((lake.root / mine).read_bytes())
            assert text == gzip.decompress((lake.root / theirs).read_bytes())


def test_next_run_reads_only_new_and_changed_rows_plus_the_lookback(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create(source_engine)
    _insert(source_engine, range(3000))
    extract_source(_source(source_url), lake, catalog)

    later = T0 + dt.timedelta(hours=2)
    _insert(source_engine, range(3000, 3010), at=later)
    with source_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE orders SET note = 'changed', updated_at = :at WHERE id < 5"),
            {"at": later},
        )
    summary = extract_source(_source(source_url), lake, catalog)

    [result] = summary.entities
    ids = sorted(int(r["id"]) for r in _lines(lake, result.parts))  # type: ignore[call-overload]
    # lookback 10m before 12:49:59 re-reads ids 2400..2999 (deduped downstream by id)
    assert ids == [*range(5), *range(2400, 3010)]
    assert result.watermark_before == "2026-01-01T12:49:59+00:00"
    assert result.watermark_after == "2026-01-01T14:00:00+00:00"

    # nothing new: only the lookback window again, watermark stays
    again = extract_source(_source(source_url), lake, catalog).entities[0]
    assert again.watermark_after == again.watermark_before == result.watermark_after
    assert again.rows == 15  # the rows inside (14:00 - 10m, ...]


def test_id_watermarks_and_full_reextract(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create(source_engine)
    _insert(source_engine, range(100))
    source = _source(source_url, watermark_column="id", watermark_kind="id", lookback=0)
    first = extract_source(source, lake, catalog).entities[0]
    assert (first.rows, first.watermark_after) == (100, "99")
    _insert(source_engine, range(100, 120))
    second = extract_source(source, lake, catalog).entities[0]
    assert second.rows == 20
    assert second.watermark_after == "119"
    full = extract_source(source, lake, catalog, full=True).entities[0]
    assert full.rows == 120
    assert full.watermark_after == "119"


def test_a_failure_mid_run_keeps_the_watermark_and_the_next_run_lands_everything(
    source_url: str,
    source_engine: sa.Engine,
    lake: LocalStorage,
    catalog: Catalog,
    tmp_path: Path,
) -> None:
    _create(source_engine)
    _insert(source_engine, range(1000))
    extract_source(_source(source_url), lake, catalog)
    before = catalog.watermark("shop", "orders")
    _insert(source_engine, range(1000, 4000), at=T0 + dt.timedelta(days=1))

    switch = tmp_path / "outage"
    faulty = FaultInjectingStorage(lake, switch)

    def pull_the_plug(entity: str, rows: int) -> None:
        switch.touch()  # the part after the first one fails

    with pytest.raises(ExtractError) as caught:
        extract_source(_source(source_url), faulty, catalog, progress=pull_the_plug)
    message = str(caught.value)
    assert "'shop'" in message
    assert "'orders'" in message
    assert "watermark unchanged" in message
    assert catalog.watermark("shop", "orders") == before
    [failed] = catalog.list_runs(kind="extract", status="failed")
    assert failed.error is not None

    switch.unlink()
    result = extract_source(_source(source_url), lake, catalog).entities[0]
    ids = {int(r["id"]) for r in _lines(lake, result.parts)}  # type: ignore[call-overload]
    assert set(range(1000, 4000)) <= ids
    assert result.watermark_after == "2026-01-02T12:00:00+00:00"


def test_a_declared_column_that_vanished_is_one_clear_error(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create(source_engine)
    _insert(source_engine, range(10))
    with pytest.raises(ExtractError, match=r"source 'shop', entity 'orders'.*'region'"):
        extract_source(_source(source_url, tenant_column="region"), lake, catalog)
    assert catalog.watermark("shop", "orders") is None
    assert list(lake.list_files("bronze")) == []


def test_a_query_source_and_a_missing_table(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create(source_engine)
    _insert(source_engine, range(50))
    query = "SELECT id, tenant_id, updated_at FROM orders WHERE tenant_id = 'acme'"
    result = extract_source(_source(source_url, table=None, query=query), lake, catalog).entities[0]
    assert result.rows == 17
    with pytest.raises(ExtractError, match=r"entity 'orders'.*'nope' not found"):
        extract_source(_source(source_url, table="nope"), lake, catalog)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://postgres@127.0.0.1:1/nowhere?connect_timeout=3",
        "mysql+pymysql://root@127.0.0.1:1/nowhere?connect_timeout=3",
        "mysql+pymysql://nobody:wrong@127.0.0.1:3306/test?connect_timeout=3",
    ],
)
def test_unreachable_source_or_bad_credentials(
    url: str, lake: LocalStorage, catalog: Catalog
) -> None:
    with pytest.raises(ExtractError, match=r"source 'shop', entity 'orders': database error"):
        extract_source(_source(url), lake, catalog)
    assert catalog.watermark("shop", "orders") is None
    [run] = catalog.list_runs(kind="extract")
    assert run.status == "failed"


@pytest.mark.slow
def test_a_large_table_is_streamed_in_bounded_chunks(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create(source_engine)
    with source_engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "INSERT INTO orders SELECT g, 't' || mod(g, 7), g, repeat('x', 150), "
                "TIMESTAMP '2026-01-01' + g * INTERVAL '1 second' "
                "FROM generate_series(1, 200000) AS g"
            )
        else:
            conn.exec_driver_sql(
                "INSERT INTO orders SELECT seq, CONCAT('t', MOD(seq, 7)), seq, REPEAT('x', 150), "
                "TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_200000"
            )
    process = psutil.Process()
    peak = baseline = process.memory_info().rss

    def sample(entity: str, rows: int) -> None:
        nonlocal peak
        peak = max(peak, process.memory_info().rss)

    result = extract_source(
        _source(source_url, chunk_rows=5000), lake, catalog, progress=sample
    ).entities[0]

    assert result.rows == 200_000
    assert len(result.parts) == 40
    for part in (result.parts[0], result.parts[-1]):
        with gzip.open(lake.root / part) as handle:
            assert sum(1 for _ in handle) == 5000
    assert (
        json.loads(gzip.decompress((lake.root / result.parts[-1]).read_bytes()).splitlines()[-1])[
            "id"
        ]
        == 200000
    )
    # 200k rows held at once would cost well over 100 MB of Python objects; one chunk is ~5 MB
    assert peak - baseline < 60 * 1024 * 1024, f"RSS grew by {(peak - baseline) >> 20} MB"
