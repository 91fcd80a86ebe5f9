"""Build a silver model: run its SQL over new bronze files in DuckDB, dedupe by primary key,
and merge the result into the model's Delta table with lineage back to the bronze row.

Each build reads only the bronze files the catalog says the model has not consumed
(``full_refresh`` reads them all and overwrites the table). Every output row carries
``ingested_at``, ``_bronze_file`` (lake-relative path) and ``_bronze_row`` (row index in
that file). Per primary key the latest ``ingested_at`` wins, ties broken by
(``_bronze_file``, ``_bronze_row``) descending, so a rebuild always picks the same row; the
merge applies the same order against the table, so replaying old files cannot undo newer
ones.

Soft deletes. A model filters deleted rows (``WHERE deleted_at IS NULL``), but dedupe must
still see a deletion, or the previous live version of the key would survive. So when the
config names a ``soft_delete_column``, Strata drops the top-level ``<column> IS NULL``
conjunct of the model's WHERE (other conjuncts stay), flags each row
``_deleted = <column> IS NOT NULL``, dedupes, and then the key is deleted from the table
when its latest version is deleted, and never inserted. Deleted keys keep no tombstone: a
later-arriving *older* live version of a deleted key would come back (bronze replays are in
order, so this needs an out-of-order backfill).

The model must read its bronze table in its outermost SELECT (no CTE around it), because
lineage columns are appended to that SELECT. Nothing is written unless the whole batch
runs: a value that will not cast fails the build with ``ModelRunError`` and the previous
table version stays as it was, with the files left unconsumed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from strata.catalog.store import Catalog
from strata.lake.paths import InvalidBronzePathError, parse_bronze_path
from strata.lake.storage import LocalStorage, StoredFile
from strata.transform.config import ModelConfig
from strata.transform.errors import TransformError
from strata.transform.sql import DIALECT, ModelSql, SourceRef, find_references, lint_silver
from strata.transform.tables import (
    merge_table,
    read_table,
    table_path,
    table_version,
    write_table,
)

INGESTED_AT: Final = "ingested_at"
BRONZE_FILE: Final = "_bronze_file"
BRONZE_ROW: Final = "_bronze_row"
DELETED: Final = "_deleted"
LINEAGE: Final = (INGESTED_AT, BRONZE_FILE, BRONZE_ROW)
_BATCH: Final = "__strata_bronze_batch"


class ModelRunError(TransformError):
    """The model's SQL failed on the data (a value that will not cast, a null key ...)."""

    def __init__(self, model: str, reason: str) -> None:
        self.model = model
        self.reason = reason
        super().__init__(f"model '{model}' failed: {reason}")


@dataclass(frozen=True, slots=True)
class SilverResult:
    model: str
    rows_in: int  # bronze rows read
    rows_out: int  # rows merged after dedupe (deletions included)
    files_read: int
    version: int | None  # the table's version after the build; None: no table yet
    run_id: str | None  # None when nothing was new


