"""Upsert a batch into a Delta table by rewriting only the files that hold its keys.

delta-rs's MERGE joins the batch against every file of the partitions it touches and
rewrites each file with a match; this does the same work in DuckDB, cheaper: it reads only
the key and ordering columns to find which files hold a key the batch wins, rewrites just
those files, and adds the batch's new keys as new files, all in one Delta commit (add and
remove actions, see ``delta_files``). A batch that wins nothing commits nothing.

Per key the newer row wins, comparing ``newer_by`` columns in order (a replayed old batch
cannot undo a newer one); a winning row flagged deleted removes its key. The fast path
needs the batch in the table's schema with string partition columns; otherwise
``merge_files`` returns ``None`` and the caller merges through delta-rs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from sqlglot import exp

from strata.transform.delta_files import (
    TableFile,
    active_files,
    commit_files,
    copy_to_table,
    delta_arrow_schema,
    output_schema,
)
from strata.transform.sql import DIALECT
from strata.transform.tables import is_newer, keys_match

_INCOMING: Final = "__strata_incoming"
_FILES: Final = "__strata_files"
_MATCHES: Final = "__strata_matches"
_WINNERS: Final = "__strata_winners"
_FILE: Final = "__strata_file"
_PATH: Final = "__strata_path"
_LOW: Final = "__strata_low"
_HIGH: Final = "__strata_high"


def merge_files(
    con: duckdb.DuckDBPyConnection,
    batch: exp.Query,
    table: Path,
    keys: Sequence[str],
    *,
    deleted_column: str | None,
    newer_by: Sequence[str],
) -> tuple[int, int] | None:
    """Merge ``batch`` (one row per key) into the Delta table at ``table``.

    Returns (version, winning rows) — the version unchanged when nothing won — or ``None``
    when the fast path does not apply and nothing was done.
    """
    target = DeltaTable(str(table))
    schema = pa.schema(target.schema().to_arrow())
    partition_by = list(target.metadata().partition_columns)
    _execute(con, _create_temp(_INCOMING, batch, table=True))
    columns = exp.select(exp.Star(except_=_cols(deleted_column))).from_(_table(_INCOMING))
    if not _compatible(output_schema(con, columns), schema, partition_by):
        return None

    bounded = _bounded_key(keys, partition_by, schema)
    files = active_files(target, [bounded] if bounded else [])
    con.register(_FILES, _files_table(table, files, partition_by, bounded, schema))
    holding = _holding(con, _candidates(con, partition_by, bounded), keys, partition_by)
    _execute(
        con,
        _create_temp(_MATCHES, _matches(holding, keys, newer_by, partition_by), table=True),
    )
    winners = exp.select(exp.Star()).from_(_table(_INCOMING, "i"))
    winners = winners.where(
        exp.Not(
            this=exp.Exists(
                this=exp.select(exp.Literal.number(1))
                .from_(_table(_MATCHES, "m"))
                .where(
                    exp.and_(
                        keys_match(keys, "m", "i"),
                        exp.Not(this=exp.Paren(this=is_newer(newer_by, "i", "m"))),
                    )
                )
            )
        )
    )
    _execute(con, _create_temp(_WINNERS, winners, table=True))
    won = _scalar(con, exp.select(exp.Count(this=exp.Star())).from_(_table(_WINNERS)))
    if won == 0:
        return int(target.version()), 0

    rewrite = [
        str(row[0])
        for row in con.execute(
            exp.select(_col(_PATH, "m"))
            .distinct()
            .from_(_table(_MATCHES, "m"))
            .join(_table(_WINNERS, "w"), on=keys_match(keys, "m", "w"))
            .sql(dialect=DIALECT)
        ).fetchall()
    ]
    # The batch's rows go to files of their own, apart from the rewritten files' survivors:
    # records are mostly updated soon after they land, so the next batches' updates then
    # rewrite these small recent files, not the large old ones.
    written = copy_to_table(con, _live_winners(deleted_column), table, partition_by, schema)
    if rewrite:
        # One new file per rewritten file, so a merge keeps the table's key-range layout.
        kept = _kept(table, rewrite, keys, partition_by)
        per_file = exp.func("hash", _col(_PATH))
        written += copy_to_table(con, kept, table, partition_by, schema, per_file, [_PATH])
    version = commit_files(
        table, schema, partition_by, written, rewrite, overwrite=False, target=target
    )
    return version, won


# -- queries ---------------------------------------------------------------------------------


def _candidates(
    con: duckdb.DuckDBPyConnection, partition_by: Sequence[str], bounded: str | None
) -> list[str]:
    """Absolute paths of the files that may hold a key of the batch: in a partition it
    touches and, where the log has the file's min/max of the key, with a batch key in it."""
    conditions: list[exp.Expr] = [
        exp.EQ(this=_col(c, "i"), expression=_col(c, "f")) for c in partition_by
    ]
    if bounded is not None:
        key = _col(bounded, "i")
        conditions.append(_within(key, _col(_LOW, "f"), exp.GTE))
        conditions.append(_within(key, _col(_HIGH, "f"), exp.LTE))
    query = exp.select(_col("abs", "f")).from_(_table(_FILES, "f"))
    if conditions:
        probe = exp.select(exp.Literal.number(1)).from_(_table(_INCOMING, "i"))
        query = query.where(exp.Exists(this=probe.where(exp.and_(*conditions))))
    return [str(row[0]) for row in con.execute(query.sql(dialect=DIALECT)).fetchall()]


