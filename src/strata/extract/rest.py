"""Incremental extraction from REST APIs, the twin of ``strata.extract.sql`` (seed 003).

Per entity: ``GET base_url + path`` with the entity's params, the pagination's params and
the incremental param, set from the catalog's watermark minus the lookback (or from the
config's ``initial`` on the first run and with ``full``; left out when neither applies).
Pages are followed until the pagination says stop (see ``rest_config``); records are cut
into parts of ``chunk_rows``, each written atomically, so memory follows ``chunk_rows`` and
one page, not the entity.

Requests go through ``JsonFetcher``: a client-side rate limit, ``Retry-After`` on 429 and
503, exponential backoff for 5xx and connection errors. 401/403, other 4xx, a body that
is not JSON, a records path that is not there, a record without its watermark, tenant or
primary-key field: each is an ``ExtractError`` naming source and entity.

Run semantics are the SQL extractor's: one catalog run per call; the watermark moves to
the highest ``watermark_field`` among the landed records only after every part of the
entity is written; a failed entity keeps its watermark, its parts stay in their own
``run_id=`` folder and are not counted as landed, so the next run starts from the old
watermark — no gap; repeats (the lookback, a failed run's parts) share their primary key
and are deduplicated downstream.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from strata.catalog.store import Catalog
from strata.core.errors import StrataError
from strata.core.logging import fields, get_logger
from strata.extract.http import (
    BadResponseError,
    FetchError,
    JsonFetcher,
    PageRequest,
    Params,
    RateLimiter,
    describe_shape,
    is_missing,
    lookup,
    merge_params,
    with_param,
)
from strata.extract.landing import TENANT_FIELD, part_path, run_prefix, write_part
from strata.extract.rest_config import Incremental, RestEntity, RestSourceConfig
from strata.extract.sql import EntityResult, ExtractError, ExtractSummary, Progress
from strata.lake.storage import LakeStorage

log = get_logger(__name__)

USER_AGENT = "strata-extract"


def extract_rest_source(
    source: RestSourceConfig,
    storage: LakeStorage,
    catalog: Catalog,
    *,
    entities: Sequence[str] | None = None,
    full: bool = False,
    progress: Progress | None = None,
    transport: httpx.BaseTransport | None = None,
    today: dt.date | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ExtractSummary:
    """Extract ``source`` (or only ``entities``) into ``storage`` as one catalog run.

    Raises ``ExtractError`` on the first entity that fails; entities finished before it
    keep their advanced watermarks, the failed one keeps its old watermark.
    """
    specs = [source.entity(e) for e in entities] if entities else list(source.entities)
    run_id = catalog.start_run(
        "extract", {"source": source.name, "entities": [s.entity for s in specs], "full": full}
    )
    ingestion_date = today or dt.datetime.now(dt.UTC).date()
    results: list[EntityResult] = []
    try:
        with _client(source, transport) as client:
            fetcher = JsonFetcher(
                client,
                source.retries,
                RateLimiter(source.requests_per_second, sleep=sleep),
                secrets=source.secrets,
                sleep=sleep,
            )
            for spec in specs:
                job = _EntityRun(source, spec, fetcher, storage, catalog, run_id, ingestion_date)
                results.append(job.run(full, progress))
    except BaseException as exc:
        catalog.finish_run(run_id, "failed", str(exc)[:2000] or type(exc).__name__)
        raise
    catalog.finish_run(run_id, "succeeded")
    return ExtractSummary(source.name, run_id, tuple(results))


def _client(source: RestSourceConfig, transport: httpx.BaseTransport | None) -> httpx.Client:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **source.headers}
    return httpx.Client(
        headers=headers,
        timeout=source.timeout_seconds,
        follow_redirects=True,  # httpx drops Authorization on a redirect to another origin
        transport=transport,
    )


@dataclass(slots=True)
class _EntityRun:
    source: RestSourceConfig
    spec: RestEntity
    fetcher: JsonFetcher
    storage: LakeStorage
    catalog: Catalog
    run_id: str
    ingestion_date: dt.date
    parts: list[str] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    rows: int = 0
    highest: dt.datetime | int | None = None

    def run(self, full: bool, progress: Progress | None) -> EntityResult:
        source, spec = self.source, self.spec
        started = time.monotonic()
        incremental = spec.incremental
        current = None
        if incremental is not None:
            current = self.catalog.watermark(source.name, spec.entity)
        before = current.value if current is not None else None
        try:
            params = self._first_params(before, full)
            for shown, records in self._pages(params):
                for index, item in enumerate(records, 1):
                    self.pending.append(self._record(item, index, shown))
                    if len(self.pending) >= spec.chunk_rows:
                        self._flush()
                if progress is not None:
                    progress(spec.entity, self.rows + len(self.pending))
            if self.pending:
                self._flush()
        except FetchError as exc:
            raise self._failed(str(exc)) from exc
        except ExtractError:
            raise
        except StrataError as exc:
            raise self._failed(str(exc)) from exc
        after = before
        if incremental is not None and self.highest is not None:
            candidate = incremental.text(self.highest)
            if before is None or full or _newer(incremental, candidate, before):
                after = candidate
        if incremental is not None and after is not None and after != before:
            self.catalog.advance_watermark(
                source.name, spec.entity, after, self.run_id, kind=incremental.kind
            )
        log.info(
            "entity extracted",
            extra=fields(
                source=source.name, entity=spec.entity, rows=self.rows, parts=len(self.parts)
            ),
        )
        seconds = time.monotonic() - started
        return EntityResult(spec.entity, self.rows, tuple(self.parts), before, after, seconds)

    def _failed(self, problem: str) -> ExtractError:
        return ExtractError(
            self.source.name,
            self.spec.entity,
            f"{problem} (after {len(self.parts)} part(s); watermark unchanged)",
        )

    def _first_params(self, before: str | None, full: bool) -> Params:
        spec, incremental = self.spec, self.spec.incremental
        if incremental is None:
            return spec.params
        if before is not None and not full:
            since, lookback = before, spec.lookback
        elif incremental.initial is not None:
            since, lookback = incremental.initial, dt.timedelta(0)
        else:
            return spec.params  # the first run (or --full) without an initial: everything
        try:
            value = incremental.param_value(since, lookback)
        except ValueError as exc:
            raise ExtractError(
                self.source.name,
                spec.entity,
                f"the stored watermark {since!r} is not a {incremental.kind} ({exc}); "
                f"run with --full to start again",
            ) from exc
        return with_param(spec.params, incremental.param, value)

    def _pages(self, params: Params) -> Iterator[tuple[str, list[Any]]]:
        source, spec = self.source, self.spec
        origin = _origin(source.base_url)
        request: PageRequest | None = PageRequest(source.url(spec), spec.pagination.first(params))
        seen: set[PageRequest] = set()
        while request is not None:
            if _origin(request.url) != origin:
                raise BadResponseError(
                    f"the next page is on {_origin(request.url)}, not {origin}: not followed "
                    "(the credentials would go with it)"
                )
            if request in seen:
                raise BadResponseError(
                    f"pagination asked for {urlsplit(request.url).path} with the same params "
                    "twice; stopped rather than loop"
                )
            seen.add(request)
            fetched = self.fetcher.get(request.url, merge_params(source.params, request.params))
            records = _records(fetched.body, spec.records, fetched.shown)
            yield fetched.shown, records
            try:
                request = spec.pagination.following(
                    request, fetched.body, fetched.links, len(records)
                )
            except BadResponseError as exc:
                raise BadResponseError(f"GET {fetched.shown}: {exc}") from None

    def _record(self, item: Any, index: int, shown: str) -> dict[str, Any]:
        spec = self.spec
        where = f"GET {shown}: record {index}"
        if not isinstance(item, dict):
            raise BadResponseError(f"{where} is {describe_shape(item)}, not an object")
        for key in spec.primary_key:
            if is_missing(lookup(item, key)):
                raise BadResponseError(
                    f"{where} has no primary_key field {key!r} ({describe_shape(item)})"
                )
        if spec.incremental is not None:
            self._watch(spec.incremental, item, where)
        record = dict(item)
        if spec.tenant_field is not None:
            tenant = lookup(item, spec.tenant_field)
            if is_missing(tenant):
                raise BadResponseError(
                    f"{where} has no tenant_field {spec.tenant_field!r} ({describe_shape(item)})"
                )
            record[TENANT_FIELD] = None if tenant is None else str(tenant)
        elif self.source.tenant is not None:
            record[TENANT_FIELD] = self.source.tenant
        return record

    def _watch(self, incremental: Incremental, item: dict[str, Any], where: str) -> None:
        value = lookup(item, incremental.watermark_field)
        if is_missing(value):
            raise BadResponseError(
                f"{where} has no watermark field {incremental.watermark_field!r} "
                f"({describe_shape(item)})"
            )
        if value is None:
            return
        try:
            mark = incremental.parse(value)
        except ValueError as exc:
            raise BadResponseError(
                f"{where}: watermark field {incremental.watermark_field!r}: {exc}"
            ) from None
        if self.highest is None or mark > self.highest:  # type: ignore[operator]
            self.highest = mark

    def _flush(self) -> None:
        source, spec = self.source, self.spec
        prefix = run_prefix(
            source.name, source.scope, spec.entity, self.ingestion_date, self.run_id
        )
        path = part_path(prefix, len(self.parts), source.format)
        write_part(self.storage, path, self.pending)
        self.parts.append(path)
        self.rows += len(self.pending)
        self.pending = []


def _records(body: Any, path: str | None, shown: str) -> list[Any]:
    value = body if path is None else lookup(body, path)
    if is_missing(value):
        raise BadResponseError(f"GET {shown}: no {path!r} in the response ({describe_shape(body)})")
    if value is None:
        return []  # Pipedrive answers an empty page with "data": null
    if not isinstance(value, list):
        what = "the response" if path is None else repr(path)
        raise BadResponseError(
            f"GET {shown}: {what} is {describe_shape(value)}, not a list of records"
        )
    return value


def _newer(incremental: Incremental, candidate: str, current: str) -> bool:
    if incremental.kind == "id":
        return int(candidate) > int(current)
    return dt.datetime.fromisoformat(candidate) > dt.datetime.fromisoformat(current)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
