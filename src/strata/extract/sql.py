"""Incremental extraction from SQL databases with watermarks (seed 003).

Per entity, one query ``SELECT * FROM t WHERE wm > :low ORDER BY wm`` where ``low`` is the
catalog's watermark minus the table's lookback (no WHERE on the first run or with
``full``). Rows are streamed through a server-side cursor (``stream_results`` +
``yield_per``) and cut into chunks of ``chunk_rows``; each chunk becomes one ``part-{N}``
written atomically, so memory follows ``chunk_rows``, not the table.

The watermark moves to the highest value seen only after every part of the entity is
written. A run that fails (database error, lake outage, a declared column that vanished)
leaves the watermark where it was and is recorded as failed; the parts it did write stay
in their own ``run_id=`` folder (bronze is append-only) and are not counted as landed. The
next run starts from the old watermark, so there is no gap; rows read twice — because of
the lookback or because a failed run's parts exist — share their primary key and are
deduplicated downstream by it (silver's ``unique_key``/dedupe).

From PostgreSQL through psycopg, an entity whose columns are all of common types is read
with ``COPY (SELECT ...) TO STDOUT`` instead (``pg_copy``): the same query, chunks and
parts, parsed by Arrow rather than built into Python objects, while one thread reads ahead
and two more encode and write parts. It lands the same records (the same JSON text) as
the cursor path and fails the same way; the log line of each entity says which ``reader``
it took, and ``use_copy=False`` turns the fast path off.

Timestamp watermarks: the session runs in UTC, naive database timestamps are taken as UTC,
and the watermark is stored as ISO-8601 UTC text. Id watermarks are integers stored as text.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from strata.catalog.store import Catalog
from strata.core.errors import StrataError
from strata.core.logging import fields, get_logger
from strata.extract.config import SourceConfig, TableSpec
from strata.extract.landing import (
    TENANT_FIELD,
    encode_table_part,
    part_path,
    run_prefix,
    to_utc,
    write_part,
)
from strata.lake.storage import LakeStorage

if TYPE_CHECKING:
    from strata.extract.pg_copy import CopyPlan

log = get_logger(__name__)

Progress = Callable[[str, int], None]  # (entity, rows landed so far in this entity)
_WRITERS = 2  # threads encoding and writing COPY parts (at most this many parts in flight)


class ExtractError(StrataError):
    """One entity of one source could not be extracted; the message names both."""

    def __init__(self, source: str, entity: str | None, problem: str) -> None:
        self.source = source
        self.entity = entity
        self.problem = problem
        where = f"source {source!r}" + ("" if entity is None else f", entity {entity!r}")
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class EntityResult:
    entity: str
    rows: int
    parts: tuple[str, ...]
    watermark_before: str | None
    watermark_after: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class ExtractSummary:
    source: str
    run_id: str
    entities: tuple[EntityResult, ...]


def extract_source(
    source: SourceConfig,
    storage: LakeStorage,
    catalog: Catalog,
    *,
    entities: Sequence[str] | None = None,
    full: bool = False,
    progress: Progress | None = None,
    engine: Engine | None = None,
    today: dt.date | None = None,
    use_copy: bool = True,
) -> ExtractSummary:
    """Extract ``source`` (or only ``entities``) into ``storage`` as one catalog run.

    Raises ``ExtractError`` on the first entity that fails; entities finished before it
    keep their advanced watermarks, the failed one keeps its old watermark.
    ``use_copy=False`` reads PostgreSQL through the cursor like any other database (the
    COPY path lands the same records; the switch is there to compare the two).
    """
    specs = [source.table(e) for e in entities] if entities else list(source.tables)
    run_id = catalog.start_run(
        "extract", {"source": source.name, "entities": [s.entity for s in specs], "full": full}
    )
    own_engine = engine is None
    try:
        eng = engine if engine is not None else _engine(source)
    except ExtractError as exc:
        catalog.finish_run(run_id, "failed", str(exc))
        raise
    ingestion_date = today or dt.datetime.now(dt.UTC).date()
    results: list[EntityResult] = []
    try:
        for spec in specs:
            results.append(
                _extract_entity(
                    source,
                    spec,
                    eng,
                    storage,
                    catalog,
                    run_id,
                    ingestion_date,
                    full,
                    progress,
                    use_copy,
                )
            )
    except BaseException as exc:
        catalog.finish_run(run_id, "failed", str(exc)[:2000] or type(exc).__name__)
        raise
    finally:
        if own_engine:
            eng.dispose()
    catalog.finish_run(run_id, "succeeded")
    return ExtractSummary(source.name, run_id, tuple(results))


def _engine(source: SourceConfig) -> Engine:
    try:
        return sa.create_engine(source.url, pool_pre_ping=False, poolclass=sa.NullPool)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ExtractError(source.name, None, f"bad url: {_first_line(exc)}") from exc


def _extract_entity(
    source: SourceConfig,
    spec: TableSpec,
    engine: Engine,
    storage: LakeStorage,
    catalog: Catalog,
    run_id: str,
    ingestion_date: dt.date,
    full: bool,
    progress: Progress | None,
    use_copy: bool,
) -> EntityResult:
    started = time.monotonic()
    current = catalog.watermark(source.name, spec.entity)
    before = current.value if current is not None else None
    low = None if full or before is None else _low_bound(spec, before)
    prefix = run_prefix(source.name, source.scope, spec.entity, ingestion_date, run_id)
    parts: list[str] = []  # parts written so far, in order
    reader = "cursor"
    try:
        with engine.connect() as connection:
            _utc_session(connection)
            statement = _statement(connection, source, spec, low)
            plan = _copy_plan(connection, source, spec, low) if use_copy else None
            if plan is not None:
                reader = "copy"
                rows, highest = _land_copy(
                    connection, plan, source, spec, storage, prefix, progress, parts
                )
            else:
                rows, highest = _land_rows(
                    connection, statement, source, spec, storage, prefix, progress, parts
                )
    except ExtractError:
        raise
    except SQLAlchemyError as exc:
        raise ExtractError(source.name, spec.entity, _db_problem(exc)) from exc
    except StrataError as exc:
        raise ExtractError(
            source.name, spec.entity, f"{exc} (after {len(parts)} part(s); watermark unchanged)"
        ) from exc
    after = before
    if highest is not None:
        candidate = _watermark_text(spec, highest)
        if before is None or full or _newer(spec, candidate, before):
            after = candidate
    if after is not None and after != before:
        catalog.advance_watermark(source.name, spec.entity, after, run_id, kind=spec.watermark_kind)
    seconds = time.monotonic() - started
    log.info(
        "entity extracted",
        extra=fields(
            source=source.name, entity=spec.entity, rows=rows, parts=len(parts), reader=reader
        ),
    )
    return EntityResult(spec.entity, rows, tuple(parts), before, after, seconds)


def _land_rows(
    connection: Connection,
    statement: sa.Select[Any],
    source: SourceConfig,
    spec: TableSpec,
    storage: LakeStorage,
    prefix: str,
    progress: Progress | None,
    parts: list[str],
) -> tuple[int, Any]:
    """Stream ``statement`` through a server-side cursor into parts; (rows, highest mark)."""
    rows = 0
    highest: Any = None
    result = connection.execution_options(stream_results=True, yield_per=spec.chunk_rows).execute(
        statement
    )
    try:
        keys = list(result.keys())
        _check_columns(source, spec, keys)
        wm_index = keys.index(spec.watermark_column)
        for chunk in result.partitions(spec.chunk_rows):
            records = [_record(keys, row, spec) for row in chunk]
            for row in chunk:
                value = row[wm_index]
                if value is not None and (highest is None or _gt(value, highest)):
                    highest = value
            path = part_path(prefix, len(parts), source.format)
            try:
                write_part(storage, path, records)
            except StrataError:
                raise
            except (ValueError, TypeError, pa.ArrowException) as exc:
                raise _unencodable(source, spec, len(parts), exc) from exc
            parts.append(path)
            rows += len(records)
            if progress is not None:
                progress(spec.entity, rows)
    except BaseException:
        _abandon(connection, result)
        raise
    result.close()
    return rows, highest


def _copy_plan(
    connection: Connection, source: SourceConfig, spec: TableSpec, low: Any
) -> CopyPlan | None:
    """The COPY plan when the source is PostgreSQL through psycopg and its columns allow one."""
    if connection.dialect.name != "postgresql" or connection.dialect.driver != "psycopg":
        return None
    from strata.extract import pg_copy  # psycopg is an optional dependency, present here

    try:
        columns = pg_copy.describe(_driver(connection), spec)
    except pg_copy.CopyError as exc:
        raise ExtractError(source.name, spec.entity, _copy_problem(exc)) from exc
    _check_columns(source, spec, [c.name for c in columns])
    return pg_copy.plan_copy(columns, spec, source.format, low)


def _land_copy(
    connection: Connection,
    plan: CopyPlan,
    source: SourceConfig,
    spec: TableSpec,
    storage: LakeStorage,
    prefix: str,
    progress: Progress | None,
    parts: list[str],
) -> tuple[int, Any]:
    """COPY the entity into parts; (rows, highest mark).

    This thread parses each chunk while a thread reads the next ones and two more encode
    and write the previous ones (Arrow, zlib and file writes release the GIL). A part
    counts, in order, once it is written."""
    from strata.extract import pg_copy

    rows = 0
    highest: Any = None
    pending: deque[tuple[Future[None], str, int]] = deque()

    def write(n: int, path: str, table: pa.Table) -> None:
        try:
            body = encode_table_part(path, table, plan.json_columns)
        except (ValueError, TypeError, pa.ArrowException) as exc:
            raise _unencodable(source, spec, n, exc) from exc
        storage.write_atomic(path, body)

    def settle(keep: int) -> None:
        nonlocal rows
        while len(pending) > keep:
            future, path, count = pending.popleft()
            future.result()
            parts.append(path)
            rows += count
            if progress is not None:
                progress(spec.entity, rows)

    try:
        with ThreadPoolExecutor(_WRITERS, thread_name_prefix="strata-part-writer") as writers:
            with pg_copy.CopyStream(_driver(connection), plan.query, spec.chunk_rows) as stream:
                for data in stream:
                    n = len(parts) + len(pending)
                    try:
                        table = plan.decode(data)
                    except (ValueError, TypeError, pa.ArrowException) as exc:
                        raise _unencodable(source, spec, n, exc) from exc
                    value = plan.highest(table)
                    if value is not None and (highest is None or _gt(value, highest)):
                        highest = value
                    path = part_path(prefix, n, source.format)
                    pending.append((writers.submit(write, n, path, table), path, len(table)))
                    settle(keep=_WRITERS)
            settle(keep=0)
    except pg_copy.CopyError as exc:
        connection.invalidate()
        raise ExtractError(source.name, spec.entity, _copy_problem(exc)) from exc
    except BaseException:
        connection.invalidate()  # a COPY left half read: the session is not worth reusing
        raise
    return rows, highest


def _driver(connection: Connection) -> Any:
    """The psycopg connection under ``connection`` (COPY is not in the DB-API)."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise sa.exc.ResourceClosedError("the connection is closed")
    return driver


