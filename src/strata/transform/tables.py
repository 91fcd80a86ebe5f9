"""Silver and gold tables as Delta Lake tables under ``{lake}/{layer}/{model}/``.

Every write is one Delta commit, so a reader sees the table before or after it, never half
of it, and a failed build leaves the previous version readable. Merge predicates are
Delta (DataFusion) SQL; they are built as sqlglot trees with quoted identifiers, never by
pasting names into strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, write_deltalake
from sqlglot import exp

from strata.transform.config import Layer
from strata.transform.errors import TransformError

WriteMode = Literal["error", "append", "overwrite"]

_SOURCE = "s"
_TARGET = "t"


class TableNotFoundError(TransformError, LookupError):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"no Delta table at {path}")


def table_path(lake: Path, layer: Layer, model: str) -> Path:
    """Where the model's Delta table lives in a local lake."""
    return lake / layer / model


def table_version(path: Path) -> int | None:
    """The latest committed version, or ``None`` if no table exists at ``path`` yet."""
    if not DeltaTable.is_deltatable(str(path)):
        return None
    return int(DeltaTable(str(path)).version())


def read_table(path: Path, version: int | None = None) -> ds.Dataset:
    """The table (at ``version``, else the latest) as an Arrow dataset, which DuckDB can
    query after ``con.register``."""
    if not DeltaTable.is_deltatable(str(path)):
        raise TableNotFoundError(path)
    dataset: ds.Dataset = DeltaTable(str(path), version=version).to_pyarrow_dataset()
    return dataset


def parquet_scan(path: Path, version: int | None = None) -> str | None:
    """DuckDB SQL reading the table (at ``version``, else the latest) straight from its
    Parquet files, partition columns from their paths with the table's types; ``None`` for
    a table with no files. Several times faster than scanning ``read_table``'s Arrow
    dataset (0.3 s against 1.3 s for 10M rows), for readers that need every row."""
    if not DeltaTable.is_deltatable(str(path)):
        raise TableNotFoundError(path)
    delta = DeltaTable(str(path), version=version)
    files = delta.file_uris()
    if not files:
        return None
    schema = pa.schema(delta.schema().to_arrow())
    partitions = list(delta.metadata().partition_columns)
    listed = ", ".join(exp.Literal.string(f).sql() for f in files)
    options = "union_by_name = true"
    if partitions:
        quoted = {c: exp.Literal.string(c).sql() for c in partitions}
        types = ", ".join(
            f"{quoted[c]}: '{_duckdb_type(schema.field(c).type)}'" for c in partitions
        )
        options += f", hive_partitioning = true, hive_types = {{{types}}}"
    return f"read_parquet([{listed}], {options})"


def _duckdb_type(kind: pa.DataType) -> str:
    """The DuckDB type of a partition column (Delta partition values are typed)."""
    if pa.types.is_integer(kind):
        return "BIGINT"
    if pa.types.is_floating(kind):
        return "DOUBLE"
    if pa.types.is_boolean(kind):
        return "BOOLEAN"
    if pa.types.is_date(kind):
        return "DATE"
    if pa.types.is_timestamp(kind):
        return "TIMESTAMP"
    return "VARCHAR"


def row_count(path: Path) -> int:
    """The table's rows, from the record counts in its Delta log (no data file is opened
    unless a file was committed without them)."""
    table = DeltaTable(str(path))
    counts = pa.table(table.get_add_actions(flatten=True)).column("num_records")
    if counts.null_count:
        return int(table.to_pyarrow_dataset().count_rows())
    return int(pc.sum(counts).as_py() or 0)


def write_table(
    path: Path, table: pa.Table, mode: WriteMode, partition_by: Sequence[str] = ()
) -> int:
    """Write ``table`` in one commit; ``overwrite`` also replaces the schema. Returns the
    new version."""
    write_deltalake(
        str(path),
        table,
        mode=mode,
        partition_by=list(partition_by) or None,
        schema_mode="overwrite" if mode == "overwrite" else None,
    )
    return int(DeltaTable(str(path)).version())


def merge_table(
    path: Path,
    source: pa.Table,
    keys: Sequence[str],
    *,
    deleted_column: str | None = None,
    newer_by: Sequence[str] = (),
) -> int:
    """Upsert ``source`` into the table on ``keys`` in one commit; returns the new version.

    A source row whose ``deleted_column`` is true deletes the matching target row and is
    never inserted (the column itself is not written). With ``newer_by``, a matched row is
    only updated or deleted when the source row is newer, comparing those columns in order,
    so replaying an old batch cannot undo a newer one.
    """
    if not keys:
        raise TransformError(f"merging into {path} needs at least one key column")
    target = DeltaTable(str(path))
    target_schema: pa.Schema = target.to_pyarrow_dataset().schema
    source = cast_to_schema(source, target_schema)
    columns = [name for name in source.column_names if name != deleted_column]
    on = keys_match(keys, _TARGET, _SOURCE)
    updates = {name: _sql(_col(_SOURCE, name)) for name in columns}
    newer = is_newer(newer_by, _SOURCE, _TARGET) if newer_by else None
    merger = target.merge(
        source, _sql(on), source_alias=_SOURCE, target_alias=_TARGET, merge_schema=True
    )
    if deleted_column is not None:
        deleted = _col(_SOURCE, deleted_column)
        live = exp.Not(this=exp.Paren(this=deleted.copy()))
        merger = merger.when_matched_delete(predicate=_sql(_both(deleted, newer)))
        merger = merger.when_matched_update(updates, predicate=_sql(_both(live, newer)))
        merger = merger.when_not_matched_insert(updates, predicate=_sql(live))
    else:
        if newer is None:
            merger = merger.when_matched_update(updates)
        else:
            merger = merger.when_matched_update(updates, predicate=_sql(newer))
        merger = merger.when_not_matched_insert(updates)
    merger.execute()
    return int(DeltaTable(str(path)).version())


def _col(table: str, name: str) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _sql(node: exp.Expr) -> str:
    return node.sql()


def _both(first: exp.Expr, second: exp.Expr | None) -> exp.Expr:
    return first.copy() if second is None else exp.and_(first.copy(), second.copy())


def keys_match(keys: Sequence[str], left: str, right: str) -> exp.Expr:
    """``left.k = right.k`` for every key column."""
    return exp.and_(*(exp.EQ(this=_col(left, k), expression=_col(right, k)) for k in keys))


def is_newer(columns: Sequence[str], newer: str, older: str) -> exp.Expr:
    """Row ``newer`` strictly after row ``older``, comparing ``columns`` lexicographically."""
    head, *rest = columns
    greater = exp.GT(this=_col(newer, head), expression=_col(older, head))
    if not rest:
        return greater
    equal = exp.EQ(this=_col(newer, head), expression=_col(older, head))
    return exp.or_(greater, exp.and_(equal, exp.Paren(this=is_newer(rest, newer, older))))


def cast_to_schema(source: pa.Table, schema: pa.Schema) -> pa.Table:
    """Give source columns the target's types where both have them (``Etc/UTC`` vs ``UTC``
    timestamps, int32 vs int64), so the merge compares like with like."""
    for index, name in enumerate(source.column_names):
        if name in schema.names:
            wanted = schema.field(name).type
            if source.schema.field(index).type != wanted:
                field = pa.field(name, wanted)
                source = source.set_column(index, field, source.column(index).cast(wanted))
    return source