def _holding(
    con: duckdb.DuckDBPyConnection,
    candidates: Sequence[str],
    keys: Sequence[str],
    partition_by: Sequence[str],
) -> list[str]:
    """The candidates that hold a key of the batch, found by reading only the key columns
    (the ordering columns are then read from these files alone)."""
    if not candidates:
        return []
    found = (
        exp.select(_col("abs", "f"))
        .distinct()
        .from_(_scan(candidates, "e"))
        .join(_table(_FILES, "f"), on=exp.EQ(this=_col(_FILE, "e"), expression=_col("abs", "f")))
        .join(_table(_INCOMING, "i"), on=_key_join(keys, partition_by))
    )
    return [str(row[0]) for row in con.execute(found.sql(dialect=DIALECT)).fetchall()]


def _key_join(keys: Sequence[str], partition_by: Sequence[str]) -> exp.Expr:
    """A table row (``e``, partition values in ``f``) and a batch row (``i``) share a key."""
    return exp.and_(
        *(
            exp.EQ(this=_col(k, "f" if k in partition_by else "e"), expression=_col(k, "i"))
            for k in keys
        )
    )


def _within(key: exp.Expr, bound: exp.Column, op: type[exp.Binary]) -> exp.Expr:
    """``bound IS NULL OR key <op> bound``: a file without statistics is always a candidate."""
    unknown = exp.Is(this=bound, expression=exp.Null())
    return exp.Paren(this=exp.or_(unknown, op(this=key.copy(), expression=bound.copy())))


def _bounded_key(keys: Sequence[str], partition_by: Sequence[str], schema: pa.Schema) -> str | None:
    """The key column whose per-file min/max can rule files out: the one key column that
    is not a partition column, if it is an integer (string statistics may be truncated)."""
    rest = [k for k in keys if k not in partition_by]
    if len(rest) == 1 and pa.types.is_integer(schema.field(rest[0]).type):
        return rest[0]
    return None


