"""What the bronze lake holds: files, rows and bytes per table and per tenant.

Row counts come from Parquet footers (a few KiB per file), never from the data pages, so an
inventory of a large lake costs one small read per file. Aggregation is a pure function of
the listed files, separate from the reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Final

import pyarrow as pa
import pyarrow.parquet as pq

from strata.core.identifiers import validate_name
from strata.lake.paths import BronzeFile, InvalidBronzePathError, parse_bronze_path
from strata.lake.storage import LakeStorage, LakeUnavailableError, StoredFile

# Footer reads are latency-bound on object stores; a few in flight hide most of it.
_READERS: Final = 8


@dataclass(frozen=True, slots=True)
class TableInventory:
    namespace: str
    table: str
    quarantine: bool  # the table's quarantine (records whose shape conflicted), not the table
    tenants: int
    partitions: int  # distinct (tenant, day)
    files: int
    rows: int
    bytes: int


@dataclass(frozen=True, slots=True)
class TenantInventory:
    namespace: str
    table: str
    quarantine: bool
    tenant: str
    partitions: int  # distinct days
    files: int
    rows: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LakeInventory:
    """Tables and per-tenant breakdown, each sorted by (namespace, quarantine, table[, tenant])."""

    tables: tuple[TableInventory, ...]
    tenants: tuple[TenantInventory, ...]
    skipped: int  # files that are not bronze record files (e.g. extracted jsonl batches)
    unreadable: tuple[str, ...]  # bronze paths whose Parquet footer could not be read

    @property
    def quarantine_tables(self) -> tuple[TableInventory, ...]:
        return tuple(t for t in self.tables if t.quarantine)

    @property
    def files(self) -> int:
        return sum(t.files for t in self.tables)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def find(
        self, namespace: str, table: str, *, quarantine: bool = False
    ) -> TableInventory | None:
        key = (namespace, table, quarantine)
        return next((t for t in self.tables if (t.namespace, t.table, t.quarantine) == key), None)

    def as_dict(self, *, by_tenant: bool = False) -> dict[str, object]:
        """Plain values for JSON output; the per-tenant rows only when asked for."""
        body: dict[str, object] = {
            "tables": [asdict(t) for t in self.tables],
            "totals": {"files": self.files, "rows": self.rows, "bytes": self.bytes},
            "skipped_files": self.skipped,
            "unreadable_files": list(self.unreadable),
        }
        if by_tenant:
            body["tenants"] = [asdict(t) for t in self.tenants]
        return body


@dataclass(frozen=True, slots=True)
class CountedFile:
    """One bronze file with its row count from the footer."""

    bronze: BronzeFile
    size: int
    rows: int


def inventory(
    storage: LakeStorage, namespace: str | None = None, table: str | None = None
) -> LakeInventory:
    """List the lake (optionally one namespace and/or table) and count rows per table and tenant."""
    prefix = validate_name(namespace, "namespace") if namespace is not None else ""
    if table is not None:
        validate_name(table, "table")
    matched: list[tuple[BronzeFile, StoredFile]] = []
    skipped = 0
    for stored in storage.list_files(prefix, suffix=".parquet"):
        try:
            bronze = parse_bronze_path(stored.path)
        except InvalidBronzePathError:
            skipped += 1
            continue
        if table is None or bronze.partition.table == table:
            matched.append((bronze, stored))
    counted: list[CountedFile] = []
    unreadable: list[str] = []
    with ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="strata-inventory") as pool:
        rows = pool.map(lambda pair: _footer_rows(storage, pair[1].path), matched)
        for (bronze, stored), count in zip(matched, rows, strict=True):
            if count is None:
                unreadable.append(stored.path)
            else:
                counted.append(CountedFile(bronze, stored.size, count))
    return aggregate(counted, skipped=skipped, unreadable=unreadable)


def _footer_rows(storage: LakeStorage, path: str) -> int | None:
    """Rows in one Parquet file, or None if it is not valid Parquet."""
    try:
        with storage.open_input(path) as stream:
            return int(pq.ParquetFile(stream).metadata.num_rows)
    except pa.ArrowInvalid:
        return None  # corrupt or truncated; reported, not fatal for the whole listing
    except OSError as exc:
        raise LakeUnavailableError(storage.url, f"read {path}", exc) from exc


_Key = tuple[str, bool, str]  # (namespace, quarantine, table): sorts quarantine after its namespace


def aggregate(
    files: Iterable[CountedFile], *, skipped: int = 0, unreadable: Iterable[str] = ()
) -> LakeInventory:
    """Fold counted files into per-table and per-tenant totals."""
    tables: dict[_Key, _Totals] = {}
    tenants: dict[tuple[str, bool, str, str], _Totals] = {}
    for f in files:
        p = f.bronze.partition
        key: _Key = (p.namespace, p.quarantine, p.table)
        tables.setdefault(key, _Totals()).add(f, p.tenant, p.day)
        tenants.setdefault((*key, p.tenant), _Totals()).add(f, p.tenant, p.day)
    return LakeInventory(
        tables=tuple(
            TableInventory(ns, name, q, len(t.tenants), len(t.partitions), t.files, t.rows, t.bytes)
            for (ns, q, name), t in sorted(tables.items())
        ),
        tenants=tuple(
            TenantInventory(ns, name, q, tenant, len(t.partitions), t.files, t.rows, t.bytes)
            for (ns, q, name, tenant), t in sorted(tenants.items())
        ),
        skipped=skipped,
        unreadable=tuple(sorted(unreadable)),
    )


class _Totals:
    """Mutable accumulator, private to ``aggregate``."""

    __slots__ = ("bytes", "files", "partitions", "rows", "tenants")

    def __init__(self) -> None:
        self.tenants: set[str] = set()
        self.partitions: set[tuple[str, dt.date]] = set()
        self.files = 0
        self.rows = 0
        self.bytes = 0

    def add(self, f: CountedFile, tenant: str, day: dt.date) -> None:
        self.tenants.add(tenant)
        self.partitions.add((tenant, day))
        self.files += 1
        self.rows += f.rows
        self.bytes += f.size
