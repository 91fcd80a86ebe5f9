"""A query's Arrow result as the HTTP response the caller's ``Accept`` asks for.

    application/json (default)             {"columns": [{"name", "type"}], "rows": [[...]],
                                            "row_count", "truncated", "elapsed_ms"}
    text/csv                               a header line, then one line per row
    application/vnd.apache.arrow.stream    Arrow IPC stream, types kept exactly

JSON and CSV values are JSON-safe: timestamps and dates ISO-8601, decimals as strings (a
float would round them), bytes base64, intervals as {months, days, nanoseconds}, lists and
structs as JSON (in CSV, as JSON text). Column types are DuckDB's names, the ones the
caller's SQL uses. Every format carries ``X-Strata-Row-Count`` and ``X-Strata-Truncated``.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
from collections.abc import Sequence
from typing import Any, Final, Literal

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from starlette.responses import Response

from strata.api.errors import ApiError
from strata.semantic.tenant_tables import duckdb_types

Format = Literal["json", "csv", "arrow"]

JSON_TYPE: Final = "application/json"
CSV_TYPE: Final = "text/csv"
ARROW_TYPE: Final = "application/vnd.apache.arrow.stream"
MEDIA_TYPES: Final[dict[Format, str]] = {
    "json": JSON_TYPE,
    "csv": f"{CSV_TYPE}; charset=utf-8",
    "arrow": ARROW_TYPE,
}
# What each Accept media range selects; "*/*" and "application/*" mean the default, JSON.
_RANGES: Final[dict[str, Format]] = {
    JSON_TYPE: "json",
    CSV_TYPE: "csv",
    ARROW_TYPE: "arrow",
    "text/*": "csv",
    "application/*": "json",
    "*/*": "json",
}


def negotiate(accept: str | None) -> Format:
    """The format ``Accept`` prefers (highest q, then first listed); 406 if none is served."""
    if accept is None or not accept.strip():
        return "json"
    choices: list[tuple[float, int, Format]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        found = _RANGES.get(media.lower())
        if found is not None and quality > 0:
            choices.append((-quality, index, found))
    if not choices:
        served = ", ".join((JSON_TYPE, CSV_TYPE, ARROW_TYPE))
        raise ApiError(406, "not_acceptable", f"Accept {accept!r} matches no format; use {served}")
    return min(choices)[2]


def render(table: pa.Table, fmt: Format, *, truncated: bool, elapsed_ms: float) -> Response:
    headers = {
        "X-Strata-Row-Count": str(table.num_rows),
        "X-Strata-Truncated": "true" if truncated else "false",
    }
    if fmt == "arrow":
        body = _arrow(table)
    elif fmt == "csv":
        body = _csv(table)
    else:
        body = orjson.dumps(
            {
                "columns": [
                    {"name": name, "type": kind}
                    for name, kind in zip(table.column_names, _types(table.schema), strict=True)
                ],
                "rows": list(zip(*_columns(table), strict=True)),
                "row_count": table.num_rows,
                "truncated": truncated,
                "elapsed_ms": round(elapsed_ms, 3),
            },
            default=_json_value,
        )
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)


def _arrow(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _csv(table: pa.Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in zip(*_columns(table), strict=True):
        writer.writerow([_csv_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    # Everything else as its JSON text, unquoted: an ISO timestamp, a decimal, a list.
    return orjson.dumps(value, default=_json_value).decode().strip('"')


def _types(schema: pa.Schema) -> Sequence[str]:
    try:
        return duckdb_types(schema)
    except (duckdb.Error, pa.ArrowException):  # a type DuckDB cannot name back
        return [str(field.type) for field in schema]


def _columns(table: pa.Table) -> list[list[Any]]:
    """Each column as Python values, column by column (faster than row by row)."""
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        try:
            columns.append(_plain(column).to_pylist())
        except (ValueError, OverflowError, pa.ArrowException):
            raise ApiError(
                400,
                "result_not_renderable",
                f"column '{name}' of type {column.type} cannot be shown as JSON or CSV; "
                f"ask for Arrow (Accept: {ARROW_TYPE}) or cast it in the query",
            ) from None
    return columns


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Nanosecond timestamps as ISO text: Python's datetime stops at microseconds."""
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.unit == "ns":
        return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S" + ("%z" if kind.tz else ""))
    return column


def _json_value(value: Any) -> Any:
    """What orjson cannot encode by itself."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_table(table: pa.Table) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """``columns`` ([{name, type}]) and ``rows`` of a result as plain JSON values (what the
    JSON format sends), for answers that are cached or reshaped before they are sent."""
    columns = [
        {"name": name, "type": kind}
        for name, kind in zip(table.column_names, _types(table.schema), strict=True)
    ]
    rows = [list(row) for row in zip(*_columns(table), strict=True)]
    plain: list[list[Any]] = orjson.loads(orjson.dumps(rows, default=_json_value))
    return columns, plain
