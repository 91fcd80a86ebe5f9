"""Build a silver model: run its SQL over new bronze files in DuckDB, dedupe by primary key,
and merge the result into the model's Delta table with lineage back to the bronze row.

Each build reads only the bronze files the catalog says the model has not consumed
(``full_refresh`` reads them all and overwrites the table). Every output row carries
``ingested_at``, ``_bronze_file`` (lake-relative path) and ``_bronze_row`` (row index in
that file). Per primary key the latest ``ingested_at`` wins, ties broken by
(``_bronze_file``, ``_bronze_row``) descending, so a rebuild always picks the same row; the
merge applies the same order against the table, so replaying old files cannot undo newer
ones.

Bronze is the SDK's Parquet layout, or, when the model's YAML declares
``source: {extract, entity}``, the parts an extractor landed (``strata.transform.extracted``):
jsonl.gz lines and Parquet rows with a 1-based ``_bronze_row``, and as ``ingested_at`` the
start of the extract run, so the latest extraction of a key wins. A part holds every
tenant's rows, so a ``--tenant`` build filters them and leaves the parts unconsumed.

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

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
from sqlglot import exp

from strata.catalog.store import Catalog
from strata.lake.paths import InvalidBronzePathError, parse_bronze_path
from strata.lake.storage import LocalStorage, StoredFile
from strata.transform.config import ModelConfig
from strata.transform.delta_files import (
    active_files,
    commit_files,
    copy_to_table,
    output_schema,
)
from strata.transform.engine import (
    BRONZE_FILE,
    BRONZE_ROW,
    TenantScope,
    bronze_batch,
    bronze_columns,
    bronze_scan,
    build_connection,
    duckdb_reason,
)
from strata.transform.errors import TransformError
from strata.transform.extracted import (
    ExtractedBronzeError,
    ExtractedPart,
    check_extracted_source,
    extracted_batch,
    extracted_parts,
    ingestion_times,
    readable_parts,
    stored_files,
)
from strata.transform.file_merge import merge_files
from strata.transform.gate import PublishGate, guard
from strata.transform.sql import DIALECT, ModelSql, SourceRef, find_references, lint_silver
from strata.transform.tables import (
    merge_table,
    row_count,
    table_path,
    table_version,
)

INGESTED_AT: Final = "ingested_at"
DELETED: Final = "_deleted"
LINEAGE: Final = (INGESTED_AT, BRONZE_FILE, BRONZE_ROW)
_BATCH: Final = "__strata_bronze_batch"
_MODEL: Final = "model"
_ROWS_PER_RANGE: Final = 250_000
_REPEATED: Final = "repeated_keys"
_SUPERSEDED: Final = "superseded"
_BATCH_ROWS: Final = 122_880  # DuckDB's row group size: whole vectors per Arrow batch


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
    check_extracted_source(model, config)
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
    return _dedupe(tree, keys)


def _dedupe(model: exp.Select, keys: list[str]) -> exp.Query:
    """``model``'s rows minus those a newer row of the same key supersedes.

    Written as an anti-join on lineage rather than ``QUALIFY row_number() = 1`` over every
    row: only keys that repeat (a few percent) go through the window, on narrow columns,
    and the wide rows stream from the scan to the writer. Under the build's memory limit
    this is what keeps a 10-million-row build near the unbounded floor (bench/transform.py).
    """
    order = exp.Order(
        expressions=[exp.Ordered(this=_col(c), desc=True, nulls_first=False) for c in LINEAGE]
    )
    window = exp.Window(this=exp.RowNumber(), partition_by=[_col(k) for k in keys], order=order)
    repeated = (
        exp.select(*(_col(k) for k in keys))
        .from_(_MODEL)
        .group_by(*(_col(k) for k in keys))
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1)))
    )
    candidates = (
        exp.select(*(_col(c) for c in dict.fromkeys([*keys, *LINEAGE])))
        .from_(_MODEL)
        .join(_REPEATED, using=[_col(k) for k in keys], join_type="semi")
    )
    superseded = (
        exp.select(_col(BRONZE_FILE), _col(BRONZE_ROW))
        .from_(candidates.subquery("candidates"))
        .qualify(exp.GT(this=window, expression=exp.Literal.number(1)))
    )
    return (
        exp.select(exp.Star())
        .from_(_MODEL)
        .join(_SUPERSEDED, using=[_col(BRONZE_FILE), _col(BRONZE_ROW)], join_type="anti")
        .with_(_MODEL, as_=model)
        .with_(_REPEATED, as_=repeated)
        .with_(_SUPERSEDED, as_=superseded)
    )


def build_silver(
    model: ModelSql,
    config: ModelConfig,
    lake: Path,
    catalog: Catalog,
    *,
    full_refresh: bool = False,
    run_id: str | None = None,
    scope: TenantScope | None = None,
    gate: PublishGate | None = None,
) -> SilverResult:
    """Bring ``silver.<model>`` up to date with its bronze table.

    The table is partitioned by ``config.partition_by`` (the project's tenant key unless
    declared). Without ``run_id`` the build records its own ``transform`` run. With
    ``scope`` only that tenant's bronze is read, and a full refresh replaces only its rows.
    A ``gate`` judges the new version before it is recorded; if it refuses, the table is
    rolled back and the bronze stays unconsumed.
    """
    name = model.name
    deduped = compile_silver(model, config, _BATCH)
    query = deduped
    if scope is not None:
        query = exp.select(exp.Star()).from_(query.subquery("built")).where(scope.predicate())
    (source,) = model.source_refs
    storage = LocalStorage(lake, fsync=False)
    tenant = None if scope is None else scope.tenant
    parts: dict[str, ExtractedPart] = {}
    if config.source is None:
        files = _bronze_files(storage, source, tenant)
    else:  # every part: a part holds the rows of every tenant
        parts = {part.path: part for part in extracted_parts(storage, config.source)}
        files = stored_files(parts.values())
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
        with build_connection() as con:
            if config.source is None:
                _define_batch(name, con, lake, [f.path for f in todo], referenced)
                readable = True
            else:
                chosen = readable_parts(lake, [parts[f.path] for f in todo])
                readable = bool(chosen)  # only empty parts: nothing to build
                if readable:
                    batch = _extracted_batch(
                        name, con, lake, chosen, catalog, config, referenced, tenant
                    )
                    _create_batch_view(con, batch)
            rows_in, rows_out, version = 0, 0, before
            if readable:
                rows_in = _count(name, con)
                version, rows_out = _write(
                    name, con, deduped, query, path, config, scope, full_refresh=full_refresh
                )
        # Before anything is recorded: a withheld version is rolled back and its bronze
        # stays unconsumed, so the next run builds from it again.
        if version is not None:
            guard(gate, f"silver.{name}", path, version, before)
        if full_refresh and scope is None:  # a tenant's refresh re-marks its own files
            catalog.reset_model(name)
        # A tenant's run used only its rows of the extracted parts: the rest are still new.
        if scope is None or config.source is None:
            catalog.mark_consumed(name, [(f.path, f.size) for f in todo], run)
        # A merge that changed nothing (or only empty parts) makes no new Delta version.
        if version is not None and version != before:
            catalog.record_table_version(f"silver.{name}", version, row_count(path), run)
    except Exception as exc:
        if own_run:
            catalog.finish_run(run, "failed", str(exc))
        raise
    if own_run:
        catalog.finish_run(run, "succeeded")
    return SilverResult(name, rows_in, rows_out, len(todo), version, run)


def _write(
    model: str,
    con: duckdb.DuckDBPyConnection,
    deduped: exp.Query,
    query: exp.Query,
    path: Path,
    config: ModelConfig,
    scope: TenantScope | None,
    *,
    full_refresh: bool,
) -> tuple[int, int]:
    """Create (or fully refresh) the table from the batch, or merge the batch into it;
    returns (version, rows written)."""
    before = table_version(path)
    if not full_refresh and before is not None:
        return _merge(model, con, query, path, config)
    replaced = _replaced_files(model, path, config, scope) if before is not None else None
    cluster = _clustering(model, con, deduped, query, config)
    return _overwrite(model, con, _live(query, config), path, config, replaced, cluster)


# -- bronze ------------------------------------------------------------------------------


def _bronze_files(
    storage: LocalStorage, source: SourceRef, tenant: str | None = None
) -> list[StoredFile]:
    """The table's bronze record files (of ``tenant`` only, if given); quarantined and
    foreign files are never read."""
    found: list[StoredFile] = []
    for stored in storage.list_files(f"{source.namespace}/{source.table}/", ".parquet"):
        try:
            partition = parse_bronze_path(stored.path).partition
        except InvalidBronzePathError:
            continue
        if partition.quarantine or (partition.namespace, partition.table) != (
            source.namespace,
            source.table,
        ):
            continue
        if tenant is None or partition.tenant == tenant:
            found.append(stored)
    return found


def _define_batch(
    model: str,
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    paths: list[str],
    referenced: set[str],
) -> None:
    """Make ``_BATCH`` a view of the bronze rows of ``paths`` with lineage columns."""
    scan = bronze_scan(lake, paths)
    try:
        present = bronze_columns(con, scan)
    except duckdb.Error as exc:
        raise ModelRunError(
            model, f"bronze files cannot be read together: {duckdb_reason(exc)}"
        ) from exc
    _create_batch_view(con, bronze_batch(lake, scan, present, referenced))


def _extracted_batch(
    model: str,
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    parts: list[ExtractedPart],
    catalog: Catalog,
    config: ModelConfig,
    referenced: set[str],
    tenant: str | None,
) -> exp.Select:
    """The rows of extracted ``parts`` with lineage (see ``strata.transform.extracted``)."""
    if config.source is None:  # pragma: no cover - the caller checked
        raise ModelRunError(model, "the model does not read an extracted source")
    try:
        return extracted_batch(
            con,
            lake,
            parts,
            ingestion_times(catalog, parts),
            tenant_key=config.source.tenant_key,
            wanted=referenced,
            tenant=tenant,
        )
    except ExtractedBronzeError as exc:
        raise ModelRunError(model, str(exc)) from exc


def _create_batch_view(con: duckdb.DuckDBPyConnection, batch: exp.Select) -> None:
    view = exp.Create(
        this=exp.to_table(_BATCH, quoted=True),
        kind="VIEW",
        expression=batch,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )
    con.execute(view.sql(dialect=DIALECT))


def _count(model: str, con: duckdb.DuckDBPyConnection) -> int:
    query = exp.select(exp.Count(this=exp.Star())).from_(exp.to_table(_BATCH, quoted=True))
    try:
        rows = con.execute(query.sql(dialect=DIALECT)).fetchall()
    except duckdb.Error as exc:
        raise ModelRunError(model, duckdb_reason(exc)) from exc
    return int(rows[0][0])


def _live(query: exp.Query, config: ModelConfig) -> exp.Query:
    """Rows to write when (re)creating the table: deleted keys are left out."""
    if config.soft_delete_column is None:
        return query
    return (
        exp.select(exp.Star(except_=[_col(DELETED)]))
        .from_(query.subquery("deduped"))
        .where(exp.Not(this=_col(DELETED)))
    )


def _fetch(model: str, con: duckdb.DuckDBPyConnection, query: exp.Query) -> pa.Table:
    try:
        table: pa.Table = con.sql(query.sql(dialect=DIALECT)).to_arrow_table()
    except duckdb.Error as exc:
        raise ModelRunError(model, duckdb_reason(exc)) from exc
    return table


def _overwrite(
    model: str,
    con: duckdb.DuckDBPyConnection,
    query: exp.Query,
    path: Path,
    config: ModelConfig,
    replaced: list[str] | None = None,
    cluster: exp.Expr | None = None,
) -> tuple[int, int]:
    """Replace the table with ``query``'s rows, written by DuckDB and committed as one
    Delta version; returns (version, rows written). With ``replaced`` (table files) only
    those files are replaced and the rest of the table stays."""
    try:
        schema = output_schema(con, query)
        _check_keys(model, schema, [], config)
        checked = _fail_on_null(query, [*config.primary_key, *config.partition_by])
        written = copy_to_table(con, checked, path, config.partition_by, schema, cluster)
    except duckdb.Error as exc:
        raise ModelRunError(model, duckdb_reason(exc)) from exc
    if replaced is None:
        version = commit_files(path, schema, config.partition_by, written, overwrite=True)
    else:
        version = commit_files(
            path, schema, config.partition_by, written, replaced, overwrite=False
        )
    return version, sum(f.rows for f in written)


def _replaced_files(
    model: str, path: Path, config: ModelConfig, scope: TenantScope | None
) -> list[str] | None:
    """The table files a tenant's full refresh replaces (``None``: the whole table)."""
    if scope is None:
        return None
    if scope.column not in config.partition_by:
        raise ModelRunError(
            model, f"--tenant needs the table partitioned by '{scope.column}' to replace one tenant"
        )
    return [f.path for f in active_files(path) if f.partition.get(scope.column) == scope.tenant]


