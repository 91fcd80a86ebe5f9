"""The DuckDB side of a build: a bounded connection, and bronze files as a relation.

A build connection gets a memory limit and its own spill directory, so a table larger than
memory is deduped out of core instead of growing the process (the transform benchmark holds
peak memory under 2 GB at 10 million rows). Bronze is scanned by DuckDB's Parquet reader
straight from the files; nothing is read into Python first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb
from sqlglot import exp

from strata.transform.sql import DIALECT

BRONZE_FILE: Final = "_bronze_file"
BRONZE_ROW: Final = "_bronze_row"
# DuckDB's own name for the row index column; the file column's name is ours to choose.
_ROW_NUMBER: Final = "file_row_number"
_FILE_COLUMN: Final = "__strata_file"

# Overridable for small machines or big tables; DuckDB spills to disk beyond it.
# 1.5 GB keeps a build's peak RSS under 2 GB with Python and Arrow on top.
MEMORY_LIMIT: Final = os.environ.get("STRATA_DUCKDB_MEMORY_LIMIT", "1536MB")


@dataclass(frozen=True, slots=True)
class TenantScope:
    """A build limited to one tenant (``strata run --tenant``): only its bronze is read and
    only its rows of each table are replaced; other tenants' rows stay as they are."""

    column: str  # the project's tenant key
    tenant: str

    def predicate(self) -> exp.Expr:
        return exp.EQ(
            this=exp.column(self.column, quoted=True), expression=exp.convert(self.tenant)
        )


@contextmanager
def build_connection(threads: int | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with a memory limit and a private spill directory,
    closed (and its spill files removed) on exit."""
    spill = tempfile.mkdtemp(prefix="strata-duckdb-")
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": MEMORY_LIMIT,
        "temp_directory": spill,
        "preserve_insertion_order": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(config=config)
    # The columns probe and the build read the same footers (a Parquet setting, so not
    # accepted at connect).
    con.execute("set parquet_metadata_cache = true")
    # DuckDB buffers 512k rows per partition and thread before writing a partitioned COPY;
    # under a memory limit that spills and triples the build time. 64k rows does not.
    con.execute("set partitioned_write_flush_threshold = 65536")
    try:
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def duckdb_reason(error: duckdb.Error) -> str:
    """DuckDB's message without the SQL excerpt it appends (``LINE 1: ...``), which for a
    build is a statement listing every bronze file."""
    return str(error).split("\n\n", 1)[0].strip()


def bronze_scan(lake: Path, paths: Sequence[str]) -> exp.Expr:
    """``read_parquet`` over the lake-relative ``paths``, by column name, without hive
    partition columns (the tenant is a column of the record already)."""
    files = exp.Array(expressions=[exp.Literal.string(str(lake / p)) for p in paths])
    return exp.Anonymous(
        this="read_parquet",
        expressions=[
            files,
            _named("filename", exp.Literal.string(_FILE_COLUMN)),
            _named("file_row_number", exp.true()),
            _named("union_by_name", exp.true()),
            _named("hive_partitioning", exp.false()),
        ],
    )


def bronze_columns(con: duckdb.DuckDBPyConnection, scan: exp.Expr) -> list[str]:
    """The record columns the files hold between them (lower-cased)."""
    described = con.sql(exp.select(exp.Star()).from_(scan.copy()).sql(dialect=DIALECT)).columns
    return [c.lower() for c in described if c not in (_FILE_COLUMN, _ROW_NUMBER)]


def bronze_batch(
    lake: Path, scan: exp.Expr, present: Collection[str], wanted: Collection[str]
) -> exp.Select:
    """The bronze rows with lineage: every record column, ``_bronze_file`` (lake-relative
    path) and ``_bronze_row``. A column in ``wanted`` that no file holds has only ever been
    null (the SDK writes a column once it holds a value, e.g. ``deleted_at``): it is added as
    an untyped null so the model's casts give it its type."""
    prefix = len(str(lake)) + 2  # 1-based position after "{lake}/"
    missing = sorted(set(wanted) - set(present) - {BRONZE_FILE, BRONZE_ROW})
    relative = exp.Substring(this=_quoted(_FILE_COLUMN), start=exp.Literal.number(prefix))
    return exp.select(
        exp.Star(except_=[_quoted(_FILE_COLUMN), _quoted(_ROW_NUMBER)]),
        *(exp.alias_(exp.Null(), name, quoted=True) for name in missing),
        exp.alias_(relative, BRONZE_FILE, quoted=True),
        exp.alias_(_quoted(_ROW_NUMBER), BRONZE_ROW, quoted=True),
    ).from_(scan.copy())


def _named(name: str, value: exp.Expr) -> exp.EQ:
    return exp.EQ(this=exp.var(name), expression=value)


def _quoted(name: str) -> exp.Column:
    return exp.column(name, quoted=True)
