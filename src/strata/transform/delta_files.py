"""Model output written by DuckDB's Parquet writer and committed to Delta as file actions.

DuckDB writes a query's result straight to Parquet files under the table's directory, in
parallel and without the rows passing through Python, and reports each file's row count,
size, partition values and column statistics. Strata then commits those files to the Delta
log in one transaction (with ``remove`` actions for files a merge rewrote), so a reader
sees the old version or the new one, never a mix. Files of a build that fails before its
commit are invisible to Delta readers; ``vacuum`` removes them.

The statistics written to the log are only ones that cannot mislead data skipping: row and
null counts for every column, min/max only for integer, float, date and short string
columns, and only where DuckDB says the value is exact.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, Schema
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from sqlglot import exp

from strata.transform.sql import DIALECT

_CLUSTER: Final = "__strata_cluster"
# Delta's convention for string statistics (delta-rs and Spark truncate at 32 characters).
_MAX_STRING_STAT: Final = 32


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: str  # relative to the table directory, as on disk
    size: int
    rows: int
    partition: Mapping[str, str | None]
    stats: str  # Delta's per-file statistics JSON


def output_schema(con: duckdb.DuckDBPyConnection, query: exp.Query) -> pa.Schema:
    """The Arrow schema of ``query``'s result, without running it."""
    limited = exp.select(exp.Star()).from_(query.subquery("q", copy=True)).limit(0)
    schema: pa.Schema = con.sql(limited.sql(dialect=DIALECT)).to_arrow_table().schema
    return schema


def copy_to_table(
    con: duckdb.DuckDBPyConnection,
    query: exp.Query,
    table_dir: Path,
    partition_by: Sequence[str],
    schema: pa.Schema,
    cluster: exp.Expr | None = None,
    drop: Sequence[str] = (),
) -> list[WrittenFile]:
    """Run ``query`` and write its rows as new Parquet files under ``table_dir``,
    hive-partitioned by ``partition_by`` (whose columns, as Delta wants, are not stored in
    the files). Returns what was written; nothing is committed.

    ``cluster`` (an expression over the rows) splits each partition further into one file
    group per value, in a directory level of its own that is not a Delta partition: rows
    of one key range then share files, so the log's per-file key bounds can rule files out.
    ``drop`` names helper columns of ``query`` that ``cluster`` may use but no file keeps.
    """
    table_dir.mkdir(parents=True, exist_ok=True)
    params = [_param("format", exp.var("parquet")), _param("return_stats", exp.true())]
    directories = list(partition_by)
    if cluster is not None:
        star = exp.Star(except_=[exp.column(c, quoted=True) for c in drop]) if drop else exp.Star()
        query = exp.select(star, exp.alias_(cluster, _CLUSTER, quoted=True)).from_(
            query.subquery("rows")
        )
        directories.append(_CLUSTER)
    if directories:
        target = str(table_dir)
        columns = exp.Tuple(expressions=[exp.column(c, quoted=True) for c in directories])
        params.append(_param("partition_by", columns))
        params.append(_param("filename_pattern", exp.Literal.string("part-{uuid}")))
        # The table's directory holds its earlier files; new names are unique uuids.
        params.append(_param("overwrite_or_ignore", exp.true()))
    else:
        target = str(table_dir / f"part-{uuid.uuid4()}.parquet")
    copy = exp.Copy(
        this=query.subquery(copy=True),
        kind=False,
        files=[exp.Literal.string(target)],
        params=params,
    )
    rows = con.execute(copy.sql(dialect=DIALECT)).fetchall()
    types = {field.name: field.type for field in schema}
    written = []
    for filename, count, size, _footer, column_stats, partition_keys, _extra in rows:
        relative = str(Path(filename).relative_to(table_dir))
        written.append(
            WrittenFile(
                path=relative,
                size=int(size),
                rows=int(count),
                partition={
                    k: _partition_value(v)
                    for k, v in (partition_keys or {}).items()
                    if k != _CLUSTER
                },
                stats=_delta_stats(int(count), column_stats or {}, types),
            )
        )
    return written


