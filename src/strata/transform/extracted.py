"""Bronze landed by ``strata extract`` (seed 003) as the input of a silver model.

An extractor writes each chunk of an entity as one immutable part::

    bronze/{source}/scope={scope}/entity={entity}/ingestion_date={YYYY-MM-DD}/run_id={run_id}/part-{N}.jsonl.gz

(or ``part-{N}.parquet``). A silver model whose YAML says ``source: {extract, entity}``
reads every part of that entity, across ingestion dates, run ids and both formats, as one
relation: the record's columns, ``_bronze_file`` (the part's lake-relative path),
``_bronze_row`` (the 1-based line of a jsonl part, the 1-based row of a Parquet part) and
``ingested_at``.

Ordering. A part's records carry no ingestion time and run ids are random UUIDs, so a
part's ``ingested_at`` is the start time of its extract run, from the catalog's run ledger
(the run that wrote ``run_id=...``). A later extraction of a primary key therefore wins in
silver's dedupe and merge, then the later line of the same part. Within one run an entity
is one SELECT, so a key is read once per run and the order of parts inside a run never has
to decide. A part of a run the catalog does not know (a lake copied from elsewhere) is
taken to be ingested at midnight UTC of its ``ingestion_date``.

Tenant. The ``_tenant`` field an extractor adds for a declared tenant column is read as
the project's tenant key (replacing a record column of that name, which holds the same
value). ``strata run --tenant`` filters the rows on it: unlike the SDK's layout a part is
not one tenant's, so every new part is read and the parts are not marked consumed by a
tenant's run (the next full run still needs the other tenants' rows).

Line numbers. DuckDB's JSON reader gives no row index, so the jsonl parts are read once,
in order (``preserve_insertion_order``), into a temporary table, and a record's line is its
row id minus the first row id of its part, plus one. This also parses the gzip and JSON
once, though the build reads its batch several times. A part has no blank lines (the
extractor never writes one), so the n-th record is the n-th line. Nothing here installs or
loads a DuckDB extension: JSON and Parquet are built in.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from strata.catalog.errors import RunNotFoundError
from strata.catalog.store import Catalog
from strata.lake.storage import LakeStorage, StoredFile
from strata.transform.config import ExtractedSource, ModelConfig
from strata.transform.engine import BRONZE_FILE, BRONZE_ROW, duckdb_reason
from strata.transform.errors import ModelSqlError, TransformError
from strata.transform.sql import DIALECT, ModelSql

PartFormat = Literal["jsonl.gz", "parquet"]

BRONZE_DIR: Final = "bronze"
TENANT_FIELD: Final = "_tenant"  # strata.extract.landing.TENANT_FIELD
INGESTED_AT: Final = "ingested_at"
_PART_RE: Final = re.compile(
    r"bronze/(?P<source>[^/]+)/scope=(?P<scope>[^/]+)/entity=(?P<entity>[^/]+)"
    r"/ingestion_date=(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})/run_id=(?P<run_id>[^/]+)"
    r"/part-(?P<number>[0-9]+)\.(?P<format>jsonl\.gz|parquet)"
)
_DUCKDB_FILE_RE: Final = re.compile(r'in file "([^"]+)"')
_JSONL: Final = "__strata_jsonl"
_PARTS: Final = "__strata_parts"
_FILE: Final = "__strata_file"  # DuckDB's filename column
_FIRST: Final = "__strata_first"  # the row id of a jsonl part's first line
_ROW_NUMBER: Final = "file_row_number"
# Compressed, a part this small holds well under 100 kB: cheap to read whole.
_SMALL_GZIP: Final = 64


class ExtractedBronzeError(TransformError):
    """Extracted bronze cannot be read as a silver model's input."""


class BronzePartError(ExtractedBronzeError):
    """A bronze part cannot be read; ``line`` is 1-based, ``None`` when the whole file is bad."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = path if line is None else f"{path} line {line}"
        super().__init__(f"bronze part {where}: {problem}")


@dataclass(frozen=True, slots=True)
class PartPath:
    """Where one part sits in the layout; parsing is the inverse of the extractor's paths."""

    source: str
    scope: str
    entity: str
    ingestion_date: dt.date
    run_id: str
    number: int
    format: PartFormat

    @property
    def path(self) -> str:
        return (
            f"{BRONZE_DIR}/{self.source}/scope={self.scope}/entity={self.entity}"
            f"/ingestion_date={self.ingestion_date.isoformat()}/run_id={self.run_id}"
            f"/part-{self.number}.{self.format}"
        )


