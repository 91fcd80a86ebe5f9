"""Which files of each exposed Delta table belong to one tenant, and the view over them.

The tenant sandbox builds its views over exactly these files and allows DuckDB to open
nothing else, so the list must come from the log's active add actions (never a directory
listing, which would also hold files a later commit removed). Reading raw Parquet is only
faithful to the Delta table when the log adds nothing on top of the files, so tables with
deletion vectors or column mapping are refused rather than served wrong.

Delta does not store partition columns in the files, so each view adds them back as typed
literals: the tenant column is the sandbox's tenant by construction, never read from a path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias
from urllib.parse import unquote, urlsplit

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from strata.core.errors import Terminal
from strata.core.identifiers import validate_name, validate_tenant

TableLocation: TypeAlias = "str | os.PathLike[str]"
"""A Delta table's directory; a relative one is taken relative to the lake."""

# DuckDB expands these in a file name as a glob, which could widen a view past its files.
_GLOB_CHARS: Final = frozenset("*?[]{}")
# A reader feature that changes which rows the Parquet files hold (column mapping, which
# renames their columns, is checked by its mode: the feature alone changes nothing).
_UNSUPPORTED_READER_FEATURES: Final = frozenset({"deletionVectors"})


class TableIsolationError(Terminal):
    """An exposed table cannot be served to one tenant alone from its files."""

    def __init__(self, table: str, reason: str) -> None:
        self.table = table
        self.reason = reason
        super().__init__(f"table '{table}' cannot be isolated per tenant: {reason}")


@dataclass(frozen=True)
class TenantFile:
    """One active data file of the tenant, with its other partition columns' values."""

    path: Path
    size: int
    rows: int | None
    partition: tuple[tuple[str, object], ...]  # partition columns but the tenant column