def _merge(
    model: str,
    con: duckdb.DuckDBPyConnection,
    query: exp.Query,
    path: Path,
    config: ModelConfig,
) -> tuple[int, int]:
    """Merge the batch into the table; returns (version, rows merged). Files holding a key
    the batch wins are rewritten in DuckDB; a batch whose schema differs from the table's
    (a model change) goes through delta-rs's MERGE, which evolves the schema."""
    deleted = DELETED if config.soft_delete_column is not None else None
    checked = _fail_on_null(query, [*config.primary_key, *config.partition_by])
    try:
        _check_keys(model, output_schema(con, query), [], config)
        merged = merge_files(
            con, checked, path, config.primary_key, deleted_column=deleted, newer_by=LINEAGE
        )
        if merged is not None:
            return merged
        result = _fetch(model, con, checked)
    except duckdb.Error as exc:
        raise ModelRunError(model, duckdb_reason(exc)) from exc
    version = merge_table(
        path, result, config.primary_key, deleted_column=deleted, newer_by=LINEAGE
    )
    return version, result.num_rows


def _clustering(
    model: str,
    con: duckdb.DuckDBPyConnection,
    deduped: exp.Query,
    query: exp.Query,
    config: ModelConfig,
) -> exp.Expr | None:
    try:
        return _key_ranges(con, deduped, config, output_schema(con, query))
    except duckdb.Error as exc:
        raise ModelRunError(model, duckdb_reason(exc)) from exc


