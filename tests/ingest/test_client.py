"""The ingest SDK end to end: real writer process, real files, Parquet read back with pyarrow."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from strata.core.errors import InvalidIdentifierError
from strata.core.timeutil import to_epoch_us
from strata.ingest import ClientClosedError, IngestClient, IngestConfig, InvalidRecordError
from strata.lake.paths import parse_bronze_path

NAMESPACE = "wfm"
SERVICE = "wfm-service"
# Sealing is driven by flush() in most tests; a long age keeps the writer from sealing early.
BY_FLUSH = IngestConfig(batch_max_age_s=60.0)
FLUSH_TIMEOUT_S = 20.0


def open_client(tmp_path: Path, config: IngestConfig = BY_FLUSH, **kwargs: Any) -> IngestClient:
    return IngestClient(
        str(tmp_path / "lake"),
        namespace=NAMESPACE,
        source_service=SERVICE,
        journal_dir=tmp_path / "journal",
        config=config,
        **kwargs,
    )


def lake_files(tmp_path: Path, prefix: str = NAMESPACE) -> list[str]:
    """Lake-relative paths of every committed Parquet file under ``prefix``."""
    lake = tmp_path / "lake"
    base = lake / prefix
    if not base.exists():
        return []
    return sorted(p.relative_to(lake).as_posix() for p in base.rglob("*.parquet"))


def read_rows(tmp_path: Path, prefix: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for rel in lake_files(tmp_path, prefix):
        rows.extend(pq.read_table(tmp_path / "lake" / rel).to_pylist())
    return rows


def wait_for_files(tmp_path: Path, count: int, timeout_s: float = 5.0) -> list[str]:
    """Poll the lake until ``count`` files exist (or the timeout passes); returns what is there."""
    deadline = time.monotonic() + timeout_s
    found = lake_files(tmp_path)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        found = lake_files(tmp_path)
    return found


def utc_us(*args: int) -> int:
    return to_epoch_us(dt.datetime(*args, tzinfo=dt.UTC))


class FixedClock:
    """An injected clock a test moves by hand (epoch microseconds)."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def __call__(self) -> int:
        return self.now_us


# -- where records land and what they look like --------------------------------------------


def test_records_land_at_the_seed_path_with_lineage_columns(tmp_path: Path) -> None:
    clock = FixedClock(utc_us(2024, 2, 29, 12, 30, 0))
    with open_client(tmp_path, clock=clock) as client:
        client.ingest("profiles", "acme", {"id": 1, "name": "Ana"})
        client.flush(FLUSH_TIMEOUT_S)

    (path,) = lake_files(tmp_path)
    assert re.fullmatch(
        r"wfm/profiles/tenant=acme/year=2024/month=02/day=29/"
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.parquet",
        path,
    )
    parsed = parse_bronze_path(path)
    assert (parsed.partition.table, parsed.partition.tenant) == ("profiles", "acme")
    assert not parsed.partition.quarantine

    table = pq.read_table(tmp_path / "lake" / path)
    assert table.column_names == ["id", "name", "ingested_at", "source_service"]
    assert table.schema.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    assert table.to_pylist() == [
        {
            "id": 1,
            "name": "Ana",
            "ingested_at": dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.UTC),
            "source_service": SERVICE,
        }
    ]


