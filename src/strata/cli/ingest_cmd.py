"""``strata ingest``: land a CSV, JSON-lines or Parquet file in the bronze lake.

The file is parsed whole before the SDK sees a record, and each tenant's records go to
``ingest_many`` in one call, which is all-or-nothing: a file with an unstorable record
lands nothing (with ``--tenant-column``, only tenants before the bad record land).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

import typer

from strata.cli import options
from strata.cli.console import count, plural, progress_bar, stdout
from strata.core.identifiers import validate_name, validate_tenant
from strata.ingest.client import IngestClient
from strata.ingest.errors import FlushTimeoutError, InvalidRecordError
from strata.ingest.files import (
    FileFormatError,
    LoadedFile,
    Record,
    TenantBatch,
    load_file,
    single_tenant,
    split_by_tenant,
)
from strata.ingest.stats import IngestStats
from strata.lake.storage import open_lake

_TICK: Final = 1000  # records between progress-bar updates


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


def ingest(
    file: Annotated[Path, typer.Argument(help="The CSV, JSON-lines or Parquet file to land.")],
    namespace: Annotated[
        str, typer.Option("--namespace", help="Namespace (service) the table belongs to.")
    ],
    table: Annotated[str, typer.Option("--table", help="Bronze table to land the records in.")],
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Tenant every record belongs to."),
    ] = None,
    tenant_column: Annotated[
        str | None,
        typer.Option(
            "--tenant-column",
            help="Column holding each record's tenant id (records keep the column).",
        ),
    ] = None,
    lake: options.Lake = options.DEFAULT_LAKE,
    source_service: Annotated[
        str | None,
        typer.Option(
            "--source-service",
            help="Recorded as source_service on every row (default: the namespace).",
        ),
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="File format (default: from the file extension)."),
    ] = None,
    journal_dir: options.JournalDir = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            min=0,
            help="Seconds to wait for records to reach the lake; on timeout they stay in "
            "the journal and land on the next run with the same journal.",
        ),
    ] = 120.0,
) -> None:
    """Land a CSV, JSON-lines or Parquet file in a bronze table, for one tenant or many."""
    if (tenant is None) == (tenant_column is None):
        raise typer.BadParameter(
            "give exactly one of them", param_hint="'--tenant' / '--tenant-column'"
        )
    # Cheap checks first: a typo in a name should not cost a parse of a large file.
    validate_name(namespace, "namespace")
    validate_name(table, "table")
    if tenant is not None:
        validate_tenant(tenant)
    loaded = load_file(file, fmt.value if fmt is not None else None)
    if tenant_column is not None:
        batches = split_by_tenant(loaded, tenant_column)
    else:
        batches = single_tenant(loaded, tenant)
    out = stdout()
    if not batches:
        out.print(f"{file}: no records, nothing to land")
        return
    storage = open_lake(lake)
    client = IngestClient(
        storage, namespace=namespace, source_service=source_service, journal_dir=journal_dir
    )
    stats = _land(client, loaded, table, batches, timeout)
    out.print(
        f"Ingested {count(len(loaded.records))} records from {file} into "
        f"{namespace}.{table} ({plural(len(batches), 'tenant')}, lake {storage.url})"
    )
    _print_stats(stats)


def _land(
    client: IngestClient, loaded: LoadedFile, table: str, batches: list[TenantBatch], timeout: float
) -> IngestStats:
    """Hand every batch to the client and wait for the lake; always closes the client."""
    close_timeout = timeout
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"landing {loaded.path}", total=len(loaded.records))
            done = 0
            for batch in batches:

                def tick(n: int, base: int = done) -> None:
                    bar.update(task, completed=base + n)

                try:
                    client.ingest_many(table, batch.tenant, _ticking(batch.records, tick))
                except InvalidRecordError as exc:
                    raise _rejected(loaded, batch, exc, done) from None
                done += len(batch.records)
                bar.update(task, completed=done)
            bar.update(task, description="waiting for the lake")
            client.flush(timeout)
        return client.stats()
    except (FlushTimeoutError, KeyboardInterrupt):
        close_timeout = 0.0  # records stay journaled; the next client on this journal lands them
        raise
    finally:
        client.close(timeout=close_timeout)


def _ticking(records: list[Record], tick: Callable[[int], None]) -> Iterator[Record]:
    """Yield records, reporting progress as the client consumes them."""
    for n, record in enumerate(records, start=1):
        yield record
        if n % _TICK == 0:
            tick(n)


def _rejected(
    loaded: LoadedFile, batch: TenantBatch, exc: InvalidRecordError, accepted: int
) -> FileFormatError:
    """Point a rejected record back at its line or row in the file."""
    field = f"field {exc.field!r}: " if exc.field is not None else ""
    landed = (
        f"; {count(accepted)} records of earlier tenants were accepted"
        if accepted
        else "; nothing was landed"
    )
    reason = f"record rejected (tenant {batch.tenant!r}): {field}{exc.reason}{landed}"
    if exc.index is None:
        return FileFormatError(loaded.path, reason)
    return loaded.error(batch.positions[exc.index], reason)


def _print_stats(stats: IngestStats) -> None:
    out = stdout()
    table_rows = stats.accepted - stats.quarantined
    out.print(f"  accepted      {count(stats.accepted):>12}  ({count(table_rows)} into the table)")
    out.print(
        f"  quarantined   {count(stats.quarantined):>12}  (shape conflicts, kept under _quarantine)"
    )
    if stats.replayed:
        out.print(f"  replayed      {count(stats.replayed):>12}  (left in the journal earlier)")
    out.print(f"  files written {count(stats.files_written):>12}")