@dataclass(frozen=True, slots=True)
class ExtractedPart:
    """A part found in the lake: its address and its size (the catalog's file identity)."""

    where: PartPath
    size: int

    @property
    def path(self) -> str:
        return self.where.path


def parse_part_path(path: str) -> PartPath | None:
    """The address of the part at lake-relative ``path``; ``None`` if it is not a part."""
    match = _PART_RE.fullmatch(path)
    if match is None:
        return None
    try:
        day = dt.date.fromisoformat(match["date"])
    except ValueError:
        return None
    fmt: PartFormat = "parquet" if match["format"] == "parquet" else "jsonl.gz"
    where = PartPath(
        match["source"],
        match["scope"],
        match["entity"],
        day,
        match["run_id"],
        int(match["number"]),
        fmt,
    )
    return where if where.path == path else None  # e.g. part-01: not a name the extractor writes


def extracted_parts(storage: LakeStorage, source: ExtractedSource) -> list[ExtractedPart]:
    """Every part of ``source``'s entity (of its scope, if it names one), in path order."""
    prefix = f"{BRONZE_DIR}/{source.extract}/"
    if source.scope is not None:
        prefix += f"scope={source.scope}/entity={source.entity}/"
    found: list[ExtractedPart] = []
    for stored in storage.list_files(prefix):
        where = parse_part_path(stored.path)
        if where is None or (where.source, where.entity) != (source.extract, source.entity):
            continue
        found.append(ExtractedPart(where, stored.size))
    return found


def stored_files(parts: Iterable[ExtractedPart]) -> list[StoredFile]:
    return [StoredFile(p.path, p.size) for p in parts]


def readable_parts(lake: Path, parts: Iterable[ExtractedPart]) -> list[ExtractedPart]:
    """``parts`` without those that hold no record, which DuckDB's readers refuse (no schema
    to read). The extractor never writes one; a jsonl part that small is checked in full."""
    readable: list[ExtractedPart] = []
    for part in parts:
        path = lake / part.path
        if part.where.format == "parquet":
            try:
                empty = pq.read_metadata(path).num_rows == 0
            except (OSError, pa.ArrowException):
                empty = False  # unreadable: DuckDB's read names the file
        elif part.size <= _SMALL_GZIP:
            try:
                empty = not gzip.decompress(path.read_bytes()).strip()
            except (OSError, EOFError, zlib.error):
                empty = False
        else:
            empty = False
        if not empty:
            readable.append(part)
    return readable


def check_extracted_source(model: ModelSql, config: ModelConfig) -> None:
    """A model declaring ``source: {extract, entity}`` must read ``bronze.<extract>.<entity>``,
    so its SQL and its YAML cannot disagree about what it reads."""
    if config.source is None:
        return
    reads = sorted(str(ref) for ref in model.source_refs)
    if reads != [config.source.reference]:
        said = ", ".join(reads) or "no bronze table"
        raise ModelSqlError(
            model.name,
            f"its YAML declares source {{extract: {config.source.extract}, entity: "
            f"{config.source.entity}}} but its SQL reads {said}; read "
            f"{config.source.reference}",
        )


def ingestion_times(catalog: Catalog, parts: Iterable[ExtractedPart]) -> dict[str, dt.datetime]:
    """Each part's ingestion time (by path): its extract run's start, or midnight UTC of its
    ingestion date when the catalog does not know the run."""
    started: dict[str, dt.datetime | None] = {}
    times: dict[str, dt.datetime] = {}
    for part in parts:
        run_id = part.where.run_id
        if run_id not in started:
            try:
                started[run_id] = catalog.get_run(run_id).started_at.astimezone(dt.UTC)
            except RunNotFoundError:
                started[run_id] = None
        moment = started[run_id]
        if moment is None:
            moment = dt.datetime.combine(part.where.ingestion_date, dt.time(), dt.UTC)
        times[part.path] = moment
    return times


