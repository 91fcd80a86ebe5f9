"""The PostgreSQL fast path of the SQL extractor: ``COPY (SELECT ...) TO STDOUT`` as CSV,
parsed into Arrow tables a chunk at a time.

A server-side cursor hands every value to Python as an object, and building those objects
costs more than the database spends producing the rows. COPY streams the same rows as text;
a thread reads them into chunks of ``chunk_rows`` (``CopyStream``) while the caller parses
each chunk with Arrow's CSV reader, typed from the columns PostgreSQL describes (never
inferred), so values are exact: integers and booleans as such, ``numeric`` as decimals (or
its exact text), timestamps as UTC microseconds, floats as the same doubles psycopg loads.

The records are the ones the generic path lands for the same rows: ``landing`` writes an
Arrow table as the same JSON text as Python records, and the columns below become what
psycopg's loaders would have made of them (``json`` re-serialized the way ``json_safe``
writes it, ``bytea`` as bytes, NaN and infinite floats as null, ``_tenant`` as text).

A column of any other type (arrays, intervals, enums, ranges ...), a watermark or tenant
column of an unusual type, or a duplicated column name means no plan: the entity takes the
generic path. PostgreSQL sends one COPY message per row, so a chunk holds exactly
``chunk_rows`` rows, as on the generic path.
"""

from __future__ import annotations

import decimal
import json
import queue
import selectors
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, LiteralString, cast

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from psycopg import pq, sql
from psycopg.pq.abc import PGconn, PGresult

from strata.core.errors import StrataError
from strata.extract.config import TableSpec
from strata.extract.landing import TENANT_FIELD, PartFormat, decimal_strings, dumps_json, json_safe

Kind = Literal[
    "bool", "int2", "int4", "int8", "float", "numeric", "text", "uuid", "date", "timestamp",
    "timestamptz", "json", "bytea",
]  # fmt: skip
# Built-in type OIDs (pg_type.oid, fixed across PostgreSQL versions) the fast path reads.
KINDS: Final[dict[int, Kind]] = {
    16: "bool",
    17: "bytea",
    20: "int8",
    21: "int2",
    23: "int4",
    25: "text",
    114: "json",
    700: "float",
    701: "float",
    1042: "text",  # char(n)
    1043: "text",  # varchar
    1082: "date",
    1114: "timestamp",
    1184: "timestamptz",
    1700: "numeric",
    2950: "uuid",
    3802: "json",  # jsonb
}
_WATERMARK_KINDS: Final = frozenset({"int2", "int4", "int8", "date", "timestamp", "timestamptz"})
_TENANT_KINDS: Final = frozenset({"text", "uuid", "int2", "int4", "int8"})
_CSV_TYPES: Final[dict[Kind, pa.DataType]] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float": pa.float64(),  # float4 too: psycopg loads its text as a Python float (a double)
    "numeric": pa.string(),  # see CopyColumn.csv_type
    "text": pa.string(),
    "uuid": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", "UTC"),
    "json": pa.string(),
    "bytea": pa.string(),  # \x... hex text (bytea_output is set to hex)
}
_DONE: Final = object()  # the reader's end-of-stream marker
_QUEUE_CHUNKS: Final = 4  # chunks read ahead of the parser: memory stays a few chunks
_POLL_S: Final = 0.2  # how often a waiting reader looks whether the consumer left


