"""State shared by the callers' threads and the background writer, and the accept path.

Callers append a record to the journal and, while memory allows, to its partition buffer;
the writer seals buffers into batches. When buffered bytes pass the memory limit, callers
stop buffering (``spill_from`` is set) and the writer reads those records back from the
journal instead, so a slow or absent lake grows the journal on disk, never memory.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from strata.core.timeutil import US_PER_DAY
from strata.ingest.batch import PartitionBuffer
from strata.ingest.config import IngestConfig
from strata.ingest.journal import KIND_QUARANTINE, KIND_RECORD, JournalDir, SegmentAppender, quarantine_payload
from strata.ingest.shape import Kind
from strata.ingest.statelog import BatchKey


@dataclass(slots=True)
class Counters:
    accepted: int = 0
    rejected: int = 0
    quarantined: int = 0
    replayed: int = 0
    written: int = 0
    files_written: int = 0
    retried: int = 0


class Pipeline:
    def __init__(self, journal: JournalDir, config: IngestConfig) -> None:
        self.journal = journal
        self.config = config
        self.lock = threading.Lock()
        self.wake = threading.Event()  # tells the writer there is work before its next tick
        self.progress = threading.Condition()  # flushers wait here for the low-water mark
        self.appender = SegmentAppender(journal, config.segment_bytes)
        self.buffers: dict[BatchKey, PartitionBuffer] = {}
        self.buffered_bytes = 0
        self.spill_from: int | None = None
        self.shapes: dict[str, dict[str, Kind]] = journal.read_shapes()  # type: ignore[assignment]
        self.counters = Counters()
        self.flush_target = -1
        self.low_water = self.appender.head
        self.last_error: str | None = None
        self.fatal: BaseException | None = None
        self._max_batch_bytes = config.batch_max_bytes
        self._max_batch_records = config.batch_max_records
        self._memory_limit = config.memory_limit_bytes

    def accept(self, table: str, tenant: str, ingested_us: int, payload: bytes) -> None:
        """Journal one encoded record and buffer it; the caller holds ``self.lock``."""
        pos = self.appender.append(KIND_RECORD, (table, tenant, False), ingested_us, payload)
        self.counters.accepted += 1
        if self.spill_from is not None:
            return
        size = len(payload) + 8
        if self.buffered_bytes + size > self._memory_limit:
            self.spill_from = pos  # from here on the writer reads records from the journal
            self.wake.set()
            return
        key = (table, tenant, ingested_us // US_PER_DAY, False)
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = PartitionBuffer(key, pos, time.monotonic())
        buf.lines += payload
        buf.ingested_us.append(ingested_us)
        buf.last = pos
        buf.count += 1
        self.buffered_bytes += size
        if buf.count >= self._max_batch_records or len(buf.lines) >= self._max_batch_bytes:
            self.wake.set()

    def accept_quarantined(self, table: str, tenant: str, ingested_us: int, reason: str, payload: bytes) -> None:
        """Journal and buffer a record that conflicts with its table's shape."""
        pos = self.appender.append(
            KIND_QUARANTINE, (table, tenant, True), ingested_us, quarantine_payload(reason, payload)
        )
        self.counters.accepted += 1
        self.counters.quarantined += 1
        if self.spill_from is not None:
            return
        key = (table, tenant, ingested_us // US_PER_DAY, True)
        buf = self.buffers.get(key)
        if buf is None:
            buf = self.buffers[key] = PartitionBuffer(key, pos, time.monotonic())
        buf.add(pos, ingested_us, payload, reason)
        self.buffered_bytes += len(payload) + 8

    def save_shapes(self) -> None:
        self.journal.write_json("shapes.json", self.shapes)