def _unencodable(source: SourceConfig, spec: TableSpec, n: int, exc: BaseException) -> ExtractError:
    problem = f"could not encode part {n}: {_first_line(exc)} (watermark unchanged)"
    return ExtractError(source.name, spec.entity, problem)


def _copy_problem(exc: Any) -> str:
    return f"database error: {exc.problem} (watermark unchanged)"


def _abandon(connection: Connection, result: sa.CursorResult[Any]) -> None:
    """Drop a connection whose streamed result is half read, without draining the rest.

    A MySQL unbuffered result would otherwise be read to its end (the whole table) before
    the connection could be used or closed; the connection is discarded instead.
    """
    pending = getattr(getattr(result, "cursor", None), "_result", None)
    if getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False  # type: ignore[union-attr]
    else:
        try:  # a PostgreSQL server-side cursor closes with one cheap CLOSE
            result.close()
        except SQLAlchemyError:
            pass
    connection.invalidate()


def _utc_session(connection: Connection) -> None:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.exec_driver_sql("SET TIME ZONE 'UTC'")
    elif dialect in ("mysql", "mariadb"):
        connection.exec_driver_sql("SET time_zone = '+00:00'")


def _statement(
    connection: Connection, source: SourceConfig, spec: TableSpec, low: Any
) -> sa.Select[Any]:
    wm: sa.ColumnElement[Any]
    if spec.table is not None:
        schema, _, name = spec.table.rpartition(".")
        try:
            table = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=connection)
        except sa.exc.NoSuchTableError as exc:
            raise ExtractError(source.name, spec.entity, f"table {spec.table!r} not found") from exc
        _check_columns(source, spec, [c.name for c in table.columns])
        query = sa.select(table)
        wm = table.c[spec.watermark_column]
    else:
        # The query is the project author's own SQL (trusted config), wrapped as a subquery.
        query = sa.select(sa.literal_column("*")).select_from(sa.text(f"({spec.query}) AS src"))
        wm = sa.column(spec.watermark_column)
    if low is not None:
        query = query.where(wm > sa.bindparam("low", low))
    return query.order_by(wm)