def test_values_and_types_are_preserved(tmp_path: Path) -> None:
    record = {
        "i": -(2**63),
        "f": 2.5,
        "s": "zoë ☃",
        "b": True,
        "none_after": 7,
        "aware": dt.datetime(
            2024, 5, 1, 9, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))
        ),
        "naive": dt.datetime(2024, 5, 1, 9, 0, 0, 654321),
        "day": dt.date(2024, 5, 1),
        "amount": decimal.Decimal("12345.678900"),
        "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "attrs": {"skills": ["forklift", "first-aid"], "level": 3},
        "tags": ["a", 1, None],
    }
    nulls = dict.fromkeys(record)
    with open_client(tmp_path) as client:
        client.ingest("profiles", "acme", record)
        client.ingest("profiles", "acme", nulls)
        client.flush(FLUSH_TIMEOUT_S)

    (path,) = lake_files(tmp_path)
    table = pq.read_table(tmp_path / "lake" / path)
    schema = table.schema
    expected_types = {
        "i": pa.int64(),
        "f": pa.float64(),
        "s": pa.string(),
        "b": pa.bool_(),
        "none_after": pa.int64(),
        "aware": pa.timestamp("us", tz="UTC"),
        "naive": pa.timestamp("us", tz="UTC"),
        "day": pa.date32(),
        "amount": pa.string(),
        "ref": pa.string(),
        "attrs": pa.string(),
        "tags": pa.string(),
        "ingested_at": pa.timestamp("us", tz="UTC"),
        "source_service": pa.string(),
    }
    assert {f.name: f.type for f in schema} == expected_types
    assert schema.field("amount").metadata == {b"strata.kind": b"decimal"}
    assert schema.field("attrs").metadata == {b"strata.kind": b"json"}
    assert schema.field("tags").metadata == {b"strata.kind": b"json"}
    assert schema.field("ref").metadata is None

    landed, empty = table.to_pylist()
    assert landed["i"] == -(2**63)
    assert landed["f"] == 2.5
    assert landed["s"] == "zoë ☃"
    assert landed["b"] is True
    assert landed["aware"] == dt.datetime(2024, 5, 1, 7, 0, 0, 123456, tzinfo=dt.UTC)
    assert landed["naive"] == dt.datetime(2024, 5, 1, 9, 0, 0, 654321, tzinfo=dt.UTC)
    assert landed["day"] == dt.date(2024, 5, 1)
    assert landed["amount"] == "12345.678900"
    assert decimal.Decimal(landed["amount"]) == record["amount"]
    assert landed["ref"] == "12345678-1234-5678-1234-567812345678"
    assert orjson.loads(landed["attrs"]) == {"skills": ["forklift", "first-aid"], "level": 3}
    assert orjson.loads(landed["tags"]) == ["a", 1, None]
    assert landed["source_service"] == SERVICE
    assert {k: v for k, v in empty.items() if k not in ("ingested_at", "source_service")} == nulls


# -- batching: one file per (table, tenant, day) -------------------------------------------


def test_a_thousand_ingest_calls_make_one_file(tmp_path: Path) -> None:
    with open_client(tmp_path) as client:
        for i in range(1000):
            client.ingest("events", "acme", {"seq": i})
        client.flush(FLUSH_TIMEOUT_S)
        stats = client.stats()

    (path,) = lake_files(tmp_path)
    assert pq.read_table(tmp_path / "lake" / path).column("seq").to_pylist() == list(range(1000))
    assert stats.files_written == 1


def test_one_file_per_table_tenant_and_day(tmp_path: Path) -> None:
    tables, tenants = ("events", "profiles"), ("acme", "globex", "7")
    with open_client(tmp_path) as client:
        for i in range(60):
            for table in tables:
                for tenant in tenants:
                    client.ingest(table, tenant, {"seq": i, "table": table, "tenant": tenant})
        client.flush(FLUSH_TIMEOUT_S)

    files = lake_files(tmp_path)
    assert len(files) == len(tables) * len(tenants)
    for rel in files:
        partition = parse_bronze_path(rel).partition
        rows = pq.read_table(tmp_path / "lake" / rel).to_pylist()
        assert [r["seq"] for r in rows] == list(range(60))
        assert {(r["table"], r["tenant"]) for r in rows} == {(partition.table, partition.tenant)}


def test_a_batch_is_sealed_by_age_without_flush(tmp_path: Path) -> None:
    with open_client(tmp_path, IngestConfig(batch_max_age_s=0.2)) as client:
        client.ingest("events", "acme", {"seq": 1})
        assert len(wait_for_files(tmp_path, 1)) == 1


