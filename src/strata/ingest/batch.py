"""Batches: records of one (table, tenant, day) gathered as JSON lines, turned into Parquet.

The JSON lines are parsed by Arrow's multi-threaded C++ reader against a schema derived
from the table's shape, so the writer does no per-record Python work on the fast path.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from strata.ingest.shape import Kind
from strata.ingest.statelog import BatchKey

# How each kind is read from JSON, and what it becomes in Parquet when that differs.
_READ_TYPE: dict[Kind, pa.DataType] = {
    "bool": pa.bool_(),
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.string(),
    "decimal": pa.string(),
    "json": pa.string(),
}
_CAST_TYPE: dict[Kind, pa.DataType] = {"date": pa.date32()}
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


class PartitionBuffer:
    """Records of one batch key waiting in memory, in journal order.

    A buffer always holds *every* record of its stream between ``first`` and ``last``, which
    is what lets a batch be named by its range and rebuilt from the journal after a crash.
    """

    __slots__ = (
        "count",
        "first",
        "ingested_us",
        "key",
        "last",
        "lines",
        "opened",
        "path",
        "reasons",
    )

    def __init__(self, key: BatchKey, first: int, opened: float, path: str | None = None) -> None:
        self.key = key
        self.first = first
        self.last = first
        self.count = 0
        self.opened = opened  # time.monotonic() of the first record, for age-based sealing
        self.lines = bytearray()
        self.ingested_us = array("q")
        self.reasons: list[str] | None = [] if key[3] else None
        self.path = path  # set when the batch is rebuilt for an intent recorded before a crash

    def add(
        self, pos: int, ingested_us: int, payload: bytes, count: int, reason: str | None
    ) -> None:
        self.lines += payload
        if count == 1:
            self.ingested_us.append(ingested_us)
        else:
            self.ingested_us.extend([ingested_us] * count)
        if self.reasons is not None:
            self.reasons.append(reason or "")
        self.last = pos
        self.count += count

    @property
    def nbytes(self) -> int:
        return len(self.lines) + 8 * self.count


def batch_file_id(journal_id: str, session: str, key: BatchKey, first: int, last: int) -> uuid.UUID:
    """A name derived from the batch's identity: the same batch always gets the same file."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"strata:{journal_id}:{session}:{key}:{first}:{last}")


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    parquet: pa.Buffer
    rows: int


class BatchEncodingError(Exception):
    """A batch Arrow could not parse as its table's shape; it goes to quarantine instead."""


def _timestamps(ingested_us: array[int]) -> pa.Array:
    return pa.Array.from_buffers(
        TIMESTAMP_TYPE, len(ingested_us), [None, pa.py_buffer(ingested_us)]
    )


def records_table(
    buffer: PartitionBuffer, shape: Mapping[str, Kind], source_service: str
) -> pa.Table:
    """Arrow table of a regular batch: the shape's columns, then ingested_at and source_service."""
    n = buffer.count
    fields = [pa.field(name, _READ_TYPE[kind]) for name, kind in shape.items()]
    if fields:
        try:
            table = pa_json.read_json(
                pa.BufferReader(pa.py_buffer(buffer.lines)),
                # Single-threaded: the writer process stays on one core beside the service.
                read_options=pa_json.ReadOptions(use_threads=False, block_size=4 << 20),
                parse_options=pa_json.ParseOptions(
                    explicit_schema=pa.schema(fields), unexpected_field_behavior="ignore"
                ),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise BatchEncodingError(str(exc)) from exc
        if table.num_rows != n:
            raise BatchEncodingError(f"parsed {table.num_rows} rows from {n} records")
        columns = []
        for name, kind in shape.items():
            column = table.column(name)
            if kind in _CAST_TYPE:
                try:
                    column = column.cast(_CAST_TYPE[kind])
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise BatchEncodingError(f"column {name!r}: {exc}") from exc
            columns.append(column)
        schema_fields = [
            pa.field(
                name,
                col.type,
                metadata={"strata.kind": kind} if kind in ("decimal", "json") else None,
            )
            for (name, kind), col in zip(shape.items(), columns, strict=True)
        ]
    else:
        columns, schema_fields = [], []
    columns += [_timestamps(buffer.ingested_us), pa.repeat(pa.scalar(source_service), n)]
    schema_fields += [
        pa.field("ingested_at", TIMESTAMP_TYPE, nullable=False),
        pa.field("source_service", pa.string()),
    ]
    return pa.Table.from_arrays(columns, schema=pa.schema(schema_fields))


def quarantine_table(
    buffer: PartitionBuffer, source_service: str, reasons: list[str] | None = None
) -> pa.Table:
    """Quarantined records keep their original JSON, so nothing is lost to a schema."""
    records = bytes(buffer.lines).decode().split("\n")[: buffer.count]
    reason_list = reasons if reasons is not None else (buffer.reasons or [""] * buffer.count)
    return pa.table(
        {
            "record": pa.array(records, pa.string()),
            "reason": pa.array(reason_list, pa.string()),
            "ingested_at": _timestamps(buffer.ingested_us),
            "source_service": pa.repeat(pa.scalar(source_service), buffer.count),
        }
    )


def to_parquet(table: pa.Table, compression: str) -> EncodedBatch:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=None if compression == "none" else compression)
    return EncodedBatch(sink.getvalue(), table.num_rows)