def compile_silver(model: ModelSql, config: ModelConfig, relation: str) -> exp.Query:
    """The model's query over ``relation`` (a batch of its bronze rows with lineage),
    carrying the lineage columns and deduped by primary key. Pure."""
    lint_silver(model)
    tree = model.tree.copy()
    refs = find_references(model.name, tree)
    if len(refs) != 1 or not isinstance(refs[0][1], SourceRef):  # pragma: no cover - lint
        raise ModelRunError(model.name, "a silver model reads exactly one bronze table")
    node = refs[0][0]
    if not isinstance(tree, exp.Select) or node.find_ancestor(exp.Select) is not tree:
        raise ModelRunError(model.name, "silver models must read bronze in the outer SELECT")
    alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
    node.replace(exp.Table(this=exp.to_identifier(relation, quoted=True), alias=alias))

    extra: list[exp.Expr] = []
    if config.soft_delete_column is not None:
        _drop_soft_delete_filter(tree, config.soft_delete_column)
        flag = exp.Not(this=exp.Is(this=_col(config.soft_delete_column), expression=exp.Null()))
        extra.append(exp.alias_(flag, DELETED, quoted=True))
    selected = {name.lower() for name in tree.named_selects}
    has_star = any(isinstance(e, exp.Star) for e in tree.expressions)
    missing = [c for c in LINEAGE if c not in selected and not has_star]
    tree = tree.select(*(_col(c) for c in missing), *extra, copy=False)

    keys = list(config.primary_key)
    if not has_star:
        absent = [k for k in keys if k.lower() not in selected]
        if absent:
            raise ModelRunError(model.name, f"primary key column(s) not selected: {absent}")
    order = exp.Order(
        expressions=[exp.Ordered(this=_col(c), desc=True, nulls_first=False) for c in LINEAGE]
    )
    window = exp.Window(this=exp.RowNumber(), partition_by=[_col(k) for k in keys], order=order)
    return (
        exp.select(exp.Star())
        .from_(tree.subquery("model", copy=False))
        .qualify(exp.EQ(this=window, expression=exp.Literal.number(1)))
    )


def build_silver(
    model: ModelSql,
    config: ModelConfig,
    lake: Path,
    catalog: Catalog,
    *,
    full_refresh: bool = False,
    run_id: str | None = None,
) -> SilverResult:
    """Bring ``silver.<model>`` up to date with its bronze table.

    The table is partitioned by ``config.partition_by`` (the project's tenant key unless
    declared). Without ``run_id`` the build records its own ``transform`` run.
    """
    name = model.name
    query = compile_silver(model, config, _BATCH)
    (source,) = model.source_refs
    storage = LocalStorage(lake, fsync=False)
    files = _bronze_files(storage, source)
    path = table_path(lake, "silver", name)
    before = table_version(path)
    todo = files if full_refresh else catalog.new_files(name, [(f.path, f.size) for f in files])
    if not todo:
        return SilverResult(name, 0, 0, 0, before, None)

    own_run = run_id is None
    run = run_id or catalog.start_run(
        "transform", params={"model": name, "full_refresh": full_refresh}
    )
    try:
        referenced = {c.name.lower() for c in model.tree.find_all(exp.Column)}
        batch = _read_batch(name, lake, files, [f.path for f in todo], referenced)
        result = _run(name, query, batch)
        _check_keys(name, result, config.primary_key)
        partition_by = list(config.partition_by)
        absent = [c for c in partition_by if c not in result.column_names]
        if absent:
            raise ModelRunError(name, f"partition column(s) not selected: {absent}")
        if full_refresh or before is None:
            version = write_table(path, _live(result), "overwrite", partition_by)
        else:
            deleted = DELETED if DELETED in result.column_names else None
            version = merge_table(
                path, result, config.primary_key, deleted_column=deleted, newer_by=LINEAGE
            )
        if full_refresh:
            catalog.reset_model(name)
        consumed = [(f.path, f.size) for f in todo]
        catalog.mark_consumed(name, consumed, run)
        if version != before:  # a merge that changed nothing makes no new Delta version
            catalog.record_table_version(f"silver.{name}", version, _row_count(path), run)
    except Exception as exc:
        if own_run:
            catalog.finish_run(run, "failed", str(exc))
        raise
    if own_run:
        catalog.finish_run(run, "succeeded")
    return SilverResult(name, batch.num_rows, result.num_rows, len(todo), version, run)


# -- bronze ------------------------------------------------------------------------------


def _bronze_files(storage: LocalStorage, source: SourceRef) -> list[StoredFile]:
    """The table's bronze record files; quarantined and foreign files are never read."""
    found: list[StoredFile] = []
    for stored in storage.list_files(f"{source.namespace}/{source.table}/", ".parquet"):
        try:
            partition = parse_bronze_path(stored.path).partition
        except InvalidBronzePathError:
            continue
        if not partition.quarantine and (partition.namespace, partition.table) == (
            source.namespace,
            source.table,
        ):
            found.append(stored)
    return found