def test_a_batch_is_sealed_by_record_count_without_flush(tmp_path: Path) -> None:
    config = IngestConfig(batch_max_records=100, batch_max_age_s=60.0)
    with open_client(tmp_path, config) as client:
        for i in range(350):
            client.ingest("events", "acme", {"seq": i})
        files = wait_for_files(tmp_path, 3)
        sizes = [pq.read_metadata(tmp_path / "lake" / f).num_rows for f in files]
        assert len(files) >= 3, f"expected >= 3 files of <= 100 records, got sizes {sizes}"
        assert all(size <= 100 for size in sizes), sizes
        client.flush(FLUSH_TIMEOUT_S)
    rows = read_rows(tmp_path, "wfm/events")
    assert sorted(r["seq"] for r in rows) == list(range(350))


# -- bad input is refused at the call site -------------------------------------------------


class _Opaque:
    pass


BAD_RECORDS: list[tuple[str, object, str | None, str]] = [
    # (case id, record, field named by the error, message fragment)
    ("list", ["id", 1], None, "record must be a dict, got list"),
    ("str", "id=1", None, "record must be a dict, got str"),
    ("none", None, None, "record must be a dict, got NoneType"),
    ("set", {"skills": {"forklift"}}, "skills", "type set cannot be stored"),
    ("object", {"owner": _Opaque()}, "owner", "type _Opaque cannot be stored"),
    ("bytes", {"blob": b"\x00"}, "blob", "type bytes cannot be stored"),
    ("nan", {"score": math.nan}, "score", "nan cannot be stored"),
    ("inf", {"score": math.inf}, "score", "inf cannot be stored"),
    ("minus-inf", {"score": -math.inf}, "score", "-inf cannot be stored"),
    ("int-too-big", {"big": 2**64}, "big", "64-bit"),
    ("int-too-small", {"big": -(2**63) - 1}, "big", "64-bit"),
    ("reserved-ingested-at", {"ingested_at": 1}, "ingested_at", "reserved"),
    ("reserved-source-service", {"source_service": "x"}, "source_service", "reserved"),
    ("int-key", {1: "one"}, "1", "field names must be strings, got int"),
    ("empty-key", {"": 1}, "", "must not be empty"),
    ("nested-set", {"attrs": {"a": {1}}}, "attrs", "set"),
    ("nested-int-key", {"attrs": {1: "a"}}, "attrs", "key must be str"),
]


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestClient]:
    """One client for the many call-site checks that never need the lake."""
    with open_client(tmp_path_factory.mktemp("shared")) as client:
        yield client


@pytest.mark.parametrize(
    ("record", "field", "fragment"),
    [pytest.param(r, f, m, id=case) for case, r, f, m in BAD_RECORDS],
)
def test_invalid_record_is_rejected_naming_what_is_wrong(
    shared_client: IngestClient, record: object, field: str | None, fragment: str
) -> None:
    before = shared_client.stats()
    with pytest.raises(InvalidRecordError) as info:
        shared_client.ingest("events", "acme", record)  # type: ignore[arg-type]
    error = info.value
    assert (error.table, error.tenant, error.field, error.index) == ("events", "acme", field, None)
    assert fragment in str(error)
    assert "table 'events', tenant 'acme'" in str(error)
    after = shared_client.stats()
    assert after.rejected == before.rejected + 1
    assert after.accepted == before.accepted


@pytest.mark.parametrize(
    ("table", "tenant", "kind"),
    [
        pytest.param("Events", "acme", "table", id="table-uppercase"),
        pytest.param("1events", "acme", "table", id="table-digit-first"),
        pytest.param("ev-ents", "acme", "table", id="table-dash"),
        pytest.param("", "acme", "table", id="table-empty"),
        pytest.param(None, "acme", "table", id="table-none"),
        pytest.param("events", "Acme", "tenant", id="tenant-uppercase"),
        pytest.param("events", "", "tenant", id="tenant-empty"),
        pytest.param("events", "a/b", "tenant", id="tenant-slash"),
        pytest.param("events", "..", "tenant", id="tenant-dots"),
        pytest.param("events", -1, "tenant", id="tenant-negative"),
        pytest.param("events", True, "tenant", id="tenant-bool"),
        pytest.param("events", 1.0, "tenant", id="tenant-float"),
        pytest.param("events", "x" * 65, "tenant", id="tenant-too-long"),
    ],
)
def test_invalid_identifier_is_rejected(
    shared_client: IngestClient, table: object, tenant: object, kind: str
) -> None:
    before = shared_client.stats().rejected
    with pytest.raises(InvalidIdentifierError) as info:
        shared_client.ingest(table, tenant, {"id": 1})  # type: ignore[arg-type]
    assert info.value.kind == kind
    assert f"invalid {kind}" in str(info.value)
    assert shared_client.stats().rejected == before + 1


