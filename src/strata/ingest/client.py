"""``IngestClient``: what a microservice embeds to land records in bronze.

    with IngestClient("./lake", namespace="wfm", source_service="wfm-service") as client:
        client.ingest("profiles", tenant="acme", record={"id": 1, "name": "Ana"})

``ingest`` validates, encodes and journals the record, then returns: a memory copy into a
mapped journal segment, never a call to the lake. A writer process follows the journal and
batches records per (table, tenant, day) into Parquet files (see ``writer``); running it
in its own process keeps its work off the caller's GIL.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from strata.core.errors import StrataError
from strata.core.identifiers import validate_name, validate_tenant
from strata.core.lifecycle import Closing
from strata.core.logging import fields, get_logger
from strata.core.timeutil import Clock, now_us
from strata.ingest.config import IngestConfig
from strata.ingest.errors import ClientClosedError, FlushTimeoutError
from strata.ingest.journal import (
    KIND_BATCH,
    KIND_QUARANTINE,
    KIND_RECORD,
    JournalDir,
    SegmentAppender,
    batch_payload,
    create_segment,
    quarantine_payload,
)
from strata.ingest.records import RecordEncoder
from strata.ingest.stats import IngestStats
from strata.ingest.supervisor import WriterSupervisor
from strata.lake.storage import LakeStorage, open_lake

log = get_logger(__name__)


# Records per journal frame for ingest_many: big enough to amortise framing, small enough
# that one frame never approaches a segment's size.
_BATCH_FRAME_RECORDS: Final = 2_000


def default_journal_root() -> Path:
    return Path(os.environ.get("STRATA_JOURNAL_DIR", ".strata/journal"))


class IngestClient(Closing):
    """Non-blocking, crash-safe landing of service records into the bronze lake.

    Thread-safe. One client per process and source service; each claims its own journal
    slot under ``journal_dir`` (default ``$STRATA_JOURNAL_DIR`` or ``./.strata/journal``).
    """

    def __init__(
        self,
        lake: str | os.PathLike[str] | LakeStorage = "./lake",
        *,
        namespace: str,
        source_service: str | None = None,
        journal_dir: str | os.PathLike[str] | None = None,
        config: IngestConfig | None = None,
        storage_options: Mapping[str, Any] | None = None,
        clock: Clock = now_us,
    ) -> None:
        self.namespace = validate_name(namespace, "namespace")
        self.source_service = validate_tenant(source_service or namespace)
        self.config = config or IngestConfig.from_env()
        self.storage = (
            lake if isinstance(lake, LakeStorage) else open_lake(os.fspath(lake), storage_options)
        )
        root = Path(journal_dir) if journal_dir is not None else default_journal_root()
        self._journal = JournalDir.claim(root / self.namespace / self.source_service)
        self._lock = threading.Lock()
        self._clock = clock
        self._appender = SegmentAppender(self._journal, self.config.segment_bytes)
        self._encoder = RecordEncoder(
            self._journal.shapes,
            on_shape_change=self._declare_shape,
            max_payload=self._max_payload(),
        )
        for table, shape in self._encoder.shapes.items():
            self._appender.declare_shape(table, shape)
        self._streams: dict[tuple[str, str], str] = {}
        self._accepted = 0
        self._rejected = 0
        self._quarantined = 0
        self._closed = False
        self._spare_wanted = threading.Event()
        self._spare_wanted.set()
        threading.Thread(
            target=self._prepare_spares, daemon=True, name="strata-journal-spare"
        ).start()
        self._writer = WriterSupervisor(
            journal=self._journal.path,
            namespace=self.namespace,
            source_service=self.source_service,
            session=uuid.uuid4().hex,
            live_from=self._appender.first_segment,
            config=self.config,
            storage_spec=self.storage.spec(),
        )
        log.info(
            "ingest client started",
            extra=fields(
                namespace=self.namespace, journal=str(self._journal.path), lake=self.storage.url
            ),
        )

    # -- the hot path -----------------------------------------------------------------------

    def ingest(self, table: str, tenant: str | int, record: Mapping[str, Any]) -> None:
        """Accept one record; returns once it is journaled. Raises ``InvalidRecordError``."""
        ingested_us = self._clock()
        try:
            tenant_id = (
                self._streams.get((table, tenant)) if type(tenant) is str else None
            ) or self._stream(table, tenant)
            payload, conflict = self._encoder.encode_one(table, tenant_id, record)
        except StrataError:
            self._count_rejection()
            raise
        with self._lock:
            if self._closed:
                raise ClientClosedError
            self._append(table, tenant_id, ingested_us, payload, conflict)

    def ingest_many(
        self, table: str, tenant: str | int, records: Iterable[Mapping[str, Any]]
    ) -> int:
        """Accept records all-or-nothing: if one is invalid, none is journaled."""
        ingested_us = self._clock()
        try:
            tenant_id = self._stream(table, tenant)
            encoded = self._encoder.encode_many(table, tenant_id, records)
        except StrataError:
            self._count_rejection()
            raise
        clean = [payload for payload, conflict in encoded if conflict is None]
        quarantined = len(clean) < len(encoded)
        with self._lock:
            if self._closed:
                raise ClientClosedError
            # Clean records travel as few frames as fit (cheap for both ends); conflicts
            # one by one, as their own stream.
            for chunk in _frames(clean, self._encoder.max_payload):
                self._append_batch(table, tenant_id, ingested_us, chunk)
            if quarantined:
                for payload, conflict in encoded:
                    if conflict is not None:
                        self._append(table, tenant_id, ingested_us, payload, conflict)
        return len(encoded)

    def _stream(self, table: str, tenant: str | int) -> str:
        """The validated tenant id of a (table, tenant) pair; cached for exact str inputs."""
        if self._closed:
            raise ClientClosedError
        if type(tenant) is str and type(table) is str:
            tenant_id = self._streams.get((table, tenant))
            if tenant_id is not None:
                return tenant_id
        validate_name(table, "table")
        tenant_id = validate_tenant(tenant)
        if type(tenant) is str:
            self._streams[(table, tenant)] = tenant_id
        return tenant_id

    def _count_rejection(self) -> None:
        with self._lock:
            self._rejected += 1

    def _max_payload(self) -> int:
        return min(self.config.batch_max_bytes, self._appender.max_payload())

    def _declare_shape(self, table: str, shape: Mapping[str, str]) -> None:
        with self._lock:
            if self._closed:
                raise ClientClosedError
            self._appender.declare_shape(table, shape)
            self._encoder.max_payload = self._max_payload()

    def _append_batch(
        self, table: str, tenant: str, ingested_us: int, payloads: list[bytes]
    ) -> None:
        appender = self._appender
        segment = appender.segment_no
        appender.append(KIND_BATCH, (table, tenant, False), ingested_us, batch_payload(payloads))
        self._accepted += len(payloads)
        if appender.segment_no != segment:
            self._spare_wanted.set()

    def _append(
        self, table: str, tenant: str, ingested_us: int, payload: bytes, conflict: str | None
    ) -> None:
        """Journal one encoded record; the caller holds ``self._lock``."""
        appender = self._appender
        segment = appender.segment_no
        if conflict is None:
            appender.append(KIND_RECORD, (table, tenant, False), ingested_us, payload)
        else:
            appender.append(
                KIND_QUARANTINE,
                (table, tenant, True),
                ingested_us,
                quarantine_payload(conflict, payload),
            )
            self._quarantined += 1
        self._accepted += 1
        if appender.segment_no != segment:
            self._spare_wanted.set()  # the spare was used: prepare the next one

    def _prepare_spares(self) -> None:
        """Keep one prefaulted segment ready so a roll-over is a swap, not file creation."""
        while self._spare_wanted.wait():
            self._spare_wanted.clear()
            with self._lock:
                if self._closed:
                    return
                if not self._appender.needs_spare():
                    continue
                number = self._appender.take_segment_number()
            tmp = self._journal.spare_path(number)
            fd, mm = create_segment(tmp, number, self.config.segment_bytes, prefault=True)
            with self._lock:
                if not self._closed and self._appender.install_spare(number, fd, mm, tmp):
                    continue
            mm.close()
            os.close(fd)
            tmp.unlink(missing_ok=True)

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until every record accepted before this call is committed to the lake."""
        with self._lock:
            target = self._appender.head
        if not self._writer.wait_for(target, timeout):
            raise FlushTimeoutError(
                timeout or 0.0, self.stats().journal_backlog, self._writer.status.last_error
            )

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, stop the writer process and release the journal.

        If the lake stays unreachable for ``timeout`` seconds, the records stay in the
        journal and the next client on the same journal directory lands them.
        """
        if self._closed:
            return
        abandon = False
        try:
            self.flush(timeout)
        except FlushTimeoutError as exc:
            log.warning(
                "closing with records still in the journal", extra=fields(backlog=exc.backlog)
            )
            abandon = True
        finally:
            with self._lock:
                self._closed = True
            self._spare_wanted.set()
            self._writer.stop(abandon=abandon)
            with self._lock:
                self._appender.close()
            self._journal.close()

    def stats(self) -> IngestStats:
        status = self._writer.status
        with self._lock:
            active = self._appender.segment_no
            journal_bytes = sum(
                self._appender.offset if n == active else _size(self._journal.segment_path(n))
                for n in self._journal.segment_numbers()
                if n <= active
            )
            accepted, rejected, quarantined = self._accepted, self._rejected, self._quarantined
        return IngestStats(
            accepted=accepted,
            rejected=rejected,
            quarantined=quarantined,
            replayed=status.replayed,
            written=status.written,
            files_written=status.files_written,
            retried=status.retried,
            journal_backlog=max(0, accepted + status.replayed - status.written),
            journal_bytes=journal_bytes,
            buffered_bytes=status.buffered_bytes,
            writer_restarts=self._writer.restarts,
            last_error=status.last_error,
        )


def _frames(payloads: list[bytes], limit: int) -> Iterator[list[bytes]]:
    """Split payloads into frames of at most _BATCH_FRAME_RECORDS records and ``limit`` bytes."""
    for start in range(0, len(payloads), _BATCH_FRAME_RECORDS):
        piece = payloads[start : start + _BATCH_FRAME_RECORDS]
        if sum(map(len, piece)) <= limit:
            yield piece  # the usual case, decided at C speed
            continue
        chunk: list[bytes] = []
        size = 0
        for payload in piece:
            if chunk and size + len(payload) > limit:
                yield chunk
                chunk, size = [], 0
            chunk.append(payload)
            size += len(payload)
        if chunk:
            yield chunk


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
