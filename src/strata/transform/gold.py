"""Build a gold model: run its SQL in DuckDB over the current Delta tables of the models it
reads, and materialize the result as the model's Delta table.

Every model the query reads is registered in an in-memory DuckDB connection under a
generated relation name, and the reference nodes of the parsed tree are rewritten to those
names (the tree, never the SQL text, is edited). The result is written in one Delta commit:

    table             overwrite the whole table
    incremental       merge on ``unique_key`` (the first build, or a full refresh, overwrites)
    tenant_partition  overwrite only the partitions (tenants) present in the output, so a
                      tenant missing from this output keeps its previous rows

The catalog records the table version only after the commit. A query that fails in DuckDB
raises ``ModelRunError`` and leaves the previous version in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable, write_deltalake
from sqlglot import exp

from strata.catalog.store import Catalog
from strata.transform.config import Layer, ModelConfig
from strata.transform.engine import TenantScope, duckdb_reason
from strata.transform.gate import PublishGate, guard
from strata.transform.silver import ModelRunError
from strata.transform.sql import DIALECT, ModelSql, SourceRef, find_references
from strata.transform.tables import (
    cast_to_schema,
    merge_table,
    read_table,
    row_count,
    table_path,
    table_version,
    write_table,
)

_RELATION_PREFIX: Final = "__strata_model_"


@dataclass(frozen=True, slots=True)
class GoldResult:
    model: str
    rows_in: int  # rows of the upstream tables read
    rows_out: int  # rows the query produced (and wrote)
    version: int | None  # the table's version after the build; None: nothing written yet


def relation_name(model: str) -> str:
    """The DuckDB relation a referenced model's table is registered under."""
    return f"{_RELATION_PREFIX}{model}"


def compile_gold(model: ModelSql, relations: Mapping[str, str] | None = None) -> exp.Query:
    """The model's query with every model reference rewritten to its registered relation
    (``relation_name`` unless ``relations`` maps it). Pure; the parsed tree is not changed."""
    tree = model.tree.copy()
    for node, ref in find_references(model.name, tree):
        if isinstance(ref, SourceRef):
            raise ModelRunError(model.name, f"gold models read models, not bronze ({ref})")
        relation = relations[ref] if relations is not None else relation_name(ref)
        alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name))
        node.replace(exp.Table(this=exp.to_identifier(relation, quoted=True), alias=alias))
    return tree


def build_gold(
    model: ModelSql,
    config: ModelConfig,
    lake: Path,
    catalog: Catalog,
    *,
    run_id: str | None,
    full_refresh: bool = False,
    layers: Mapping[str, Layer] | None = None,
    scope: TenantScope | None = None,
    gate: PublishGate | None = None,
) -> GoldResult:
    """Rebuild ``gold.<model>`` from the current tables of the models it reads.

    ``layers`` maps referenced model names to their layers; without it each referenced
    table is looked up in silver, then gold. With ``scope`` the model reads only that
    tenant's rows of each table that has the tenant column, and only that tenant's rows
    of this table are replaced (merged, for ``incremental``). A ``gate`` judges the new
    version before it is recorded; if it refuses, the table is rolled back.
    """
    name = model.name
    query = compile_gold(model)
    con = duckdb.connect()
    try:
        rows_in = 0
        for ref in sorted(model.model_refs):
            dataset = read_table(_upstream_path(name, lake, ref, layers))
            rows_in += _register(con, relation_name(ref), dataset, scope)
        try:
            result: pa.Table = con.sql(query.sql(dialect=DIALECT)).to_arrow_table()
        except duckdb.Error as exc:
            raise ModelRunError(name, duckdb_reason(exc)) from exc
    finally:
        con.close()

    path = table_path(lake, "gold", name)
    before = table_version(path)
    if scope is not None and before is not None and not _merges(config, full_refresh):
        version = _replace_tenant(name, config, path, result, scope)
    else:
        version = _materialize(name, config, path, result, full_refresh or before is None)
    if version is not None and version != before:
        guard(gate, f"gold.{name}", path, version, before)
        rows = row_count(path)
        catalog.record_table_version(f"gold.{name}", version, rows, run_id)
    return GoldResult(name, rows_in, result.num_rows, version)


def _register(
    con: duckdb.DuckDBPyConnection, relation: str, dataset: ds.Dataset, scope: TenantScope | None
) -> int:
    """Make ``dataset`` the relation ``relation`` (only the scope's tenant's rows, where it
    has the tenant column); returns the rows it holds."""
    if scope is None or scope.column not in dataset.schema.names:
        con.register(relation, dataset)
        return int(dataset.count_rows())
    raw = f"{relation}__all"
    con.register(raw, dataset)
    view = exp.Create(
        this=exp.to_table(relation, quoted=True),
        kind="VIEW",
        expression=exp.select(exp.Star())
        .from_(exp.to_table(raw, quoted=True))
        .where(scope.predicate()),
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )
    con.execute(view.sql(dialect=DIALECT))
    return int(dataset.count_rows(filter=pc.field(scope.column) == scope.tenant))