def _scan(paths: Sequence[str], alias: str) -> exp.Expr:
    files = exp.Array(expressions=[exp.Literal.string(p) for p in paths])
    scan = exp.Anonymous(
        this="read_parquet",
        expressions=[
            files,
            exp.EQ(this=exp.var("filename"), expression=exp.Literal.string(_FILE)),
            exp.EQ(this=exp.var("hive_partitioning"), expression=exp.false()),
        ],
    )
    return exp.Table(this=scan, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _with_partitions(paths: Sequence[str], partition_by: Sequence[str]) -> exp.Select:
    """Rows of the table files ``paths`` with their partition columns put back (Delta keeps
    partition values in the log, not in the files) and each row's table-relative path."""
    return (
        exp.select(
            exp.Column(this=exp.Star(except_=[_col(_FILE)]), table=exp.to_identifier("e")),
            *(_col(c, "f") for c in partition_by),
            exp.alias_(_col("path", "f"), _PATH, quoted=True),
        )
        .from_(_scan(paths, "e"))
        .join(_table(_FILES, "f"), on=exp.EQ(this=_col(_FILE, "e"), expression=_col("abs", "f")))
    )


def _matches(
    paths: Sequence[str],
    keys: Sequence[str],
    newer_by: Sequence[str],
    partition_by: Sequence[str],
) -> exp.Select:
    """Key and ordering columns of every table row whose key is in the batch, with the
    row's file."""
    if not paths:  # nothing to match: an empty relation of the same shape
        return (
            exp.select(
                *(_col(c, "i") for c in dict.fromkeys([*keys, *newer_by])),
                exp.alias_(exp.cast(exp.Null(), "varchar"), _PATH, quoted=True),
            )
            .from_(_table(_INCOMING, "i"))
            .where(exp.false())
        )
    picked = [
        *(_col(k, "f" if k in partition_by else "e") for k in keys),
        *(_col(c, "e") for c in newer_by if c not in keys),
        exp.alias_(_col("path", "f"), _PATH, quoted=True),
    ]
    return (
        exp.select(*picked)
        .from_(_scan(paths, "e"))
        .join(_table(_FILES, "f"), on=exp.EQ(this=_col(_FILE, "e"), expression=_col("abs", "f")))
        .join(_table(_INCOMING, "i"), on=_key_join(keys, partition_by))
    )


def _live_winners(deleted_column: str | None) -> exp.Select:
    winners = exp.select(exp.Star(except_=_cols(deleted_column))).from_(_table(_WINNERS, "w"))
    if deleted_column is not None:
        winners = winners.where(exp.Not(this=_col(deleted_column, "w")))
    return winners


def _kept(
    table: Path, rewrite: Sequence[str], keys: Sequence[str], partition_by: Sequence[str]
) -> exp.Select:
    """The rows of the files being rewritten that the batch did not win, with the file
    each comes from (``_PATH``)."""
    absolute = [str(table / p) for p in rewrite]
    return (
        exp.select(exp.Star())
        .from_(_with_partitions(absolute, partition_by).subquery("e"))
        .where(
            exp.Not(
                this=exp.Exists(
                    this=exp.select(exp.Literal.number(1))
                    .from_(_table(_WINNERS, "w"))
                    .where(keys_match(keys, "w", "e"))
                )
            )
        )
    )


# -- helpers -----------------------------------------------------------------------------------


def _files_table(
    table: Path,
    files: Sequence[TableFile],
    partition_by: Sequence[str],
    bounded: str | None,
    schema: pa.Schema,
) -> pa.Table:
    """One row per file: its paths, partition values and bounds of the ``bounded`` key."""
    columns: dict[str, pa.Array] = {
        "path": pa.array([f.path for f in files], pa.string()),
        "abs": pa.array([str(table / f.path) for f in files], pa.string()),
    }
    for column in partition_by:
        columns[column] = pa.array([f.partition.get(column) for f in files], pa.string())
    if bounded is not None:
        kind = schema.field(bounded).type
        columns[_LOW] = pa.array([f.low.get(bounded) for f in files], kind)
        columns[_HIGH] = pa.array([f.high.get(bounded) for f in files], kind)
    return pa.table(columns)


def _compatible(batch: pa.Schema, table: pa.Schema, partition_by: Sequence[str]) -> bool:
    """Same columns in the same types, and string partition columns."""
    ours = delta_arrow_schema(batch)
    if sorted(ours.names) != sorted(table.names):
        return False
    if any(ours.field(n).type != table.field(n).type for n in table.names):
        return False
    return all(pa.types.is_string(table.field(c).type) for c in partition_by)


def _create_temp(name: str, query: exp.Query, *, table: bool = False) -> exp.Create:
    return exp.Create(
        this=_table(name),
        kind="TABLE" if table else "VIEW",
        expression=query,
        replace=True,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )


def _execute(con: duckdb.DuckDBPyConnection, statement: exp.Expr) -> None:
    con.execute(statement.sql(dialect=DIALECT))


def _scalar(con: duckdb.DuckDBPyConnection, query: exp.Query) -> int:
    return int(con.execute(query.sql(dialect=DIALECT)).fetchall()[0][0])


def _cols(name: str | None) -> list[exp.Column]:
    return [] if name is None else [_col(name)]


def _table(name: str, alias: str | None = None) -> exp.Table:
    table = exp.to_table(name, quoted=True)
    if alias is not None:
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    return table


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)