def extracted_batch(
    con: duckdb.DuckDBPyConnection,
    lake: Path,
    parts: Sequence[ExtractedPart],
    times: dict[str, dt.datetime],
    *,
    tenant_key: str,
    wanted: Collection[str],
    tenant: str | None = None,
) -> exp.Select:
    """The rows of ``parts`` with lineage, as a query over temporary relations this creates
    in ``con``; ``wanted`` columns no part holds are untyped nulls (as for SDK bronze), and
    with ``tenant`` only that tenant's rows are kept. Raises ``BronzePartError`` naming the
    file and line of a record that is not a JSON object, ``ExtractedBronzeError`` for
    records that clash with the lineage columns."""
    jsonl = [p for p in parts if p.where.format == "jsonl.gz"]
    parquet = [p for p in parts if p.where.format == "parquet"]
    first = _load_jsonl(con, lake, jsonl) if jsonl else {}
    con.register(_PARTS, _parts_table(lake, parts, times, first))

    selects: list[exp.Select] = []
    if jsonl:
        row = exp.Add(
            this=exp.Sub(this=exp.column("rowid", table=_JSONL), expression=_col(_FIRST)),
            expression=exp.Literal.number(1),
        )
        selects.append(
            exp.select(exp.Star(except_=[_col(_FILE), _col(_FIRST)]), exp.alias_(row, BRONZE_ROW))
            .from_(exp.to_table(_JSONL))
            .join(exp.to_table(_PARTS), using=[_FILE])
        )
    if parquet:
        row = exp.Add(this=_col(_ROW_NUMBER), expression=exp.Literal.number(1))
        selects.append(
            exp.select(
                exp.Star(except_=[_col(_FILE), _col(_FIRST), _col(_ROW_NUMBER)]),
                exp.alias_(row, BRONZE_ROW),
            )
            .from_(_parquet_scan(lake, parquet))
            .join(exp.to_table(_PARTS), using=[_FILE])
        )
    raw: exp.Query = selects[0]
    for other in selects[1:]:
        raw = exp.Union(this=raw, expression=other, distinct=False, by_name=True)
    records = [
        *(_columns(con, exp.to_table(_JSONL), jsonl[0]) if jsonl else []),
        *(_columns(con, _parquet_scan(lake, parquet), parquet[0]) if parquet else []),
    ]
    lineage = {INGESTED_AT, BRONZE_FILE, BRONZE_ROW}
    clashes = sorted(lineage & {name.lower() for name in records})
    if clashes:
        entity = f"{parts[0].where.source}.{parts[0].where.entity}"
        raise ExtractedBronzeError(
            f"the records of {entity} hold column(s) {clashes}, which silver adds as "
            "lineage; rename them in the source's query"
        )
    present = {name.lower() for name in records if name not in (_FILE, _ROW_NUMBER)}
    excluded: list[exp.Column] = []
    renamed: list[exp.Expr] = []
    tenant_column: str | None = tenant_key if tenant_key in present else None
    if TENANT_FIELD in present:
        if TENANT_FIELD not in wanted:  # kept only for a model that reads it by name
            excluded.append(_col(TENANT_FIELD))
        if tenant_key in present:
            excluded.append(_col(tenant_key))
        renamed.append(exp.alias_(_col(TENANT_FIELD), tenant_key, quoted=True))
        tenant_column = TENANT_FIELD
        present.add(tenant_key)
    missing = sorted(set(wanted) - present - lineage)
    query = exp.select(
        exp.Star(except_=excluded) if excluded else exp.Star(),
        *renamed,
        *(exp.alias_(exp.Null(), name, quoted=True) for name in missing),
    ).from_(raw.subquery("extracted"))
    if tenant is not None and tenant_column is not None:
        query = query.where(exp.EQ(this=_col(tenant_column), expression=exp.convert(tenant)))
    return query