def test_tenant_check_does_not_depend_on_earlier_calls(shared_client: IngestClient) -> None:
    """``True == 1 == 1.0`` in Python; a valid tenant 1 must not let True or 1.0 through."""
    shared_client.ingest("cache_check", 1, {"id": 1})
    for tenant in (True, 1.0):
        with pytest.raises(InvalidIdentifierError):
            shared_client.ingest("cache_check", tenant, {"id": 2})  # type: ignore[arg-type]


def test_ints_are_accepted_as_tenants(shared_client: IngestClient) -> None:
    shared_client.ingest("numbered", 42, {"id": 1})
    shared_client.ingest("numbered", 0, {"id": 1})


def test_rejected_records_never_land_and_good_ones_around_them_do(tmp_path: Path) -> None:
    bad = [record for _, record, _, _ in BAD_RECORDS]
    with open_client(tmp_path) as client:
        client.ingest("events", "acme", {"id": 0})
        for i, record in enumerate(bad, start=1):
            with pytest.raises(InvalidRecordError):
                client.ingest("events", "acme", record)  # type: ignore[arg-type]
            client.ingest("events", "acme", {"id": i})
        with pytest.raises(InvalidIdentifierError):
            client.ingest("events", "Acme", {"id": -1})
        client.flush(FLUSH_TIMEOUT_S)
        stats = client.stats()

    rows = read_rows(tmp_path, "wfm/events")
    assert [r["id"] for r in rows] == list(range(len(bad) + 1))
    assert lake_files(tmp_path, "wfm/_quarantine") == []
    assert (stats.accepted, stats.rejected, stats.written) == (
        len(bad) + 1,
        len(bad) + 1,
        len(bad) + 1,
    )


def test_a_rejected_record_does_not_change_its_tables_shape(tmp_path: Path) -> None:
    """Only accepted records teach a table its columns: a NaN that was refused must not make
    ``score`` a float column, nor send a later string ``score`` to quarantine."""
    with open_client(tmp_path) as client:
        with pytest.raises(InvalidRecordError):
            client.ingest("events", "acme", {"id": 1, "score": math.nan})
        with pytest.raises(InvalidRecordError):
            client.ingest("events", "acme", {"id": 2, "big": 2**70})
        client.ingest("events", "acme", {"id": 3})
        client.flush(FLUSH_TIMEOUT_S)
        assert pq.read_table(tmp_path / "lake" / lake_files(tmp_path)[0]).column_names == [
            "id",
            "ingested_at",
            "source_service",
        ]
        client.ingest("events", "acme", {"id": 4, "score": "high", "big": "yes"})
        client.flush(FLUSH_TIMEOUT_S)
        assert client.stats().quarantined == 0
    assert lake_files(tmp_path, "wfm/_quarantine") == []


def test_unsigned_64_bit_ints_are_refused_not_landed_in_quarantine(tmp_path: Path) -> None:
    """2**63 fits JSON's u64 but not the int64 column: it must fail at the call site and
    never take the good records of its batch down with it."""
    with open_client(tmp_path) as client:
        client.ingest("events", "acme", {"id": 1})
        with pytest.raises(InvalidRecordError) as info:
            client.ingest("events", "acme", {"id": 2**63})
        assert info.value.field == "id"
        client.ingest("events", "acme", {"id": 3})
        client.flush(FLUSH_TIMEOUT_S)
    assert [r["id"] for r in read_rows(tmp_path, "wfm/events")] == [1, 3]
    assert lake_files(tmp_path, "wfm/_quarantine") == []