class CopyError(StrataError):
    """PostgreSQL failed while describing or copying; ``problem`` is its first line."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True, slots=True)
class CopyColumn:
    name: str
    kind: Kind | None  # None: a type the fast path does not read
    precision: int | None = None  # numeric(p, s) only
    scale: int | None = None

    def csv_type(self, fmt: PartFormat) -> pa.DataType:
        if self.kind == "numeric" and fmt == "parquet" and self.decimal_type is not None:
            return self.decimal_type
        return _CSV_TYPES[self.kind or "text"]

    @property
    def decimal_type(self) -> pa.DataType | None:
        """``decimal128(p, s)`` for a ``numeric(p, s)`` that fits one; None otherwise."""
        p, s = self.precision, self.scale
        if p is None or s is None or not 0 <= s <= p <= 38:
            return None
        return pa.decimal128(p, s)


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """How to read one entity with COPY and turn each chunk into the table a part holds."""

    columns: tuple[CopyColumn, ...]
    fmt: PartFormat
    watermark_column: str
    tenant_column: str | None
    query: sql.Composed

    @property
    def json_columns(self) -> frozenset[str]:
        """Columns whose values are JSON text, written into a jsonl part as JSON."""
        return frozenset(c.name for c in self.columns if c.kind == "json")

    def decode(self, data: bytes) -> pa.Table:
        """One chunk of COPY CSV as the table its part holds (plus ``_tenant``)."""
        names = [c.name for c in self.columns]
        table = pcsv.read_csv(
            pa.BufferReader(data),
            read_options=pcsv.ReadOptions(
                column_names=names,
                use_threads=False,  # the reader thread and the server use the other cores
                block_size=min(max(len(data) + 1, 1 << 16), 1 << 30),
            ),
            parse_options=pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pcsv.ConvertOptions(
                column_types={c.name: c.csv_type(self.fmt) for c in self.columns},
                null_values=[""],  # COPY CSV writes NULL unquoted and empty and '' as ""
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
        values = [self._normalize(c, table.column(i)) for i, c in enumerate(self.columns)]
        if self.tenant_column is not None:
            tenant = table.column(names.index(self.tenant_column))
            names.append(TENANT_FIELD)
            values.append(pc.cast(tenant, pa.string()))
        return pa.Table.from_arrays(values, names=names)

    def highest(self, table: pa.Table) -> Any:
        """The chunk's greatest watermark value (None when every one is NULL)."""
        return pc.max(table.column(self.watermark_column)).as_py()

    def _normalize(self, column: CopyColumn, values: pa.ChunkedArray) -> pa.ChunkedArray:
        kind = column.kind
        if kind == "float":  # json_safe and the Parquet writer both land NaN and inf as null
            return pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
        if kind == "timestamp":  # naive timestamps are UTC (the session runs in UTC)
            return values.cast(pa.timestamp("us", "UTC"))
        if kind == "numeric" and self.fmt == "jsonl.gz":
            return _chunkwise(values, decimal_strings)
        if kind == "numeric" and column.decimal_type is None:
            # Unbounded numeric: decimals typed from the chunk, as the generic path infers them.
            return pa.chunked_array([pa.array(_decimals(values.to_pylist()))])
        if kind == "bytea":
            raw = [None if v is None else bytes.fromhex(v[2:]) for v in values.to_pylist()]
            return pa.chunked_array([pa.array(raw, pa.binary())])
        if kind == "json":
            text = [_json_value(v, self.fmt) for v in values.to_pylist()]
            return pa.chunked_array([pa.array(text, pa.string())])
        return values


def plan_copy(
    columns: Sequence[CopyColumn], spec: TableSpec, fmt: PartFormat, low: Any
) -> CopyPlan | None:
    """The COPY plan for ``spec``'s described ``columns``, or None when the fast path cannot
    give the same records (a column of a type it does not read, see the module doc)."""
    if any(c.kind is None for c in columns):
        return None
    names = [c.name for c in columns]
    by_name = {c.name: c for c in columns}
    if len(by_name) != len(names) or TENANT_FIELD in by_name:
        return None  # the generic path's records keep the last of duplicated keys
    watermark = by_name.get(spec.watermark_column)
    if watermark is None or watermark.kind not in _WATERMARK_KINDS:
        return None
    if spec.tenant_column is not None:
        tenant = by_name.get(spec.tenant_column)
        if tenant is None or tenant.kind not in _TENANT_KINDS:
            return None
    query = _query(spec, low)
    return CopyPlan(tuple(columns), fmt, spec.watermark_column, spec.tenant_column, query)


