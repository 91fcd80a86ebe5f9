"""``POST /api/v1/ingest/{namespace}/{table}``: the HTTP collector, for producers that
cannot embed the ingest SDK.

The body is a JSON array of objects, or NDJSON (``Content-Type: application/x-ndjson``);
see ``strata.api.collector`` for how records and their tenants are read. Only an
``ingest`` API key of that namespace may call it. Answers:

    200  {"accepted": n, "rejected": [...]}   the accepted records are durable: on disk in
                                              the collector's journal (fsynced), landing in
                                              bronze with the next batch of their partition
    422  invalid_records                      a record is invalid: none landed, ``records``
                                              lists every invalid one {index, reason}; with
                                              ?skip_invalid=true the valid ones land instead
                                              (200, the others in ``rejected``)
    422  invalid_identifier                   the namespace or table name breaks the rules
    400  malformed_body / 415 / 413           not JSON records / another media type / larger
                                              than [serve] collector_max_body_kb
    401 / 403                                 no valid key / not an ingest key of namespace

The app holds one ``IngestClient`` per namespace (``Collector``), each with its journal slot
under ``[serve] collector_journal`` and its background writer, which batches records into
bronze Parquet files per (table, tenant, day) like for any SDK producer; records that
contradict a table's learned column types land in its quarantine, as the SDK's do.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from strata.api.auth import ForbiddenError, authenticate
from strata.api.collector import (
    MalformedBodyError,
    TenantRule,
    UnsupportedBodyError,
    body_format,
    read_records,
)
from strata.api.errors import ApiError
from strata.api.metrics import ApiMetrics
from strata.api.routes.health import metrics as metrics_route
from strata.api.settings import ServeSettings
from strata.catalog.errors import CatalogError, CatalogUnavailableError
from strata.catalog.store import Catalog
from strata.core.access import Principal
from strata.core.errors import InvalidIdentifierError
from strata.core.identifiers import is_valid_name, validate_name
from strata.core.logging import fields, get_logger
from strata.ingest.client import IngestClient
from strata.ingest.config import IngestConfig
from strata.ingest.errors import ClientClosedError, InvalidRecordError
from strata.ingest.journal import segment_of

log = get_logger(__name__)

PREFIX: Final = "/api/v1/ingest/"
PATH: Final = PREFIX + "{namespace}/{table}"
SOURCE_SERVICE: Final = "collector"  # the source_service of every row the collector lands

router = APIRouter(tags=["collector"])
# What `strata serve --collector-only` serves beside the collector; the full server has
# its own /health (which also needs the query side) and /metrics.
ops_router = APIRouter(tags=["operations"])


# -- durability ---------------------------------------------------------------------------


def sync_file(fd: int) -> None:
    """Make a journal segment's written bytes durable.

    ``fdatasync``, not the SDK writer's ``sync_file_range``: that one leaves out the file's
    metadata, such as the conversion of the preallocated extents the records were written
    into, so after a power loss they could read back as zeros. A segment's first sync also
    writes back its prefaulted zero pages: once per segment, and cheap next to a request.
    """
    os.fdatasync(fd)


class GroupCommit:
    """Makes an ingest client's journal durable up to a position, one sync for many callers.

    ``IngestClient.ingest_many`` returns once records are in the journal's shared mapping:
    safe from a crash of this process, not from a power loss. The collector answers only
    after this sync: a caller that finds one running waits for the next, which then covers
    every append made before it started (group commit), so concurrent requests share syncs.

    It reads the client's journal head and segment paths, which ``IngestClient`` does not
    publish: this is the one place that reaches inside it, until it has a ``sync()`` of its
    own.
    """

    def __init__(self, client: IngestClient) -> None:
        self._client = client
        self._cond = threading.Condition()
        self._durable = 0  # every position below it is on disk
        self._running = False
        self._first_segment = client._appender.first_segment
        self._synced_segments = self._first_segment - 1  # whose directory entry is durable

    def head(self) -> int:
        """The position the client's next append gets: past everything appended so far."""
        with self._client._lock:
            return self._client._appender.head

    def sync(self, target: int) -> None:
        """Return once every journal position below ``target`` is on disk."""
        with self._cond:
            while self._durable < target:
                if not self._running:
                    self._running = True
                    break
                self._cond.wait()
            else:
                return
        reached = 0
        try:
            reached = self._sync_from(self._durable)
        finally:
            with self._cond:
                self._durable = max(self._durable, reached)
                self._running = False
                self._cond.notify_all()

    def _sync_from(self, durable: int) -> int:
        head = self.head()
        journal = self._client._journal
        last = segment_of(head)
        first = segment_of(durable) if durable else self._first_segment
        for number in range(first, last + 1):
            try:
                fd = os.open(journal.segment_path(number), os.O_RDONLY)
            except FileNotFoundError:
                continue  # a number never used, or a segment already landed and removed
            try:
                sync_file(fd)
            finally:
                os.close(fd)
        if last > self._synced_segments:  # new segment files: make their names durable too
            directory = os.open(journal.segments, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._synced_segments = last
        return head


@dataclass(frozen=True, slots=True)
class _Namespace:
    client: IngestClient
    commit: GroupCommit


class Collector:
    """The collector's ingest clients: one per namespace, opened on first use, closed (and
    so flushed to the lake) with the app. Thread-safe."""

    def __init__(self, lake_url: str, journal_root: Path, config: IngestConfig) -> None:
        self.lake_url = lake_url
        self.journal_root = journal_root
        self.config = config
        # The SDK's own limit is a little under the segment size; half of it leaves room
        # for every declaration a segment starts with, so a record passing it always fits.
        self.max_record_bytes = min(config.batch_max_bytes, config.segment_bytes // 2)
        self._namespaces: dict[str, _Namespace] = {}
        self._lock = threading.Lock()
        self._closed = False

    def recover(self) -> list[str]:
        """Open the namespaces a previous run left journals for, so their records land now."""
        found = sorted(
            path.parent.parent.name
            for path in self.journal_root.glob(f"*/{SOURCE_SERVICE}/slot-*")
            if path.is_dir() and is_valid_name(path.parent.parent.name)
        )
        for namespace in dict.fromkeys(found):
            self._namespace(namespace)
        return found

    def land(self, namespace: str, table: str, batches: Mapping[str, list[dict[str, Any]]]) -> int:
        """Journal every batch (tenant -> records) and sync; returns the records journaled."""
        state = self._namespace(namespace)
        landed = 0
        for tenant, records in batches.items():
            try:
                landed += state.client.ingest_many(table, tenant, records)
            except InvalidRecordError:
                # read_records checks what the SDK checks, so this is a bug; the tenants
                # before this one are journaled and will land.
                log.error(
                    "collector batch refused by the SDK after passing its checks",
                    extra=fields(namespace=namespace, table=table, landed=landed),
                )
                raise
        state.commit.sync(state.commit.head())
        return landed

    def _namespace(self, namespace: str) -> _Namespace:
        with self._lock:
            if self._closed:
                raise ClientClosedError
            state = self._namespaces.get(namespace)
            if state is None:
                client = IngestClient(
                    self.lake_url,
                    namespace=namespace,
                    source_service=SOURCE_SERVICE,
                    journal_dir=self.journal_root,
                    config=self.config,
                )
                state = self._namespaces[namespace] = _Namespace(client, GroupCommit(client))
            return state

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush every client to the lake (what does not land in ``timeout`` stays journaled)."""
        with self._lock:
            self._closed = True
            opened = list(self._namespaces.values())
            self._namespaces.clear()
        for state in opened:
            try:
                state.client.close(timeout)
            except Exception:  # one namespace's trouble must not keep the others open
                log.exception("closing a collector ingest client failed")


@dataclass(frozen=True, slots=True)
class CollectorContext:
    catalog: Catalog
    settings: ServeSettings
    collector: Collector
    metrics: ApiMetrics


async def collector_context(request: Request) -> CollectorContext:
    context = getattr(request.app.state, "collector", None)
    if not isinstance(context, CollectorContext):  # before start-up or after shutdown
        raise ApiError(503, "unavailable", "the server is starting or stopping; retry")
    return context


CollectorCtx = Annotated[CollectorContext, Depends(collector_context)]


# -- the route ----------------------------------------------------------------------------


class RejectedRecord(BaseModel):
    index: int = Field(description="0-based position among the body's records.")
    reason: str
    line: int | None = Field(default=None, description="1-based line (NDJSON bodies only).")


class IngestAnswer(BaseModel):
    accepted: int = Field(description="Records journaled durably; they land in bronze next.")
    rejected: list[RejectedRecord] = Field(
        description="Records left out (only with skip_invalid=true; otherwise the answer "
        "is a 422 and nothing lands)."
    )


@router.post(
    PATH,
    summary="Land records in a bronze table, durably, through the ingest SDK",
    response_model=IngestAnswer,
    response_model_exclude_none=True,
)
async def ingest(
    namespace: str,
    table: str,
    request: Request,
    context: CollectorCtx,
    skip_invalid: Annotated[
        bool,
        Query(description="Land the valid records and list the others, instead of refusing all."),
    ] = False,
) -> IngestAnswer:
    settings = context.settings
    principal: Principal = await anyio.to_thread.run_sync(
        functools.partial(
            authenticate,
            request.headers.get("authorization"),
            context.catalog,
            settings.jwt,
            purpose="ingest",
        )
    )
    bad = [
        str(exc)
        for value, kind in ((namespace, "namespace"), (table, "table"))
        if (exc := _identifier_error(value, kind)) is not None
    ]
    if bad:
        raise ApiError(422, "invalid_identifier", "; ".join(bad))
    if principal.namespace != namespace:
        raise ForbiddenError(
            f"ingest key {principal.subject!r} lands records in namespace "
            f"{principal.namespace!r} only, not {namespace!r}"
        )
    try:
        fmt = body_format(request.headers.get("content-type"))
    except UnsupportedBodyError as exc:
        raise ApiError(415, "unsupported_media_type", str(exc)) from None
    body = await request.body()  # the body limit counts these bytes as they arrive (413)
    tenants = TenantRule(principal.tenant, settings.collector_tenant_field)
    try:
        read = await anyio.to_thread.run_sync(
            functools.partial(
                read_records,
                body,
                fmt,
                table=table,
                tenants=tenants,
                max_record_bytes=context.collector.max_record_bytes,
            )
        )
    except MalformedBodyError as exc:
        context.metrics.ingest_requests.labels(namespace, "refused").inc()
        raise ApiError(400, "malformed_body", str(exc)) from None
    counted = context.metrics.ingest_records
    rejected = [r.as_json() for r in read.rejected]
    if rejected and not skip_invalid:
        counted.labels(namespace, "rejected").inc(len(rejected))
        context.metrics.ingest_requests.labels(namespace, "refused").inc()
        raise ApiError(
            422,
            "invalid_records",
            f"{len(rejected)} of {read.total} records are invalid, so none was landed; fix "
            "them and send the request again (or pass skip_invalid=true to land the others)",
            details={"records": rejected},
        )
    accepted = 0
    if read.batches:
        try:
            accepted = await anyio.to_thread.run_sync(
                context.collector.land, namespace, table, read.batches
            )
        except ClientClosedError:
            raise ApiError(503, "unavailable", "the server is stopping; retry") from None
    counted.labels(namespace, "accepted").inc(accepted)
    counted.labels(namespace, "rejected").inc(len(rejected))
    outcome = "partial" if rejected else "landed"
    context.metrics.ingest_requests.labels(namespace, outcome).inc()
    log.debug(
        "collector request landed",
        extra=fields(
            namespace=namespace,
            table=table,
            key_id=principal.subject,
            accepted=accepted,
            rejected=len(rejected),
        ),
    )
    return IngestAnswer(accepted=accepted, rejected=[RejectedRecord(**r) for r in rejected])


def _identifier_error(value: str, kind: str) -> InvalidIdentifierError | None:
    try:
        validate_name(value, kind)
    except InvalidIdentifierError as exc:
        return exc
    return None


# -- operations, for the collector on its own -----------------------------------------------


@ops_router.get("/health", summary="Whether the collector and its catalog answer")
def health(context: CollectorCtx) -> dict[str, str]:
    try:
        context.catalog.schema_revision()
    except (CatalogError, CatalogUnavailableError) as exc:
        log.warning("health check failed", extra=fields(error=str(exc)))
        raise ApiError(503, "catalog_unavailable", "the catalog database does not answer") from None
    return {"status": "ok"}


ops_router.add_api_route(
    "/metrics",
    metrics_route,
    methods=["GET"],
    summary="Prometheus metrics",
    response_class=Response,
)

__all__ = ["PREFIX", "Collector", "CollectorContext", "ops_router", "router"]