def _load_jsonl(
    con: duckdb.DuckDBPyConnection, lake: Path, parts: Sequence[ExtractedPart]
) -> dict[str, int]:
    """Read the jsonl parts in order into ``_JSONL``; returns each part's first row id."""
    scan = exp.Anonymous(
        this="read_json",
        expressions=[
            exp.Array(expressions=[exp.Literal.string(str(lake / p.path)) for p in parts]),
            _named("format", exp.Literal.string("newline_delimited")),
            _named("records", exp.Literal.string("true")),
            _named("compression", exp.Literal.string("gzip")),
            _named("union_by_name", exp.true()),
            _named("filename", exp.Literal.string(_FILE)),
            _named("hive_partitioning", exp.false()),
        ],
    )
    create = exp.Create(
        this=exp.to_table(_JSONL, quoted=True),
        kind="TABLE",
        expression=exp.select(exp.Star()).from_(scan),
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )
    setting = con.execute("select current_setting('preserve_insertion_order')").fetchone()
    preserved = bool(setting and setting[0])
    con.execute("set preserve_insertion_order = true")  # the row ids follow the lines
    try:
        con.execute(create.sql(dialect=DIALECT))
    except duckdb.Error as exc:
        raise _bad_part(lake, parts, exc) from exc
    finally:
        if not preserved:
            con.execute("set preserve_insertion_order = false")
    spans = con.execute(
        exp.select(
            _col(_FILE),
            exp.Min(this=exp.column("rowid")),
            exp.Max(this=exp.column("rowid")),
            exp.Count(this=exp.Star()),
        )
        .from_(exp.to_table(_JSONL, quoted=True))
        .group_by(_col(_FILE))
        .sql(dialect=DIALECT)
    ).fetchall()
    first: dict[str, int] = {}
    for file, low, high, count in spans:
        if int(high) - int(low) + 1 != int(count):  # pragma: no cover - DuckDB keeps the order
            raise TransformError(f"bronze part {file} was not read in line order")
        first[str(file)] = int(low)
    return first


def _columns(con: duckdb.DuckDBPyConnection, relation: exp.Expr, part: ExtractedPart) -> list[str]:
    try:
        return list(con.sql(exp.select(exp.Star()).from_(relation).sql(dialect=DIALECT)).columns)
    except duckdb.Error as exc:
        raise BronzePartError(part.path, None, duckdb_reason(exc)) from exc


def _bad_part(lake: Path, parts: Sequence[ExtractedPart], error: duckdb.Error) -> BronzePartError:
    """The first bad line of the parts (the one DuckDB names first), found by reading them
    again in Python: DuckDB's message gives no line, or the one after the bad one."""
    named = _DUCKDB_FILE_RE.search(str(error))
    ordered = sorted(parts, key=lambda p: named is None or str(lake / p.path) != named[1])
    for part in ordered:
        found = _first_bad_line(lake / part.path)
        if found is not None:
            return BronzePartError(part.path, *found)
    path = next((p.path for p in ordered if named and str(lake / p.path) == named[1]), None)
    return BronzePartError(path or ordered[0].path, None, duckdb_reason(error))


def _first_bad_line(path: Path) -> tuple[int | None, str] | None:
    """(line, problem) of the first line of a jsonl.gz part that is not a JSON object."""
    number = 0
    try:
        with gzip.open(path, "rb") as lines:
            for number, raw in enumerate(lines, start=1):
                try:
                    value = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    return number, f"not valid JSON ({_json_problem(exc)})"
                if not isinstance(value, dict):
                    return number, f"not a JSON object but {type(value).__name__}"
    except (OSError, EOFError, zlib.error) as exc:
        return None, f"not a readable gzip file after line {number} ({exc})"
    return None


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)


def _parts_table(
    lake: Path,
    parts: Sequence[ExtractedPart],
    times: dict[str, dt.datetime],
    first: dict[str, int],
) -> pa.Table:
    files = [str(lake / p.path) for p in parts]
    return pa.table(
        {
            _FILE: pa.array(files, pa.string()),
            BRONZE_FILE: pa.array([p.path for p in parts], pa.string()),
            INGESTED_AT: pa.array([times[p.path] for p in parts], pa.timestamp("us", tz="UTC")),
            _FIRST: pa.array([first.get(f, 0) for f in files], pa.int64()),
        }
    )


def _parquet_scan(lake: Path, parts: Sequence[ExtractedPart]) -> exp.Expr:
    files = exp.Array(expressions=[exp.Literal.string(str(lake / p.path)) for p in parts])
    return exp.Anonymous(
        this="read_parquet",
        expressions=[
            files,
            _named("filename", exp.Literal.string(_FILE)),
            _named("file_row_number", exp.true()),
            _named("union_by_name", exp.true()),
            _named("hive_partitioning", exp.false()),
        ],
    )


def _named(name: str, value: exp.Expr) -> exp.EQ:
    return exp.EQ(this=exp.var(name), expression=value)


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)