def commit_files(
    table: Path,
    schema: pa.Schema,
    partition_by: Sequence[str],
    added: Sequence[WrittenFile],
    removed: Sequence[str] = (),
    *,
    overwrite: bool,
    target: DeltaTable | None = None,
) -> int:
    """Commit ``added`` (and the removal of the table-relative ``removed`` paths) as one
    Delta version; ``overwrite`` replaces every file (and the schema). Creates the table if
    there is none. Returns the new version."""
    now = int(time.time() * 1000)
    adds = [
        AddAction(quote(f.path, safe="/="), f.size, dict(f.partition), now, True, f.stats)
        for f in added
    ]
    delta_schema = Schema.from_arrow(delta_arrow_schema(schema))
    if not DeltaTable.is_deltatable(str(table)):
        create_table_with_add_actions(
            str(table), delta_schema, adds, mode="error", partition_by=list(partition_by) or None
        )
        return int(DeltaTable(str(table)).version())
    target = target or DeltaTable(str(table))
    removes = [RemoveAction(quote(path, safe="/="), True, now) for path in removed]
    target.create_write_transaction(
        [*adds, *removes],
        mode="overwrite" if overwrite else "append",
        schema=delta_schema,
        partition_by=list(partition_by) or None,
    )
    target.update_incremental()  # the handle follows its own commit, no reopen
    return int(target.version())


@dataclass(frozen=True, slots=True)
class TableFile:
    path: str  # relative to the table directory, as on disk
    partition: Mapping[str, str | None]
    low: Mapping[str, Any]  # per column: the file's minimum, where the log records one
    high: Mapping[str, Any]


def active_files(table: Path | DeltaTable, bounds_of: Sequence[str] = ()) -> list[TableFile]:
    """The table's current files, with the min/max the Delta log records for the
    ``bounds_of`` columns (absent where it records none)."""
    delta = table if isinstance(table, DeltaTable) else DeltaTable(str(table))
    actions = pa.table(delta.get_add_actions(flatten=True))
    names = set(actions.column_names)
    listed = actions.to_pylist()
    found = []
    for action in listed:
        partition = {
            key.removeprefix("partition."): value
            for key, value in action.items()
            if key.startswith("partition.")
        }
        low = {c: action[f"min.{c}"] for c in bounds_of if f"min.{c}" in names}
        high = {c: action[f"max.{c}"] for c in bounds_of if f"max.{c}" in names}
        found.append(
            TableFile(
                path=unquote(action["path"]),
                partition=partition,
                low={c: v for c, v in low.items() if v is not None},
                high={c: v for c, v in high.items() if v is not None},
            )
        )
    return found


def delta_arrow_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` in types Delta accepts: instants are microseconds in ``UTC`` (DuckDB
    names the session zone, e.g. ``Etc/UTC``, which Delta refuses)."""
    fields = []
    for field in schema:
        kind = field.type
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("us", tz="UTC" if kind.tz is not None else None)
        fields.append(field.with_type(kind))
    return pa.schema(fields)


def _param(name: str, value: exp.Expr) -> exp.CopyParameter:
    return exp.CopyParameter(this=exp.var(name), expression=value)


def _partition_value(value: object) -> str | None:
    text = None if value is None else str(value)
    return None if text in (None, "NULL", "__HIVE_DEFAULT_PARTITION__") else text


def _delta_stats(
    rows: int, columns: Mapping[str, Mapping[str, str]], types: Mapping[str, pa.DataType]
) -> str:
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for quoted_name, stat in columns.items():
        name = quoted_name[1:-1].replace('""', '"') if quoted_name.startswith('"') else quoted_name
        kind = types.get(name)
        if kind is None:
            continue
        if "null_count" in stat:
            nulls[name] = int(stat["null_count"])
        low, high = _bound(stat, "min", kind), _bound(stat, "max", kind)
        if low is not None and high is not None:
            mins[name], maxs[name] = low, high
    return json.dumps(
        {"numRecords": rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls},
        separators=(",", ":"),
    )


def _bound(stat: Mapping[str, str], which: str, kind: pa.DataType) -> Any:
    value = stat.get(which)
    if value is None or stat.get(f"{which}_is_exact") != "true":
        return None
    if pa.types.is_integer(kind):
        return int(value)
    if pa.types.is_floating(kind):
        number = float(value)
        return number if number == number and abs(number) != float("inf") else None
    if pa.types.is_date(kind):
        return value
    if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and len(
        value
    ) <= _MAX_STRING_STAT:
        return value
    return None
