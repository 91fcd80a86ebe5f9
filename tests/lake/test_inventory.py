"""The lake inventory: rows from Parquet footers, aggregated per table and per tenant."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strata.core.errors import InvalidIdentifierError
from strata.lake.inventory import CountedFile, aggregate, inventory
from strata.lake.paths import BronzePartition
from strata.lake.storage import LakeStorage, LocalStorage, open_lake

DAY1 = dt.date(2026, 1, 1)
DAY2 = dt.date(2026, 1, 2)


def parquet(rows: int) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.table({"id": pa.array(range(rows), pa.int64())}), buf)
    return buf.getvalue()


def put(
    storage: LakeStorage,
    namespace: str,
    table: str,
    tenant: str,
    day: dt.date,
    rows: int,
    *,
    quarantine: bool = False,
) -> int:
    """Write one bronze file; returns its size."""
    data = parquet(rows)
    partition = BronzePartition(namespace, table, tenant, day, quarantine)
    storage.write_atomic(partition.file(uuid.uuid4()).path, data)
    return len(data)


@pytest.fixture
def lake(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "lake", fsync=False)


def test_aggregates_tables_tenants_and_partitions(lake: LocalStorage) -> None:
    sizes = [
        put(lake, "wfm", "profiles", "acme", DAY1, 10),
        put(lake, "wfm", "profiles", "acme", DAY1, 5),  # same partition, second file
        put(lake, "wfm", "profiles", "acme", DAY2, 1),
        put(lake, "wfm", "profiles", "globex", DAY1, 4),
    ]
    put(lake, "labs", "test_results", "acme", DAY1, 7)
    q = put(lake, "wfm", "profiles", "globex", DAY2, 2, quarantine=True)

    inv = inventory(lake)

    assert [(t.namespace, t.table, t.quarantine) for t in inv.tables] == [
        ("labs", "test_results", False),
        ("wfm", "profiles", False),
        ("wfm", "profiles", True),  # quarantine sorts after the tables of its namespace
    ]
    profiles = inv.find("wfm", "profiles")
    assert profiles is not None
    assert (profiles.tenants, profiles.partitions, profiles.files, profiles.rows) == (2, 3, 4, 20)
    assert profiles.bytes == sum(sizes)
    quarantine = inv.find("wfm", "profiles", quarantine=True)
    assert quarantine is not None
    assert (quarantine.tenants, quarantine.files, quarantine.rows, quarantine.bytes) == (1, 1, 2, q)
    assert inv.quarantine_tables == (quarantine,)
    assert (inv.files, inv.rows) == (6, 29)


def test_per_tenant_breakdown(lake: LocalStorage) -> None:
    put(lake, "wfm", "profiles", "acme", DAY1, 10)
    put(lake, "wfm", "profiles", "acme", DAY2, 3)
    put(lake, "wfm", "profiles", "globex", DAY1, 4)
    tenants = {t.tenant: t for t in inventory(lake).tenants}
    assert (tenants["acme"].partitions, tenants["acme"].files, tenants["acme"].rows) == (2, 2, 13)
    assert (tenants["globex"].partitions, tenants["globex"].rows) == (1, 4)


def test_filters_by_namespace_and_table(lake: LocalStorage) -> None:
    put(lake, "wfm", "profiles", "acme", DAY1, 1)
    put(lake, "wfm", "licenses", "acme", DAY1, 2)
    put(lake, "wfm", "licenses", "acme", DAY1, 3, quarantine=True)
    put(lake, "labs", "licenses", "acme", DAY1, 4)
    only_wfm = inventory(lake, namespace="wfm")
    assert {t.namespace for t in only_wfm.tables} == {"wfm"}
    licenses = inventory(lake, namespace="wfm", table="licenses")
    assert [(t.table, t.quarantine, t.rows) for t in licenses.tables] == [
        ("licenses", False, 2),
        ("licenses", True, 3),
    ]
    assert {(t.namespace, t.rows) for t in inventory(lake, table="licenses").tables} == {
        ("labs", 4),
        ("wfm", 2),
        ("wfm", 3),
    }


def test_foreign_and_unreadable_files_are_reported_not_counted(lake: LocalStorage) -> None:
    put(lake, "wfm", "profiles", "acme", DAY1, 10)
    lake.write_atomic("wfm/profiles/export.parquet", parquet(99))  # not a bronze path
    lake.write_atomic("bronze/crm/scope=x/part-0.jsonl.gz", b"{}")  # not parquet at all
    broken = BronzePartition("wfm", "profiles", "acme", DAY2).file(uuid.uuid4()).path
    lake.write_atomic(broken, b"PAR1 truncated")
    inv = inventory(lake)
    assert inv.skipped == 1
    assert inv.unreadable == (broken,)
    assert inv.rows == 10
    body = inv.as_dict()
    assert body["skipped_files"] == 1
    assert body["unreadable_files"] == [broken]
    assert "tenants" not in body
    assert "tenants" in inv.as_dict(by_tenant=True)


def test_empty_and_missing_lakes(tmp_path: Path) -> None:
    inv = inventory(LocalStorage(tmp_path / "nowhere"))
    assert (inv.tables, inv.tenants, inv.skipped, inv.rows) == ((), (), 0, 0)


def test_filters_are_validated(lake: LocalStorage) -> None:
    with pytest.raises(InvalidIdentifierError):
        inventory(lake, namespace="../etc")
    with pytest.raises(InvalidIdentifierError):
        inventory(lake, table="Profiles")


def test_fsspec_storage(tmp_path: Path) -> None:
    storage = open_lake(f"memory://strata-inventory-{uuid.uuid4().hex}")
    put(storage, "wfm", "profiles", "acme", DAY1, 6)
    put(storage, "wfm", "profiles", "globex", DAY1, 1)
    profiles = inventory(storage).find("wfm", "profiles")
    assert profiles is not None
    assert (profiles.tenants, profiles.files, profiles.rows) == (2, 2, 7)


files_st = st.lists(
    st.tuples(
        st.sampled_from(["wfm", "labs"]),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["t1", "t2", "t3"]),
        st.integers(0, 3),
        st.booleans(),
        st.integers(0, 1000),
        st.integers(0, 10_000),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None, database=None)
@given(files=files_st)
def test_aggregate_totals_match_the_files(
    files: list[tuple[str, str, str, int, bool, int, int]],
) -> None:
    counted = [
        CountedFile(
            BronzePartition(ns, table, tenant, DAY1 + dt.timedelta(days=d), q).file(uuid.uuid4()),
            size,
            rows,
        )
        for ns, table, tenant, d, q, rows, size in files
    ]
    inv = aggregate(counted)
    assert inv.rows == sum(f[5] for f in files) == sum(t.rows for t in inv.tenants)
    assert inv.bytes == sum(f[6] for f in files)
    assert inv.files == len(files)
    for t in inv.tables:
        mine = [f for f in files if (f[0], f[1], f[4]) == (t.namespace, t.table, t.quarantine)]
        assert t.tenants == len({f[2] for f in mine})
        assert t.partitions == len({(f[2], f[3]) for f in mine})