def _key_ranges(
    con: duckdb.DuckDBPyConnection, deduped: exp.Query, config: ModelConfig, schema: pa.Schema
) -> exp.Expr | None:
    """For a table keyed (within its partitions) by one integer column: that key's range
    number, in ranges of about ``_ROWS_PER_RANGE`` rows, so a full build writes each key
    range to files of its own. Merges of recent keys (the usual updates) then find and
    rewrite only the newest range's files instead of every file of the partition."""
    rest = [k for k in config.primary_key if k not in config.partition_by]
    if len(rest) != 1 or not pa.types.is_integer(schema.field(rest[0]).type):
        return None
    key = _col(rest[0])
    with_ = deduped.args.get("with_")
    if with_ is None:  # pragma: no cover - compile_silver always builds the CTEs
        return None
    probe = exp.select(
        exp.Min(this=key.copy()), exp.Max(this=key.copy()), exp.Count(this=exp.Star())
    ).from_(_MODEL)
    probe.set("with_", with_.copy())
    low, high, rows = con.execute(probe.sql(dialect=DIALECT)).fetchall()[0]
    if low is None or rows <= _ROWS_PER_RANGE:
        return None
    ranges = -(-int(rows) // _ROWS_PER_RANGE)
    width = max(1, -(-(int(high) - int(low) + 1) // ranges))
    offset = exp.Sub(this=key.copy(), expression=exp.Literal.number(int(low)))
    return exp.IntDiv(this=exp.Paren(this=offset), expression=exp.Literal.number(width))


def _fail_on_null(query: exp.Query, columns: Sequence[str]) -> exp.Query:
    """``query`` with each of ``columns`` raising an error on a null, so a bad row fails
    the build inside DuckDB's write, before anything is committed."""
    replaced = [
        exp.alias_(
            exp.If(
                this=exp.Is(this=_col(c), expression=exp.Null()),
                true=exp.func("error", exp.Literal.string(f"column '{c}' is null")),
                false=_col(c),
            ),
            c,
            quoted=True,
        )
        for c in dict.fromkeys(columns)
    ]
    star = exp.Star(replace=replaced) if replaced else exp.Star()
    return exp.select(star).from_(query.subquery("checked"))


def _check_keys(
    model: str, schema: pa.Schema, data: Sequence[pa.Table | pa.RecordBatch], config: ModelConfig
) -> None:
    for key in config.primary_key:
        if key not in schema.names:
            raise ModelRunError(model, f"primary key column '{key}' is not selected")
        nulls = sum(part.column(key).null_count for part in data)
        if nulls:
            raise ModelRunError(model, f"primary key column '{key}' is null in {nulls} row(s)")
    absent = [c for c in config.partition_by if c not in schema.names]
    if absent:
        raise ModelRunError(model, f"partition column(s) not selected: {absent}")


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
