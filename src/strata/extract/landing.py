"""Writing extracted rows to bronze as parts (seed 003), one part per chunk:

    bronze/{source}/scope={scope}/entity={entity}/ingestion_date={YYYY-MM-DD}/run_id={run_id}/part-{N}.jsonl.gz

or ``part-{N}.parquet`` when the source says ``format: parquet``. In a ``jsonl.gz`` part each
line is one JSON object: the row's columns plus ``_tenant`` when the table declares a
tenant column. Lineage is (file, line number): a part is immutable once written, so a
record is addressed by its path and its 1-based line. Values are JSON-safe: timestamps are
ISO-8601 UTC (naive database timestamps are taken as UTC), decimals are strings (no float
rounding), bytes are base64, UUIDs are text. A Parquet part keeps native types (timestamps
as UTC, decimals as decimals); nested values are JSON text, and row ``i`` (1-based) plays
the part of the line number in lineage.

Rows arrive either as Python records (``write_part``) or as an Arrow table
(``write_table_part``, the PostgreSQL COPY path); both give the same JSON text for the same
values, so a part does not depend on how it was read.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import gzip
import json
import re
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any, Final, Literal, get_args

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from isal import isal_zlib

from strata.lake.storage import LakeStorage

PartFormat = Literal["jsonl.gz", "parquet"]
FORMATS: Final[tuple[PartFormat, ...]] = get_args(PartFormat)
TENANT_FIELD: Final = "_tenant"
SUFFIX: Final = ".jsonl.gz"
# Bronze is written once and read once by silver: level 1 deflates about four times faster
# than level 6 for parts about a quarter larger, and compression is most of an extract's CPU.
GZIP_LEVEL: Final = 1
PARQUET_COMPRESSION: Final = "zstd"
# Rows turned into JSON text at a time: a slice's text stays small (memory) and far below
# Arrow's 2 GiB limit for one string array.
_JSON_SLICE_ROWS: Final = 16_384
_SPECIAL: Final = re.compile(rb'[\x00-\x1f"\\]')  # what JSON escapes
_CONTROL: Final = re.compile(rb"[\x00-\x1f]")
_BACKSLASH: Final = re.compile(rb"\\")
_QUOTE: Final = re.compile(rb'"')
# Candidates for str(Decimal) scientific notation (|x| < 1e-6, e.g. "1E-7"); checked exactly.
_TINY_DECIMAL: Final = re.compile(rb"0\.0{6}")


def run_prefix(source: str, scope: str, entity: str, ingestion_date: dt.date, run_id: str) -> str:
    return (
        f"bronze/{source}/scope={scope}/entity={entity}"
        f"/ingestion_date={ingestion_date.isoformat()}/run_id={run_id}"
    )


def part_path(prefix: str, n: int, fmt: PartFormat = "jsonl.gz") -> str:
    return f"{prefix}/part-{n}.{fmt}"


def part_format(path: str) -> PartFormat:
    for fmt in FORMATS:
        if path.endswith(f".{fmt}"):
            return fmt
    raise ValueError(f"{path} is not a bronze part (.jsonl.gz or .parquet)")


def to_utc(value: dt.datetime) -> dt.datetime:
    """Aware values converted to UTC; naive ones are taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dt.datetime):
        return to_utc(value).isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    return str(value)


def dumps_json(value: Any) -> bytes:
    """Compact UTF-8 JSON of a ``json_safe`` value, as every part writes it.

    orjson; the standard library only for what orjson refuses (integers beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")


def gzip_bytes(pieces: Iterable[Any]) -> bytes:
    """One gzip member of ``pieces`` (bytes-like, compressed as they come), at
    ``GZIP_LEVEL`` and with mtime 0, so the same rows give the same bytes (idempotent,
    comparable re-runs)."""
    # ISA-L's deflate: the same gzip format as zlib, about five times faster at level 1
    # (compression was a third of a jsonl.gz extract's CPU).
    compressor = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 31)  # 31: gzip framing
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush())
    return b"".join(out)


def encode_part(records: Iterable[Mapping[str, Any]]) -> bytes:
    """The gzip bytes of one part: one compact JSON object per line, UTF-8."""
    lines = [dumps_json({k: json_safe(v) for k, v in record.items()}) for record in records]
    return gzip_bytes([b"\n".join(lines), b"\n"] if lines else [])


def encode_parquet_part(records: Iterable[Mapping[str, Any]]) -> bytes:
    """The bytes of one Parquet part; column types are inferred from the chunk's values."""
    rows = [{k: _parquet_safe(v) for k, v in record.items()} for record in records]
    return encode_parquet_table(pa.Table.from_pylist(rows))