# -- ingest_many ---------------------------------------------------------------------------


def test_ingest_many_is_all_or_nothing(tmp_path: Path) -> None:
    records: list[Any] = [{"id": 0}, {"id": 1}, {"id": 2, "skills": {"forklift"}}, {"id": 3}]
    with open_client(tmp_path) as client:
        with pytest.raises(InvalidRecordError) as info:
            client.ingest_many("events", "acme", records)
        assert (info.value.index, info.value.field) == (2, "skills")
        assert "record #2" in str(info.value)

        records[2] = "not a record"
        with pytest.raises(InvalidRecordError) as info:
            client.ingest_many("events", "acme", records)
        assert info.value.index == 2
        assert "record must be a dict" in str(info.value)

        stats = client.stats()
        assert (stats.accepted, stats.rejected) == (0, 2)
        client.flush(FLUSH_TIMEOUT_S)
        assert lake_files(tmp_path) == []

        records[2] = {"id": 2}
        assert client.ingest_many("events", "acme", iter(records)) == 4
        client.flush(FLUSH_TIMEOUT_S)
        assert client.stats().accepted == 4
    assert [r["id"] for r in read_rows(tmp_path, "wfm/events")] == [0, 1, 2, 3]


def test_ingest_many_and_ingest_share_one_file(tmp_path: Path) -> None:
    with open_client(tmp_path) as client:
        client.ingest_many("events", "acme", ({"seq": i} for i in range(5000)))
        client.ingest("events", "acme", {"seq": 5000})
        client.flush(FLUSH_TIMEOUT_S)
    (path,) = lake_files(tmp_path)
    assert pq.read_table(tmp_path / "lake" / path).column("seq").to_pylist() == list(range(5001))


# -- shapes and quarantine -----------------------------------------------------------------


def test_a_conflicting_record_lands_in_quarantine(tmp_path: Path) -> None:
    clock = FixedClock(utc_us(2024, 7, 4, 8, 0, 0))
    with open_client(tmp_path, clock=clock) as client:
        client.ingest("events", "acme", {"id": 1, "hours": 8})
        client.ingest("events", "acme", {"id": 2, "hours": "eight"})
        client.ingest("events", "acme", {"id": 3, "hours": 7})
        client.flush(FLUSH_TIMEOUT_S)
        stats = client.stats()

    assert (stats.accepted, stats.quarantined, stats.written) == (3, 1, 3)
    assert [(r["id"], r["hours"]) for r in read_rows(tmp_path, "wfm/events")] == [(1, 8), (3, 7)]

    (path,) = lake_files(tmp_path, "wfm/_quarantine")
    assert path.startswith("wfm/_quarantine/events/tenant=acme/year=2024/month=07/day=04/")
    assert parse_bronze_path(path).partition.quarantine
    table = pq.read_table(tmp_path / "lake" / path)
    assert table.column_names == ["record", "reason", "ingested_at", "source_service"]
    assert table.schema.field("ingested_at").type == pa.timestamp("us", tz="UTC")
    (row,) = table.to_pylist()
    assert orjson.loads(row["record"]) == {"id": 2, "hours": "eight"}
    assert "'hours'" in row["reason"]
    assert "string" in row["reason"]
    assert "int" in row["reason"]
    assert row["ingested_at"] == dt.datetime(2024, 7, 4, 8, tzinfo=dt.UTC)
    assert row["source_service"] == SERVICE


def test_conflicts_in_ingest_many_are_quarantined_one_by_one(tmp_path: Path) -> None:
    with open_client(tmp_path) as client:
        client.ingest_many("events", "acme", [{"v": 1}, {"v": "x"}, {"v": 2}, {"v": True}])
        client.flush(FLUSH_TIMEOUT_S)
        assert client.stats().quarantined == 2
    assert sorted(r["v"] for r in read_rows(tmp_path, "wfm/events")) == [1, 2]
    quarantined = read_rows(tmp_path, "wfm/_quarantine/events")
    assert sorted(r["record"] for r in quarantined) == ['{"v":"x"}', '{"v":true}']


