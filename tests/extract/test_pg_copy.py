"""The PostgreSQL COPY fast path lands the same records as the cursor path (real PostgreSQL,
see conftest.py), fails the same way, and the Arrow JSON encoder writes the same text as
the record encoder."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import logging
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.catalog import Catalog
from strata.extract.config import SourceConfig, TableSpec
from strata.extract.landing import encode_jsonl_table, encode_part, read_part
from strata.extract.sql import EntityResult, ExtractError, extract_source
from strata.lake.faults import FaultInjectingStorage
from strata.lake.storage import LocalStorage

postgres_only = pytest.mark.parametrize("source_url", ["postgresql"], indirect=True)

AWKWARD = """
CREATE TABLE awkward (
    id integer PRIMARY KEY,
    tenant_id text,
    small smallint,
    big bigint,
    amount numeric(30, 10),
    loose numeric,
    ratio real,
    score double precision,
    flag boolean,
    note text,
    code char(6),
    label varchar(40),
    at_tz timestamptz,
    at_naive timestamp,
    day date,
    doc json,
    docb jsonb,
    blob bytea,
    uid uuid,
    updated_at timestamptz NOT NULL
)"""
COLUMNS = (
    "id, tenant_id, small, big, amount, loose, ratio, score, flag, note, code, label, at_tz, "
    "at_naive, day, doc, docb, blob, uid, updated_at"
)
ROWS: list[dict[str, Any]] = [
    {"id": 1},  # every other column NULL
    {
        "id": 2,
        "tenant_id": "ünïcode-☃",
        "small": -32768,
        "big": 9223372036854775807,
        "amount": "12345678901234567890.1234567890",
        "loose": "3.14159265358979323846264338327950288",
        "ratio": 1.1,
        "score": 1e16,
        "flag": True,
        "note": "emoji 😀 𝄞 中文 ",
        "code": "ab",
        "label": "naïve",
        "at_tz": "2026-03-01 12:00:00+05:30",
        "at_naive": "2026-03-01 12:00:00.5",
        "day": "2026-02-28",
        "doc": '{ "ключ": "значение",  "n": [1, 2.50, null], "z": {"y": true} }',
        "docb": '{"b": 1, "a": [1, 2.50, "x\\"y"], "c": {"d": null}}',
        "blob": b"\x00\xff\x10",
        "uid": "6f1c3b3e-9a56-4c7e-8d2f-0b6a1e5d9c11",
    },
    {
        "id": 3,
        "tenant_id": " spaced ",
        "small": 0,
        "big": -1,
        "amount": "-0.0000000001",
        "loose": "0.000000001",
        "ratio": float("nan"),
        "score": float("-inf"),
        "flag": False,
        "note": 'He said "hi", then\nleft\r\n\ttab \\ backslash,,"',
        "code": "NULL",
        "label": "",
        "at_tz": "1969-12-31 23:59:59.999999+00",
        "at_naive": "0999-01-01 00:00:00",
        "day": "0001-01-01",
        "doc": '"just a string"',
        "docb": "null",
        "blob": b"",
        "uid": "00000000-0000-0000-0000-000000000000",
    },
    {
        "id": 4,
        "tenant_id": "acme",
        "amount": "0",
        "loose": "-12.5",
        "ratio": -0.0,
        "score": 5e-324,
        "note": 'bell \x07 unit separator \x1f and a lone " quote',
        "label": "ends with \\",
        "at_tz": "2026-01-01 00:00:00.000001+00",
        "doc": '{"a": 1, "a": 2}',
        "docb": '[1, "two", {"three": 3.0}, 12345678901234567890, 123456789012345678901234567890]',
    },
    *({"id": i, "tenant_id": "globex", "note": f"row {i}", "score": i / 3} for i in range(5, 9)),
]


class ReaderLog(logging.Handler):
    """Which reader each entity took, from the extractor's own log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.readers: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "entity extracted":
            self.readers.append(record.__dict__["reader"])