def _read_batch(
    model: str,
    lake: Path,
    files: Sequence[StoredFile],
    paths: list[str],
    referenced: Collection[str] = (),
) -> pa.Table:
    """The rows of ``paths`` with lineage columns, in one schema unified over every file of
    the table (columns appear over time; a model may select one an older batch lacks).

    A column the model names that no file has is a column that has only ever been null
    (the SDK writes a column once it holds a value, e.g. ``deleted_at``): it is added as
    nulls, so the model's casts give it its type.
    """
    try:
        schema = pa.unify_schemas(
            [pq.read_schema(lake / f.path) for f in files], promote_options="permissive"
        )
    except (pa.ArrowTypeError, pa.ArrowInvalid) as exc:
        raise ModelRunError(model, f"bronze files disagree on column types: {exc}") from exc
    schema = schema.remove_metadata()
    present = {n.lower() for n in schema.names}
    for column in sorted(set(referenced) - present - {BRONZE_FILE, BRONZE_ROW}):
        schema = schema.append(pa.field(column, pa.null()))
    schema = schema.append(pa.field(BRONZE_FILE, pa.string())).append(
        pa.field(BRONZE_ROW, pa.int64())
    )
    tables = []
    for rel in paths:
        table = pq.read_table(lake / rel).replace_schema_metadata(None)
        rows = table.num_rows
        table = table.append_column(BRONZE_FILE, pa.array([rel] * rows, pa.string()))
        table = table.append_column(BRONZE_ROW, pa.array(range(rows), pa.int64()))
        columns = [
            table.column(f.name) if f.name in table.column_names else pa.nulls(rows, f.type)
            for f in schema
        ]
        try:
            tables.append(pa.Table.from_arrays(columns, schema=schema))
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            tables.append(pa.table(columns, names=schema.names).cast(schema))
    return pa.concat_tables(tables)


# -- run ---------------------------------------------------------------------------------


def _run(model: str, query: exp.Query, batch: pa.Table) -> pa.Table:
    con = duckdb.connect()
    try:
        con.register(_BATCH, batch)
        result: pa.Table = con.sql(query.sql(dialect=DIALECT)).to_arrow_table()
    except duckdb.Error as exc:
        raise ModelRunError(model, str(exc)) from exc
    finally:
        con.close()
    return result


def _check_keys(model: str, result: pa.Table, keys: Sequence[str]) -> None:
    for key in keys:
        if key not in result.column_names:
            raise ModelRunError(model, f"primary key column '{key}' is not selected")
        nulls = result.column(key).null_count
        if nulls:
            raise ModelRunError(model, f"primary key column '{key}' is null in {nulls} row(s)")


def _live(result: pa.Table) -> pa.Table:
    """Rows to write when (re)creating the table: deleted keys are left out."""
    if DELETED not in result.column_names:
        return result
    deleted = result.column(DELETED)
    return result.filter(pc.invert(pc.fill_null(deleted, False))).drop_columns([DELETED])


def _row_count(path: Path) -> int:
    return int(read_table(path).count_rows())


def _drop_soft_delete_filter(tree: exp.Select, column: str) -> None:
    """Remove the top-level ``<column> IS NULL`` conjuncts from the WHERE clause."""
    where = tree.args.get("where")
    if where is None:
        return
    condition = where.this.unnest()
    conjuncts = list(condition.flatten()) if isinstance(condition, exp.And) else [condition]
    kept = [c for c in conjuncts if not _is_live_filter(c, column)]
    if not kept:
        tree.set("where", None)
    else:
        tree.set("where", exp.Where(this=exp.and_(*kept, copy=False)))


def _is_live_filter(node: exp.Expr, column: str) -> bool:
    node = node.unnest()
    return (
        isinstance(node, exp.Is)
        and isinstance(node.this, exp.Column)
        and node.this.name.lower() == column.lower()
        and isinstance(node.expression, exp.Null)
    )


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)