def _parquet_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return to_utc(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, (Mapping, list, tuple, set)):
        return dumps_json(json_safe(value)).decode("utf-8")
    if isinstance(value, (uuid.UUID, dt.timedelta)):
        return json_safe(value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


def encode_parquet_table(table: pa.Table) -> bytes:
    """The bytes of one Parquet part holding ``table`` as it is typed."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
    return bytes(sink.getvalue().to_pybytes())


def encode_jsonl_table(table: pa.Table, json_columns: Collection[str] = ()) -> bytes:
    """The gzip bytes of one ``jsonl.gz`` part holding ``table``: the same text ``encode_part``
    writes for the same values, built a column at a time with Arrow compute.

    ``json_columns`` are string columns whose values are JSON text already (written as is)."""
    return gzip_bytes(_jsonl_slices(table, json_columns))


def _jsonl_slices(table: pa.Table, json_columns: Collection[str]) -> Iterator[Any]:
    """The JSON lines of ``table``, a slice of rows at a time (each one compressed before
    the next is built, so a big part never holds all of its text at once)."""
    names = table.column_names
    keys = [dumps_json(name).decode("utf-8") for name in names]
    raw = [name in json_columns for name in names]
    for batch in table.to_batches(max_chunksize=_JSON_SLICE_ROWS):
        if not names:
            yield b"{}\n" * batch.num_rows
            continue
        parts: list[Any] = []
        close = ""  # what ends the previous value: its closing quote, unless written already
        for i, column in enumerate(batch.columns):
            values, before, after = _json_text(column, raw[i])
            lead = close + ("{" if i == 0 else ",") + keys[i] + ":"
            if values.null_count == 0:  # the quotes go into the separators: one join less
                parts += [lead + before, values]
                close = after
            else:
                if before or after:
                    values = pc.binary_join_element_wise(before, values, after, "")
                parts += [lead, pc.fill_null(values, "null")]
                close = ""
        parts.append(close + "}\n")
        yield _string_data(pc.binary_join_element_wise(*parts, ""))


def decimal_strings(values: pa.Array) -> pa.Array:
    """Decimal text (as Arrow casts it or PostgreSQL prints it) spelled as ``str(Decimal)``
    spells it: the same digits, but scientific below 1e-6 (``0.0000001`` is ``1E-7``)."""
    if not _TINY_DECIMAL.search(_string_data(values)):
        return values
    tiny = pc.fill_null(pc.match_substring_regex(values, r"^-?0\.0{6}"), False)
    fixed = [str(decimal.Decimal(v)) for v in values.filter(tiny).to_pylist()]
    return pc.replace_with_mask(values, tiny, pa.array(fixed, values.type))


def _json_text(column: pa.Array, raw: bool) -> tuple[pa.Array, str, str]:
    """Each value of ``column`` as JSON text, as a string array that keeps the nulls, and the
    text that goes before and after each value that is not null (quotes, the UTC offset)."""
    kind = column.type
    if raw:
        return column.cast(pa.string()), "", ""
    if pa.types.is_integer(kind):
        return pc.cast(column, pa.string()), "", ""
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "true", "false"), "", ""
    if pa.types.is_floating(kind):
        return _json_floats(column), "", ""
    if pa.types.is_decimal(kind):
        return decimal_strings(pc.cast(column, pa.string())), '"', '"'
    if pa.types.is_timestamp(kind):
        return _iso_utc(column), '"', '+00:00"'
    if kind in (pa.date32(), pa.date64()):
        return pc.cast(column, pa.string()), '"', '"'
    if kind in (pa.string(), pa.large_string()):
        return _json_escaped(column.cast(pa.string())), '"', '"'
    if kind in (pa.binary(), pa.large_binary()):
        encoded = [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()]
        return pa.array(encoded, pa.string()), '"', '"'
    # Anything else goes value by value, exactly as encode_part writes it.
    text = [dumps_json(json_safe(v)).decode("utf-8") for v in column.to_pylist()]
    return pa.array(text, pa.string()), "", ""


def _json_floats(column: pa.Array) -> pa.Array:
    # orjson prints each float as encode_part does (shortest round trip; NaN and inf as null).
    if len(column) == 0:
        return pa.array([], pa.string())
    text = orjson.dumps(column.to_pylist())[1:-1]
    return pa.array(text.split(b","), pa.string())


def _iso_utc(column: pa.Array) -> pa.Array:
    """``datetime.isoformat()`` without the offset: microseconds only when non-zero."""
    kind = column.type
    if kind.unit != "us":
        column = pc.cast(column, pa.timestamp("us", kind.tz), safe=False)
    wall = column.view(pa.timestamp("us"))  # the UTC wall clock (naive ones are UTC already)
    text = pc.cast(wall, pa.string())  # YYYY-MM-DD HH:MM:SS.ffffff
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    return pc.replace_substring(text, ".000000", "")


def _json_escaped(column: pa.Array) -> pa.Array:
    """Strings escaped for the inside of JSON quotes, as orjson escapes them."""
    data = _string_data(column)
    if not _SPECIAL.search(data):
        return column
    escaped = column
    if _BACKSLASH.search(data):
        escaped = pc.replace_substring(escaped, "\\", "\\\\")
    if _QUOTE.search(data):
        escaped = pc.replace_substring(escaped, '"', '\\"')
    if _CONTROL.search(data):  # rare: those values are escaped one by one by orjson
        control = pc.fill_null(pc.match_substring_regex(column, r"[\x00-\x1f]"), False)
        text = [dumps_json(v)[1:-1].decode("utf-8") for v in column.filter(control).to_pylist()]
        escaped = pc.replace_with_mask(escaped, control, pa.array(text, pa.string()))
    return escaped


def _string_data(values: pa.Array) -> bytes | memoryview:
    """The concatenated bytes of a string array's values (no copy)."""
    if len(values) == 0:
        return b""
    buffers = values.buffers()
    width = pa.int64() if values.type == pa.large_string() else pa.int32()
    offsets = pa.Array.from_buffers(
        width, len(values) + 1, [None, buffers[1]], null_count=0, offset=values.offset
    )
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    if buffers[2] is None or end == start:
        return b""
    return memoryview(buffers[2])[start:end]


def write_part(storage: LakeStorage, path: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Write one part atomically (readers see all of it or nothing); returns its size.

    The format follows the path's suffix (``part_path`` chose it)."""
    parquet = part_format(path) == "parquet"
    data = encode_parquet_part(records) if parquet else encode_part(records)
    storage.write_atomic(path, data)
    return len(data)


def encode_table_part(path: str, table: pa.Table, json_columns: Collection[str] = ()) -> bytes:
    """The bytes of the part at ``path`` (its suffix picks the format) holding ``table``."""
    if part_format(path) == "parquet":
        return encode_parquet_table(table)
    return encode_jsonl_table(table, json_columns)


def write_table_part(
    storage: LakeStorage, path: str, table: pa.Table, json_columns: Collection[str] = ()
) -> int:
    """``write_part`` for rows already in an Arrow table; returns the part's size."""
    data = encode_table_part(path, table, json_columns)
    storage.write_atomic(path, data)
    return len(data)


def read_part(storage: LakeStorage, path: str) -> list[dict[str, Any]]:
    """The records of one part, in line order (line ``i`` is ``result[i - 1]``)."""
    raw = storage.read_bytes(path)
    if part_format(path) == "parquet":
        records: list[dict[str, Any]] = pq.read_table(pa.BufferReader(raw)).to_pylist()
        return records
    text = gzip.decompress(raw).decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line]