def test_int_widening_to_float_is_not_a_conflict(tmp_path: Path) -> None:
    with open_client(tmp_path) as client:
        client.ingest("events", "acme", {"v": 1})
        client.ingest("events", "acme", {"v": 2.5})
        client.ingest("events", "acme", {"v": 3})
        client.flush(FLUSH_TIMEOUT_S)
        assert client.stats().quarantined == 0
    (path,) = lake_files(tmp_path)
    table = pq.read_table(tmp_path / "lake" / path)
    assert table.schema.field("v").type == pa.float64()
    assert table.column("v").to_pylist() == [1.0, 2.5, 3.0]


def test_a_field_that_only_held_none_is_no_column_and_no_conflict(tmp_path: Path) -> None:
    with open_client(tmp_path) as client:
        client.ingest("events", "acme", {"id": 1, "note": None})
        client.ingest("events", "acme", {"id": 2, "note": None})
        client.flush(FLUSH_TIMEOUT_S)
        (first,) = lake_files(tmp_path)
        assert pq.read_table(tmp_path / "lake" / first).column_names == [
            "id",
            "ingested_at",
            "source_service",
        ]

        client.ingest("events", "acme", {"id": 3, "note": "late"})
        client.ingest("events", "acme", {"id": 4, "note": None})
        client.flush(FLUSH_TIMEOUT_S)
        assert client.stats().quarantined == 0

    (second,) = [f for f in lake_files(tmp_path) if f != first]
    table = pq.read_table(tmp_path / "lake" / second)
    assert table.schema.field("note").type == pa.string()
    assert table.column("note").to_pylist() == ["late", None]


def test_shapes_persist_across_clients(tmp_path: Path) -> None:
    with open_client(tmp_path) as client:
        client.ingest("events", "acme", {"hours": 8})
    with open_client(tmp_path) as client:
        client.ingest("events", "acme", {"hours": "eight"})
        client.ingest("events", "acme", {"hours": 9.5})
        client.flush(FLUSH_TIMEOUT_S)
        assert client.stats().quarantined == 1
    (row,) = read_rows(tmp_path, "wfm/_quarantine/events")
    assert orjson.loads(row["record"]) == {"hours": "eight"}
    assert sorted(r["hours"] for r in read_rows(tmp_path, "wfm/events")) == [8, 9.5]


# -- concurrency, lifecycle and stats ------------------------------------------------------