def describe(connection: psycopg.Connection[Any], spec: TableSpec) -> list[CopyColumn]:
    """The columns ``spec`` reads, as PostgreSQL describes them.

    Also sets, for this transaction, the output formats the CSV parser relies on."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL client_encoding = 'UTF8'")
            cursor.execute("SET LOCAL datestyle = 'ISO, MDY'")
            cursor.execute("SET LOCAL bytea_output = 'hex'")
            cursor.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(_source(spec)))
            description = cursor.description or []
    except psycopg.Error as exc:
        raise CopyError(_first_line(exc)) from exc
    return [_column(d.name, d.type_code, d.precision, d.scale) for d in description]


def _column(name: str, oid: int, precision: int | None, scale: int | None) -> CopyColumn:
    kind = KINDS.get(oid)
    if kind == "numeric":
        return CopyColumn(name, kind, precision, scale)
    return CopyColumn(name, kind)


class CopyStream:
    """Iterate over the CSV chunks of a COPY, read ahead by a thread.

    The thread drives the COPY through libpq directly (psycopg's ``pq`` layer): a row costs
    a third of what ``Copy``'s per-row generator costs, which matters when the database
    server and the extractor share two cores. Leaving the block early (a failed write, an
    interrupt) stops the thread within ``_POLL_S`` and leaves the COPY unfinished: the
    connection must then be discarded (closing it ends the query on the server)."""

    def __init__(
        self, connection: psycopg.Connection[Any], query: sql.Composed, chunk_rows: int
    ) -> None:
        self._connection = connection
        self._query = query
        self._chunk_rows = chunk_rows
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="strata-pg-copy", daemon=True)

    def __enter__(self) -> CopyStream:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(bytes, item)

    def _read(self) -> None:
        try:
            self._copy(self._connection.pgconn)
            self._offer(_DONE)
        except _ConsumerGoneError:
            pass
        except psycopg.Error as exc:
            self._offer(CopyError(_first_line(exc)))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._offer(exc)

    def _copy(self, pgconn: PGconn) -> None:
        pgconn.send_query(self._query.as_bytes(self._connection))
        self._wait(pgconn, selectors.EVENT_WRITE, until=lambda: pgconn.flush() == 0)
        started = self._result(pgconn)
        if started is None or started.status != pq.ExecStatus.COPY_OUT:
            raise CopyError(_result_problem(started, pgconn))
        chunk = bytearray()
        rows, limit = 0, self._chunk_rows
        get = pgconn.get_copy_data
        with selectors.DefaultSelector() as readable:
            readable.register(pgconn.socket, selectors.EVENT_READ)
            while True:
                size, data = get(1)  # one row per message; 0: none buffered yet
                if size > 0:
                    chunk += data
                    rows += 1
                    if rows == limit:
                        if not self._offer(bytes(chunk)):
                            raise _ConsumerGoneError
                        chunk.clear()
                        rows = 0
                elif size == 0:
                    while not readable.select(_POLL_S):  # the GIL is free while waiting
                        if self._stop.is_set():
                            raise _ConsumerGoneError
                    pgconn.consume_input()
                elif size == -1:
                    break
                else:
                    raise CopyError(_result_problem(None, pgconn))
        if rows and not self._offer(bytes(chunk)):
            raise _ConsumerGoneError
        while (result := self._result(pgconn)) is not None:
            if result.status != pq.ExecStatus.COMMAND_OK:  # e.g. an error mid-COPY
                raise CopyError(_result_problem(result, pgconn))

    def _result(self, pgconn: PGconn) -> PGresult | None:
        def ready() -> bool:
            pgconn.consume_input()
            return not pgconn.is_busy()

        self._wait(pgconn, selectors.EVENT_READ, until=ready)
        return pgconn.get_result()

    def _wait(self, pgconn: PGconn, event: int, until: Callable[[], bool]) -> None:
        """Wait for the socket until ``until()`` holds, looking out for the consumer leaving."""
        with selectors.DefaultSelector() as selector:
            selector.register(pgconn.socket, event)
            while not until():
                while not selector.select(_POLL_S):
                    if self._stop.is_set():
                        raise _ConsumerGoneError

    def _offer(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False


class _ConsumerGoneError(Exception):
    """The consumer left: stop reading (the connection is discarded, ending the COPY)."""


def _result_problem(result: PGresult | None, pgconn: PGconn) -> str:
    message = result.error_message if result is not None else b""
    text = (message or pgconn.error_message).decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "COPY did not start"


def _source(spec: TableSpec) -> sql.Composable:
    if spec.table is not None:
        schema, _, name = spec.table.rpartition(".")
        return sql.Identifier(schema, name) if schema else sql.Identifier(name)
    # The query is the project author's own SQL (trusted config), wrapped as a subquery.
    return sql.SQL("({}) AS src").format(sql.SQL(cast(LiteralString, spec.query)))


def _query(spec: TableSpec, low: Any) -> sql.Composed:
    watermark = sql.Identifier(spec.watermark_column)
    where: sql.Composable = sql.SQL("")
    if low is not None:
        where = sql.SQL(" WHERE {} > {}").format(watermark, sql.Literal(low))
    select = sql.SQL("SELECT * FROM {}{} ORDER BY {}").format(_source(spec), where, watermark)
    return sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(select)


def _chunkwise(values: pa.ChunkedArray, convert: Any) -> pa.ChunkedArray:
    return pa.chunked_array([convert(chunk) for chunk in values.chunks], values.type)


def _decimals(text: list[str | None]) -> list[decimal.Decimal | None]:
    return [None if v is None else decimal.Decimal(v) for v in text]


def _json_value(text: str | None, fmt: PartFormat) -> str | None:
    """A json/jsonb value as the generic path lands it: loaded the way psycopg loads it,
    then written as ``json_safe`` JSON text (a JSON string or null stays one in Parquet)."""
    if text is None:
        return None
    value = json.loads(text)
    if fmt == "parquet" and (value is None or isinstance(value, str)):
        return value
    return dumps_json(json_safe(value)).decode("utf-8")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