@pytest.fixture
def readers() -> Iterator[ReaderLog]:
    logger = logging.getLogger("strata.extract.sql")
    handler, level = ReaderLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def _create_awkward(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(AWKWARD)
        names = COLUMNS.split(", ")
        params = [
            {n: row.get(n) for n in names}
            | {"updated_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i)}
            for i, row in enumerate(ROWS)
        ]
        values = ", ".join(f":{n}" for n in names)
        conn.execute(sa.text(f"INSERT INTO awkward ({COLUMNS}) VALUES ({values})"), params)


def _source(url: str, fmt: str, **table: object) -> SourceConfig:
    spec = {
        "entity": "awkward",
        "table": "awkward",
        "query": None,
        "watermark_column": "updated_at",
        "watermark_kind": "timestamp",
        "tenant_column": "tenant_id",
        "primary_key": ("id",),
        "lookback": dt.timedelta(0),
        "chunk_rows": 3,
    } | table
    return SourceConfig("shop", url, "eu1", fmt, (TableSpec(**spec),), "sources/shop.yml")  # type: ignore[arg-type]


def _both(
    source: SourceConfig, lake: LocalStorage, catalog: Catalog, readers: ReaderLog
) -> tuple[EntityResult, EntityResult]:
    copied = extract_source(source, lake, catalog, full=True).entities[0]
    cursor = extract_source(source, lake, catalog, full=True, use_copy=False).entities[0]
    assert readers.readers == ["copy", "cursor"]
    return copied, cursor


def _records(lake: LocalStorage, result: EntityResult) -> list[dict[str, Any]]:
    return [record for part in result.parts for record in read_part(lake, part)]


def _typed(records: list[dict[str, Any]]) -> list[dict[str, tuple[str, str]]]:
    """Values with their Python type and exact text: Decimal('1.50') is not Decimal('1.5')."""
    return [{k: (type(v).__name__, str(v)) for k, v in r.items()} for r in records]


@postgres_only
@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_copy_and_cursor_land_the_same_records_for_awkward_values(
    fmt: str,
    source_url: str,
    source_engine: sa.Engine,
    lake: LocalStorage,
    catalog: Catalog,
    readers: ReaderLog,
) -> None:
    _create_awkward(source_engine)
    copied, cursor = _both(_source(source_url, fmt), lake, catalog, readers)

    assert copied.rows == cursor.rows == len(ROWS)
    assert len(copied.parts) == len(cursor.parts) == 3  # chunks of 3 rows
    assert copied.watermark_after == cursor.watermark_after == "2026-01-01T00:07:00+00:00"
    records = _records(lake, copied)
    assert _typed(records) == _typed(_records(lake, cursor))
    if fmt == "jsonl.gz":  # the very same JSON text, line for line
        for mine, theirs in zip(copied.parts, cursor.parts, strict=True):
            text = gzip.decompress((lake.root / mine).read_bytes())
            assert text == gzip.decompress((lake.root / theirs).read_bytes())
        assert records[1]["at_tz"] == "2026-03-01T06:30:00+00:00"
        assert records[1]["at_naive"] == "2026-03-01T12:00:00.500000+00:00"
        assert records[2]["amount"] == "-1E-10"  # as str(Decimal) spells it
        assert records[2]["blob"] == ""
        assert records[3]["docb"][3] == 12345678901234567890
    else:
        assert records[1]["amount"] == decimal.Decimal("12345678901234567890.1234567890")
        assert records[2]["blob"] == b""
        assert records[1]["at_tz"] == dt.datetime(2026, 3, 1, 6, 30, tzinfo=dt.UTC)
    assert records[2]["ratio"] is None  # NaN
    assert records[2]["score"] is None  # -Infinity
    assert records[1]["code"] == "ab    "
    assert records[2]["note"] == 'He said "hi", then\nleft\r\n\ttab \\ backslash,,"'
    assert records[2]["_tenant"] == " spaced "
    assert records[0]["_tenant"] is None


@postgres_only
def test_copy_keeps_the_declared_types_in_parquet(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    import pyarrow.parquet as pq

    _create_awkward(source_engine)
    result = extract_source(_source(source_url, "parquet"), lake, catalog).entities[0]
    schema = pq.read_schema(lake.root / result.parts[0])
    assert schema.field("small").type == pa.int16()
    assert schema.field("amount").type == pa.decimal128(30, 10)
    assert schema.field("at_naive").type == pa.timestamp("us", "UTC")
    assert schema.field("blob").type == pa.binary()
    assert schema.field("_tenant").type == pa.string()


@postgres_only
@pytest.mark.parametrize("fmt", ["jsonl.gz", "parquet"])
def test_a_query_source_takes_the_copy_path_too(
    fmt: str,
    source_url: str,
    source_engine: sa.Engine,
    lake: LocalStorage,
    catalog: Catalog,
    readers: ReaderLog,
) -> None:
    _create_awkward(source_engine)
    query = (
        "SELECT id, tenant_id, note, amount * 2 AS doubled, updated_at FROM awkward "
        "WHERE note LIKE '%\"%' OR note IS NULL OR tenant_id = 'globex'"
    )
    source = _source(source_url, fmt, table=None, query=query, chunk_rows=2)
    copied, cursor = _both(source, lake, catalog, readers)
    records = _records(lake, copied)
    assert [r["id"] for r in records] == [1, 3, 4, 5, 6, 7, 8]
    assert _typed(records) == _typed(_records(lake, cursor))

    # incremental: rows after the watermark only, the same on both paths
    with source_engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE awkward SET updated_at = updated_at + interval '1 day' WHERE id IN (3, 7)"
        )
    later = extract_source(source, lake, catalog).entities[0]
    assert [r["id"] for r in _records(lake, later)] == [3, 7]
    assert later.watermark_after == "2026-01-02T00:06:00+00:00"


@postgres_only
def test_special_numerics_and_id_watermarks(
    source_url: str,
    source_engine: sa.Engine,
    lake: LocalStorage,
    catalog: Catalog,
    readers: ReaderLog,
) -> None:
    with source_engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE nums (id bigint PRIMARY KEY, n numeric, t integer)")
        conn.exec_driver_sql(
            "INSERT INTO nums VALUES (1, 'NaN', 7), (2, 'Infinity', 8), (3, '-Infinity', NULL),"
            " (4, '0.00000000', 9), (5, '1e-20', 10), (6, '100', 11)"
        )
    source = _source(
        source_url,
        "jsonl.gz",
        table="nums",
        watermark_column="id",
        watermark_kind="id",
        lookback=0,
        tenant_column="t",
    )
    copied, cursor = _both(source, lake, catalog, readers)
    records = _records(lake, copied)
    assert records == _records(lake, cursor)
    assert [r["n"] for r in records] == ["NaN", "Infinity", "-Infinity", "0E-8", "1E-20", "100"]
    assert [r["_tenant"] for r in records] == ["7", "8", None, "9", "10", "11"]
    assert copied.watermark_after == "6"


@postgres_only
def test_columns_the_copy_path_does_not_read_take_the_cursor_path(
    source_url: str,
    source_engine: sa.Engine,
    lake: LocalStorage,
    catalog: Catalog,
    readers: ReaderLog,
) -> None:
    with source_engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE odd (id int PRIMARY KEY, tags int[], wait interval, tenant_id text, "
            "updated_at timestamptz NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO odd VALUES (1, '{1,2}', '1 hour', 'acme', '2026-01-01 00:00:00+00')"
        )
    result = extract_source(_source(source_url, "jsonl.gz", table="odd"), lake, catalog)
    assert readers.readers == ["cursor"]
    [record] = _records(lake, result.entities[0])
    assert record["tags"] == [1, 2]
    assert record["wait"] == 3600.0


@postgres_only
@pytest.mark.parametrize("use_copy", [True, False])
def test_a_value_that_cannot_be_landed_is_one_clear_error(
    use_copy: bool, source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _create_awkward(source_engine)
    with source_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE awkward SET at_tz = 'infinity' WHERE id = 5")
    with pytest.raises(ExtractError, match=r"source 'shop', entity 'awkward'.*watermark unchanged"):
        extract_source(_source(source_url, "parquet"), lake, catalog, use_copy=use_copy)
    assert catalog.watermark("shop", "awkward") is None
    [run] = catalog.list_runs(kind="extract")
    assert run.status == "failed"


def _big_table(engine: sa.Engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE big AS SELECT g AS id, 't' || mod(g, 5) AS tenant_id, "
            "repeat('x', 200) AS note, "
            "TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1 second' AS updated_at "
            f"FROM generate_series(1, {rows}) AS g"
        )


def _copy_sessions(url: str) -> list[int]:
    """Backends of the test database still running a COPY."""
    dsn = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND query LIKE 'COPY%%' AND state = 'active'"
        ).fetchall()
    return [row[0] for row in rows]


def _extractor_threads() -> list[str]:
    """The extractor's own threads still alive (other suites' long-lived threads, such as
    the query sandbox's watchdog, are not its business)."""
    mine = ("strata-pg-copy", "strata-part-writer")
    return [t.name for t in threading.enumerate() if t.name.startswith(mine)]


def _eventually(check: Any, seconds: float = 15.0) -> Any:
    """Poll ``check`` until it holds: a closed connection ends its query asynchronously."""
    deadline = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


@postgres_only
def test_a_lake_outage_mid_copy_stops_reading_and_keeps_the_watermark(
    source_url: str,
    source_engine: sa.Engine,
    lake: LocalStorage,
    catalog: Catalog,
    tmp_path: Path,
    readers: ReaderLog,
) -> None:
    _big_table(source_engine, 100_000)
    switch = tmp_path / "outage"
    faulty = FaultInjectingStorage(lake, switch)

    def pull_the_plug(entity: str, rows: int) -> None:
        switch.touch()

    source = _source(source_url, "parquet", table="big", chunk_rows=1000)
    with pytest.raises(ExtractError, match=r"entity 'awkward'.*lake .* failed.*watermark unchang"):
        extract_source(source, faulty, catalog, progress=pull_the_plug)
    assert readers.readers == []  # it failed
    assert catalog.watermark("shop", "awkward") is None
    assert _extractor_threads() == []
    assert _eventually(lambda: _copy_sessions(source_url) == [])

    switch.unlink()
    result = extract_source(source, lake, catalog).entities[0]
    assert result.rows == 100_000
    assert len(result.parts) == 100
    assert result.watermark_after == "2026-01-02T03:46:40+00:00"


@postgres_only
def test_a_connection_lost_mid_copy_is_a_database_error(
    source_url: str, source_engine: sa.Engine, lake: LocalStorage, catalog: Catalog
) -> None:
    _big_table(source_engine, 100_000)
    dsn = sa.make_url(source_url).set(drivername="postgresql").render_as_string(False)

    def kill_the_session(entity: str, rows: int) -> None:
        if rows == 1000:  # the first part is written; the COPY is still streaming
            [pid] = _eventually(lambda: _copy_sessions(source_url))
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    source = _source(source_url, "jsonl.gz", table="big", chunk_rows=1000)
    with pytest.raises(ExtractError, match=r"entity 'awkward': database error: .*unchanged"):
        extract_source(source, lake, catalog, progress=kill_the_session)
    assert catalog.watermark("shop", "awkward") is None
    assert _extractor_threads() == []


# -- the Arrow JSON encoder against the record encoder -------------------------------------

SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("s16", pa.int16()),
        ("f", pa.float64()),
        ("d", pa.decimal128(38, 10)),
        ("b", pa.bool_()),
        ("text", pa.string()),
        ("t", pa.timestamp("us", "UTC")),
        ("naive", pa.timestamp("us")),
        ("day", pa.date32()),
        ("raw", pa.binary()),
        ("nothing", pa.null()),
    ]
)
MOMENTS = st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))
ROW = st.fixed_dictionaries(
    {
        "i": st.none() | st.integers(-(2**63), 2**63 - 1),
        "s16": st.none() | st.integers(-(2**15), 2**15 - 1),
        "f": st.none() | st.floats(allow_nan=True, allow_infinity=True),
        "d": st.none()
        | st.decimals(places=10, min_value=-(10**27), max_value=10**27, allow_nan=False),
        "b": st.none() | st.booleans(),
        "text": st.none() | st.text(),
        "t": st.none() | MOMENTS.map(lambda m: m.replace(tzinfo=dt.UTC)),
        "naive": st.none() | MOMENTS,
        "day": st.none() | st.dates(),
        "raw": st.none() | st.binary(),
        "nothing": st.none(),
    }
)


@settings(max_examples=200, deadline=None)
@given(st.lists(ROW, max_size=12))
def test_the_arrow_encoder_writes_the_text_the_record_encoder_writes(
    rows: list[dict[str, Any]],
) -> None:
    table = pa.Table.from_pylist(rows, SCHEMA)
    expected = gzip.decompress(encode_part(table.to_pylist()))
    assert gzip.decompress(encode_jsonl_table(table)) == expected


def test_a_big_part_is_encoded_a_slice_at_a_time_into_one_gzip_member() -> None:
    n = 40_000  # more than one slice of rows
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "note": pa.array([None if i % 7 == 0 else f'n"{i}' for i in range(n)], pa.string()),
        }
    )
    member = zlib.decompressobj(31)  # gzip framing
    text = member.decompress(encode_jsonl_table(table))
    assert member.eof
    assert not member.unused_data  # one member, not one per slice
    assert text == gzip.decompress(encode_part(table.to_pylist()))
    assert text.count(b"\n") == n