def test_concurrent_ingest_from_many_threads(tmp_path: Path) -> None:
    threads, per_thread = 8, 2000
    errors: list[BaseException] = []
    with open_client(tmp_path) as client:
        start = threading.Barrier(threads)

        def produce(worker: int) -> None:
            try:
                start.wait()
                for seq in range(per_thread):
                    client.ingest("events", f"t{worker % 2}", {"worker": worker, "seq": seq})
            except BaseException as exc:  # surfaced in the main thread below
                errors.append(exc)

        pool = [threading.Thread(target=produce, args=(w,)) for w in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        client.flush(FLUSH_TIMEOUT_S)
        stats = client.stats()

    assert errors == []
    rows = read_rows(tmp_path, "wfm/events")
    assert len(rows) == threads * per_thread
    assert len({(r["worker"], r["seq"]) for r in rows}) == threads * per_thread
    assert (stats.accepted, stats.written) == (threads * per_thread, threads * per_thread)
    for tenant in ("t0", "t1"):
        tenant_rows = read_rows(tmp_path, f"wfm/events/tenant={tenant}")
        assert {r["worker"] % 2 for r in tenant_rows} == {int(tenant[1])}


def test_ingest_after_close_raises_client_closed(tmp_path: Path) -> None:
    client = open_client(tmp_path)
    client.ingest("events", "acme", {"id": 1})
    client.close()
    client.close()  # idempotent
    with pytest.raises(ClientClosedError):
        client.ingest("events", "acme", {"id": 2})
    with pytest.raises(ClientClosedError):
        client.ingest_many("events", "acme", [{"id": 3}])
    assert [r["id"] for r in read_rows(tmp_path, "wfm/events")] == [1]


def test_ingest_after_close_with_a_new_shape_raises_client_closed(tmp_path: Path) -> None:
    """A record of a never-seen shape must not touch the released journal either."""
    client = open_client(tmp_path)
    client.ingest("events", "acme", {"id": 1})
    client.close()
    shapes = tmp_path / "journal" / NAMESPACE / SERVICE / "shapes.json"
    before = shapes.read_bytes()
    with pytest.raises(ClientClosedError):
        client.ingest("events", "acme", {"id": 2, "name": "new field"})
    with pytest.raises(ClientClosedError):
        client.ingest("other", "acme", {"id": 3})
    assert shapes.read_bytes() == before


def test_two_clients_on_one_journal_root_get_their_own_slots(tmp_path: Path) -> None:
    slots = tmp_path / "journal" / NAMESPACE / SERVICE
    with open_client(tmp_path) as first, open_client(tmp_path) as second:
        assert sorted(p.name for p in slots.glob("slot-*")) == ["slot-0", "slot-1"]
        first.ingest("events", "acme", {"client": 1})
        second.ingest("events", "globex", {"client": 2})
    assert [r["client"] for r in read_rows(tmp_path, "wfm/events/tenant=acme")] == [1]
    assert [r["client"] for r in read_rows(tmp_path, "wfm/events/tenant=globex")] == [2]
    # A later client takes the freed first slot again.
    with open_client(tmp_path) as third:
        third.ingest("events", "acme", {"client": 3})
    assert sorted(p.name for p in slots.glob("slot-*")) == ["slot-0", "slot-1"]


def test_stats_counters(tmp_path: Path) -> None:
    with open_client(tmp_path) as client:
        assert client.stats().accepted == 0
        for i in range(10):
            client.ingest("events", "acme", {"id": i})
        client.ingest_many("events", "globex", [{"id": i} for i in range(5)])
        client.ingest("events", "acme", {"id": "conflict"})
        with pytest.raises(InvalidRecordError):
            client.ingest("events", "acme", {"id": {1}})

        before = client.stats()
        assert (before.accepted, before.rejected, before.quarantined) == (16, 1, 1)
        assert before.written == 0
        assert before.journal_backlog == 16
        assert before.journal_bytes > 0

        client.flush(FLUSH_TIMEOUT_S)
        after = client.stats()

    assert (after.accepted, after.written, after.journal_backlog) == (16, 16, 0)
    assert after.files_written == 3  # acme, globex, acme quarantine
    assert (after.replayed, after.retried, after.writer_restarts) == (0, 0, 0)
    assert after.buffered_bytes == 0
    assert after.last_error is None
    assert after.as_dict()["files_written"] == 3


# -- the clock decides the day -------------------------------------------------------------


def test_the_injected_clock_decides_the_day_partition(tmp_path: Path) -> None:
    clock = FixedClock(utc_us(2024, 3, 31, 23, 59, 59, 999999))
    with open_client(tmp_path, clock=clock) as client:
        client.ingest("events", "acme", {"id": 1})
        clock.now_us += 1
        client.ingest("events", "acme", {"id": 2})
        client.flush(FLUSH_TIMEOUT_S)

    files = lake_files(tmp_path)
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "wfm/events/tenant=acme/year=2024/month=03/day=31",
        "wfm/events/tenant=acme/year=2024/month=04/day=01",
    ]
    (march,), (april,) = (pq.read_table(tmp_path / "lake" / f).to_pylist() for f in files)
    assert (march["id"], march["ingested_at"]) == (
        1,
        dt.datetime(2024, 3, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    )
    assert (april["id"], april["ingested_at"]) == (2, dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