def _check_columns(source: SourceConfig, spec: TableSpec, columns: Sequence[str]) -> None:
    present = set(columns)
    declared = [
        ("watermark column", spec.watermark_column),
        *(("tenant_column", c) for c in ([spec.tenant_column] if spec.tenant_column else [])),
        *(("primary_key column", c) for c in spec.primary_key),
    ]
    for what, column in declared:
        if column not in present:
            raise ExtractError(
                source.name,
                spec.entity,
                f"declared {what} {column!r} is not in {spec.table or 'the query'} "
                f"(columns: {', '.join(columns)})",
            )


def _record(keys: Sequence[str], row: Sequence[Any], spec: TableSpec) -> dict[str, Any]:
    record = dict(zip(keys, row, strict=True))
    if spec.tenant_column is not None:
        tenant = record.get(spec.tenant_column)
        record[TENANT_FIELD] = None if tenant is None else str(tenant)
    return record


def _low_bound(spec: TableSpec, value: str) -> Any:
    if spec.watermark_kind == "id":
        lookback = spec.lookback if isinstance(spec.lookback, int) else 0
        return int(value) - lookback
    lookback_td = spec.lookback if isinstance(spec.lookback, dt.timedelta) else dt.timedelta(0)
    moment = to_utc(dt.datetime.fromisoformat(value)) - lookback_td
    return moment.replace(tzinfo=None)  # the session is UTC; naive binds on every driver


def _gt(a: Any, b: Any) -> bool:
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return to_utc(a) > to_utc(b)
    return bool(a > b)


def _watermark_text(spec: TableSpec, value: Any) -> str:
    if spec.watermark_kind == "id":
        return str(int(value))
    if isinstance(value, dt.datetime):
        return to_utc(value).isoformat()
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), dt.UTC).isoformat()
    return to_utc(dt.datetime.fromisoformat(str(value))).isoformat()


def _newer(spec: TableSpec, candidate: str, current: str) -> bool:
    if spec.watermark_kind == "id":
        return int(candidate) > int(current)
    return dt.datetime.fromisoformat(candidate) > dt.datetime.fromisoformat(current)


def _db_problem(exc: SQLAlchemyError) -> str:
    text = _first_line(getattr(exc, "orig", None) or exc)
    return f"database error: {text} (watermark unchanged)"


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