def _merges(config: ModelConfig, full_refresh: bool) -> bool:
    return config.materialized == "incremental" and not full_refresh


def _replace_tenant(
    name: str, config: ModelConfig, path: Path, result: pa.Table, scope: TenantScope
) -> int | None:
    """Replace the scope's tenant's rows of the table with ``result`` in one commit."""
    if scope.column not in result.column_names:
        raise ModelRunError(name, f"--tenant needs the model to select '{scope.column}'")
    target = DeltaTable(str(path))
    write_deltalake(
        str(path),
        cast_to_schema(result, target.to_pyarrow_dataset().schema),
        mode="overwrite",
        partition_by=list(target.metadata().partition_columns) or None,
        predicate=scope.predicate().sql(),
    )
    return table_version(path)


def _upstream_path(model: str, lake: Path, ref: str, layers: Mapping[str, Layer] | None) -> Path:
    if layers is not None and ref in layers:
        return table_path(lake, layers[ref], ref)
    for layer in ("silver", "gold"):
        path = table_path(lake, layer, ref)
        if table_version(path) is not None:
            return path
    raise ModelRunError(model, f"model '{ref}' it reads has no table yet; build it first")


def _materialize(
    name: str, config: ModelConfig, path: Path, result: pa.Table, overwrite: bool
) -> int | None:
    materialized = config.materialized
    if materialized == "table":
        # Partitioned by the tenant key like every table (so the query API can isolate
        # tenants by files), unless the model has no tenant column (a shared calendar).
        declared = "partition_by" in config.declared_keys
        present = all(c in result.column_names for c in config.partition_by)
        partition_by = _partitions(name, config, result) if declared or present else ()
        return write_table(path, result, "overwrite", partition_by)
    if materialized == "incremental":
        if overwrite:
            present = all(c in result.column_names for c in config.partition_by)
            return write_table(path, result, "overwrite", config.partition_by if present else ())
        absent = [k for k in config.unique_key if k not in result.column_names]
        if absent:
            raise ModelRunError(name, f"unique key column(s) not selected: {absent}")
        _check_unique(name, result, config.unique_key)
        return merge_table(path, result, config.unique_key)
    partition_by = _partitions(name, config, result)
    if overwrite:
        return write_table(path, result, "overwrite", partition_by)
    predicate = _partition_predicate(result, partition_by)
    if predicate is None:  # no rows: no tenant to replace
        return table_version(path)
    write_deltalake(
        str(path),
        cast_to_schema(result, DeltaTable(str(path)).to_pyarrow_dataset().schema),
        mode="overwrite",
        partition_by=list(partition_by),
        predicate=predicate.sql(),
    )
    return table_version(path)


def _check_unique(name: str, result: pa.Table, keys: Sequence[str]) -> None:
    counts = result.group_by(list(keys)).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts.column("count_all"), 1)).num_rows
    if repeated:
        raise ModelRunError(name, f"{repeated} unique key value(s) of {list(keys)} repeat")


def _partitions(name: str, config: ModelConfig, result: pa.Table) -> tuple[str, ...]:
    absent = [c for c in config.partition_by if c not in result.column_names]
    if absent:
        raise ModelRunError(name, f"partition column(s) not selected: {absent}")
    return config.partition_by


def _partition_predicate(result: pa.Table, columns: Sequence[str]) -> exp.Expr | None:
    """``<col> IN (values...)`` (or an OR of per-combination ANDs for several columns) over
    the partition values present in ``result``; ``None`` when it has no rows."""
    if result.num_rows == 0:
        return None
    combos = sorted(
        {tuple(row[c] for c in columns) for row in result.select(list(columns)).to_pylist()},
        key=repr,
    )
    if len(columns) == 1:
        values = [v for (v,) in combos]
        present = [v for v in values if v is not None]
        column = exp.column(columns[0], quoted=True)
        parts: list[exp.Expr] = []
        if present:
            parts.append(column.isin(*(exp.convert(v) for v in present)))
        if len(present) < len(values):
            parts.append(exp.Is(this=column.copy(), expression=exp.Null()))
        return exp.or_(*parts) if len(parts) > 1 else parts[0]
    return exp.or_(
        *(
            exp.and_(*(_equals(c, v) for c, v in zip(columns, combo, strict=True)))
            for combo in combos
        )
    )


def _equals(column: str, value: object) -> exp.Expr:
    col = exp.column(column, quoted=True)
    if value is None:
        return exp.Is(this=col, expression=exp.Null())
    return exp.EQ(this=col, expression=exp.convert(value))


__all__ = [
    "GoldResult",
    "build_gold",
    "compile_gold",
    "relation_name",
]