@dataclass(frozen=True)
class SandboxTable:
    """One exposed table as one tenant sees it at one Delta version."""

    name: str  # "gold.fct_assignments", also the view's qualified name
    path: Path  # the Delta table's directory
    version: int
    schema: pa.Schema  # the whole table's schema, tenant column included
    tenant_column: str
    tenant: str
    files: tuple[TenantFile, ...]

    @property
    def schema_name(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def bytes(self) -> int:
        """What a full scan of the tenant's rows reads, for a scan budget."""
        return sum(f.size for f in self.files)

    @property
    def rows(self) -> int | None:
        """The tenant's row count from the log's file stats; ``None`` if a file has none."""
        counts = [f.rows for f in self.files]
        return None if None in counts else sum(c for c in counts if c is not None)

    @property
    def directories(self) -> tuple[Path, ...]:
        """The partition directories holding the tenant's files (usually one)."""
        return tuple(sorted({f.path.parent for f in self.files}))


def tenant_tables(
    lake: Path,
    exposed: Mapping[str, TableLocation] | Iterable[str],
    tenant_column: str,
    tenant: str,
) -> list[SandboxTable]:
    """The tenant's current files of every exposed table, sorted by name.

    ``exposed`` maps qualified names (``gold.fct_assignments``) to Delta table directories,
    or lists names only, each then read from ``{lake}/{schema}/{table}``.
    """
    tenant = validate_tenant(tenant)
    validate_name(tenant_column, "tenant column")
    locations = exposed if isinstance(exposed, Mapping) else dict.fromkeys(exposed)
    tables = []
    for name in sorted(locations):
        schema, _, table = name.partition(".")
        validate_name(schema, "schema")
        validate_name(table, "table")
        where = locations[name]
        path = lake / schema / table if where is None else lake / Path(where)
        tables.append(_tenant_table(name, path.resolve(), tenant_column, tenant))
    return tables


def _tenant_table(name: str, path: Path, tenant_column: str, tenant: str) -> SandboxTable:
    if not DeltaTable.is_deltatable(str(path)):
        raise TableIsolationError(name, f"no Delta table at {path}")
    delta = DeltaTable(str(path))
    partition_columns = list(delta.metadata().partition_columns)
    if tenant_column not in partition_columns:
        raise TableIsolationError(name, f"it is not partitioned by '{tenant_column}'")
    _check_protocol(name, delta)
    files = _tenant_files(name, delta, path, partition_columns, tenant_column, tenant)
    return SandboxTable(
        name=name,
        path=path,
        version=int(delta.version()),
        schema=pa.schema(delta.schema().to_arrow()),
        tenant_column=tenant_column,
        tenant=tenant,
        files=tuple(sorted(files, key=lambda f: str(f.path))),
    )


def _tenant_files(
    name: str,
    delta: DeltaTable,
    root: Path,
    partition_columns: Sequence[str],
    tenant_column: str,
    tenant: str,
) -> list[TenantFile]:
    """The tenant's active files, filtered in Arrow first: a log may list many files."""
    actions = pa.table(delta.get_add_actions(flatten=True))
    key = f"partition.{tenant_column}"
    if actions.num_rows == 0 or key not in actions.column_names:
        return []
    wanted = ["path", "size_bytes", "num_records", *(f"partition.{c}" for c in partition_columns)]
    actions = actions.select([c for c in wanted if c in actions.column_names])
    # Partition values come typed (an int column gives ints); the tenant is their text.
    values = pc.cast(actions.column(key), pa.string())
    rows: list[dict[str, Any]] = actions.filter(pc.equal(values, tenant)).to_pylist()
    others = [c for c in partition_columns if c != tenant_column]
    return [
        TenantFile(
            path=_file_path(name, root, row["path"]),
            size=int(row["size_bytes"]),
            rows=None if row.get("num_records") is None else int(row["num_records"]),
            partition=tuple((c, row[f"partition.{c}"]) for c in others),
        )
        for row in rows
    ]


def _check_protocol(name: str, delta: DeltaTable) -> None:
    features = set(delta.protocol().reader_features or ())
    refused = sorted(features & _UNSUPPORTED_READER_FEATURES)
    mapping = delta.metadata().configuration.get("delta.columnMapping.mode", "none")
    if mapping != "none":
        refused.append(f"column mapping ({mapping})")
    if refused:
        raise TableIsolationError(name, f"its rows are not plain Parquet ({', '.join(refused)})")


def _file_path(name: str, root: Path, relative: str) -> Path:
    """The absolute path of an add action's file, which must lie inside the table."""
    # Add action paths are URL-encoded relative paths; an absolute URI points elsewhere.
    if urlsplit(relative).scheme or relative.startswith("/"):
        raise TableIsolationError(name, f"file {relative!r} is outside the table directory")
    path = Path(os.path.normpath(root / unquote(relative)))
    if root not in path.parents:
        raise TableIsolationError(name, f"file {relative!r} is outside the table directory")
    if _GLOB_CHARS & set(str(path)):
        raise TableIsolationError(name, f"file path {str(path)!r} holds glob characters")
    return path


# -- views ---------------------------------------------------------------------------------


def view_sql(table: SandboxTable) -> str:
    """The SELECT of the table's view: the tenant's files only, typed as the Delta schema.

    A tenant without files gets a typed empty relation, so queries bind and count 0.
    """
    names = table.schema.names
    types = dict(zip(names, duckdb_types(table.schema), strict=True))
    if not table.files:
        columns = ", ".join(f"CAST(NULL AS {types[c]}) AS {quote_name(c)}" for c in names)
        return f"SELECT {columns} WHERE false"
    groups: dict[tuple[tuple[str, object], ...], list[Path]] = {}
    for file in table.files:
        groups.setdefault(file.partition, []).append(file.path)
    selects = []
    for partition, paths in groups.items():
        fixed = {table.tenant_column: table.tenant, **dict(partition)}
        present, uniform = _file_columns(paths)
        selected = []
        for c in names:
            value = quote_name(c) if c in present else "NULL"
            value = quote_value(fixed[c]) if c in fixed else value
            selected.append(f"CAST({value} AS {types[c]}) AS {quote_name(c)}")
        # union_by_name reads every footer at every bind, so only when the files differ
        # (a column added by a later merge); without it DuckDB takes the first file's.
        options = "hive_partitioning = false" + ("" if uniform else ", union_by_name = true")
        files = ", ".join(quote_value(str(p)) for p in paths)
        # Every name and value in the text is quoted by quote_name / quote_value.
        scan = f"read_parquet([{files}], {options})"
        selects.append(f"SELECT {', '.join(selected)} FROM {scan}")  # noqa: S608
    return "\nUNION ALL\n".join(selects)


def _file_columns(paths: Sequence[Path]) -> tuple[set[str], bool]:
    """The top-level columns the files hold, and whether they all hold the same ones."""
    schemas = [pq.read_schema(p) for p in paths]
    uniform = all(s.equals(schemas[0], check_metadata=False) for s in schemas[1:])
    return {name for s in schemas for name in s.names}, uniform


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_value(value: object) -> str:
    """A SQL string literal (or NULL); the views' SQL cannot take bound parameters."""
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


_types_lock = threading.Lock()
_types: dict[tuple[tuple[str, str], ...], tuple[str, ...]] = {}
_scratch: list[duckdb.DuckDBPyConnection] = []


def duckdb_types(schema: pa.Schema) -> tuple[str, ...]:
    """The DuckDB SQL type of each column, as DuckDB itself maps the Arrow types.

    Asked of one private connection that never runs tenant SQL, and cached by schema.
    """
    key = tuple((field.name, str(field.type)) for field in schema)
    with _types_lock:
        found = _types.get(key)
        if found is None:
            if not _scratch:
                _scratch.append(duckdb.connect(config=_SCRATCH_CONFIG))
            relation = _scratch[0].from_arrow(schema.empty_table())
            found = tuple(str(t) for t in relation.types)
            if len(_types) >= _TYPES_CACHED:
                _types.clear()
            _types[key] = found
    return found


_TYPES_CACHED: Final = 256
ConfigValue: TypeAlias = "str | bool | int | float | list[str]"
_SCRATCH_CONFIG: Final[dict[str, ConfigValue]] = {
    "threads": 1,
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
}
