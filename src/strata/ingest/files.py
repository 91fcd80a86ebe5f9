"""Reading CSV, JSON-lines and Parquet files into records for ``strata ingest``.

The whole file is parsed before anything is handed to the SDK, so a malformed file lands
nothing. Every error names the file and, where it is known, the line (JSON lines) or row
(CSV and Parquet) at fault. No landing logic lives here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from strata.core.errors import InvalidIdentifierError, Terminal
from strata.core.identifiers import validate_tenant

FileFormat = Literal["csv", "jsonl", "parquet"]
FORMATS: Final[tuple[FileFormat, ...]] = get_args(FileFormat)

_EXTENSIONS: Final[dict[str, FileFormat]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",  # only one object per line; a JSON array gets a hint, see _parse_line
    ".parquet": "parquet",
    ".pq": "parquet",
}
_BOM: Final = b"\xef\xbb\xbf"

Record = dict[str, Any]


class FileFormatError(Terminal, ValueError):
    """A file that cannot be read as records; ``line`` or ``row`` says where, when known.

    Lines are physical lines of a JSON-lines file. Rows are CSV rows counted as pyarrow
    does (the header is row 1) or 1-based Parquet rows.
    """

    def __init__(
        self, path: str, reason: str, *, line: int | None = None, row: int | None = None
    ) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.row = row
        where = f", line {line}" if line is not None else f", row {row}" if row is not None else ""
        super().__init__(f"{path}{where}: {reason}")


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """Every record of one file, with enough to point back at the source of each."""

    path: str
    fmt: FileFormat
    records: list[Record]
    # Physical line of each record (JSON lines only; blank lines are skipped, so they differ).
    lines: list[int] | None = None

    def error(self, index: int, reason: str) -> FileFormatError:
        """An error about the record at ``index``, located by line or row."""
        if self.lines is not None:
            return FileFormatError(self.path, reason, line=self.lines[index])
        # CSV rows count the header as row 1, matching pyarrow's own parse errors.
        return FileFormatError(self.path, reason, row=index + (2 if self.fmt == "csv" else 1))


@dataclass(frozen=True, slots=True)
class TenantBatch:
    """The records of one tenant, and where each sits in the file (for error messages)."""

    tenant: str
    records: list[Record]
    positions: list[int]


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> FileFormat:
    """The explicit ``fmt`` if given, else the one the file extension names."""
    name = os.fspath(path)
    if fmt is not None:
        if fmt not in FORMATS:
            raise FileFormatError(name, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    found = _EXTENSIONS.get(Path(name).suffix.lower())
    if found is None:
        known = ", ".join(sorted(_EXTENSIONS))
        raise FileFormatError(
            name, f"cannot tell the format from the extension (known: {known}); pass a format"
        )
    return found


def load_file(path: str | os.PathLike[str], fmt: str | None = None) -> LoadedFile:
    """Read the whole file into records; raises ``FileFormatError`` naming where it failed."""
    name = os.fspath(path)
    kind = detect_format(name, fmt)
    try:
        if kind == "jsonl":
            with open(name, "rb") as stream:
                records, lines = parse_jsonl(name, stream)
            return LoadedFile(name, kind, records, lines)
        table = _read_csv(name) if kind == "csv" else pq.read_table(name)
    except FileNotFoundError:
        raise FileFormatError(name, "no such file") from None
    except IsADirectoryError:
        raise FileFormatError(name, "is a directory, not a file") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise FileFormatError(name, f"not a readable {kind} file: {exc}") from None
    except OSError as exc:
        raise FileFormatError(name, f"cannot read: {exc.strerror or exc}") from None
    return LoadedFile(name, kind, table_records(name, table))


def parse_jsonl(path: str, stream: Iterator[bytes]) -> tuple[list[Record], list[int]]:
    """Parse JSON lines, one object per line; blank lines are skipped."""
    records: list[Record] = []
    lines: list[int] = []
    for number, raw in enumerate(stream, start=1):
        text = raw.removeprefix(_BOM) if number == 1 else raw
        if not text.strip():
            continue
        records.append(_parse_line(path, number, text))
        lines.append(number)
    return records, lines


def _parse_line(path: str, number: int, text: bytes) -> Record:
    try:
        value = orjson.loads(text.rstrip(b"\r\n"))  # so orjson's column is on this line
    except orjson.JSONDecodeError as exc:
        hint = ""
        if number == 1 and text.lstrip().startswith(b"["):
            hint = " (a JSON array is not supported: write one object per line)"
        reason = f"invalid JSON at column {exc.colno}: {exc.msg}{hint}"
        raise FileFormatError(path, reason, line=number) from None
    if not isinstance(value, dict):
        got = "null" if value is None else type(value).__name__
        raise FileFormatError(path, f"expected a JSON object, got {got}", line=number)
    return value


def _read_csv(path: str) -> pa.Table:
    first_bad: list[pa_csv.InvalidRow] = []

    def on_invalid(row: pa_csv.InvalidRow) -> str:
        if not first_bad:
            first_bad.append(row)
        return "skip"  # keep parsing; the first bad row is reported below

    table = pa_csv.read_csv(
        path,
        # Serial reading is what lets pyarrow number an invalid row.
        read_options=pa_csv.ReadOptions(use_threads=False),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        # Only empty cells are missing: "NA" or "null" may be real values in a string column.
        convert_options=pa_csv.ConvertOptions(null_values=[""], strings_can_be_null=True),
    )
    if first_bad:
        bad = first_bad[0]
        reason = f"expected {bad.expected_columns} columns, got {bad.actual_columns}"
        raise FileFormatError(path, reason, row=bad.number)
    return table


def table_records(path: str, table: pa.Table) -> list[Record]:
    """Arrow rows as Python dicts, after casting what the lake cannot hold as-is."""
    return storable(path, table).to_pylist()  # type: ignore[no-any-return]


def storable(path: str, table: pa.Table) -> pa.Table:
    """Cast columns the SDK has no type for; refuse binary, which has no faithful cast."""
    columns = []
    for field, column in zip(table.schema, table.columns, strict=True):
        tp = field.type
        if pa.types.is_timestamp(tp) and tp.unit == "ns":
            # Python datetimes hold microseconds; the lake stores microseconds too.
            column = column.cast(pa.timestamp("us", tp.tz), safe=False)
        elif pa.types.is_time(tp):
            column = pc.cast(column, pa.string())  # "12:30:00": no time-of-day type in the lake
        elif pa.types.is_binary(tp) or pa.types.is_large_binary(tp):
            reason = (
                f"column {field.name!r} holds binary data (not UTF-8 text); it cannot be stored"
            )
            raise FileFormatError(path, reason)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


def single_tenant(loaded: LoadedFile, tenant: object) -> list[TenantBatch]:
    """All records for one tenant; raises ``InvalidIdentifierError`` naming the rule."""
    tenant_id = validate_tenant(tenant)
    positions = list(range(len(loaded.records)))
    return [TenantBatch(tenant_id, loaded.records, positions)] if loaded.records else []


def split_by_tenant(loaded: LoadedFile, column: str) -> list[TenantBatch]:
    """Group records by the tenant id in ``column`` (which each record keeps), in file order."""
    groups: dict[str, TenantBatch] = {}
    for index, record in enumerate(loaded.records):
        if column not in record or record[column] is None:
            raise loaded.error(index, f"tenant column {column!r} is missing or empty")
        try:
            tenant = validate_tenant(record[column])
        except InvalidIdentifierError as exc:
            raise loaded.error(index, f"tenant column {column!r}: {exc}") from None
        batch = groups.get(tenant)
        if batch is None:
            batch = groups[tenant] = TenantBatch(tenant, [], [])
        batch.records.append(record)
        batch.positions.append(index)
    return list(groups.values())
