"""The background writer: seals buffers into batches and commits them to the lake.

One thread per client, so batches of a stream are committed in order and the state log
has a single author. Its heavy work (JSON parsing, Parquet encoding, compression) runs in
Arrow's C++ with the GIL released, which keeps callers' ``ingest`` latency flat.

Per batch: encode, record the intent (range + file name), write the file atomically with
retries and backoff, record the commit. Replay after a crash and catching up after a
memory spill are the same procedure: scan the journal from a position and route frames
into buffers, skipping ranges already committed and rebuilding uncommitted intents.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable

from strata.core.logging import fields, get_logger
from strata.core.timeutil import US_PER_DAY, date_of_day
from strata.ingest.batch import (
    BatchEncodingError,
    EncodedBatch,
    PartitionBuffer,
    batch_file_id,
    quarantine_table,
    records_table,
    to_parquet,
)
from strata.ingest.durability import sync_range
from strata.ingest.journal import JournalFrame, SegmentScanner, create_segment, position, segment_of
from strata.ingest.pipeline import Pipeline
from strata.ingest.statelog import BatchIntent, BatchKey, RecoveredState, StateLog
from strata.lake.paths import BronzePartition
from strata.lake.storage import LakeStorage

log = get_logger(__name__)

SCAN_CHUNK = 20_000  # frames routed per step, so sealing and flush checks interleave with a long replay


class _Abandoned(Exception):
    """close() gave up waiting for the lake; what is left stays in the journal."""


class Writer:
    def __init__(
        self,
        pipeline: Pipeline,
        storage: LakeStorage,
        state_log: StateLog,
        recovered: RecoveredState,
        *,
        namespace: str,
        source_service: str,
        session: str,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.p = pipeline
        self.storage = storage
        self.state_log = state_log
        self.namespace = namespace
        self.source_service = source_service
        self.session = session
        self.config = pipeline.config
        self.stop = threading.Event()
        self.abandon = False
        self._recovered = recovered
        self._pending: dict[BatchKey, list[BatchIntent]] = {}
        for intent in recovered.pending:
            self._pending.setdefault(intent.key, []).append(intent)
        self._rebuilds: dict[str, PartitionBuffer] = {}
        self._in_flight: list[PartitionBuffer] = []
        self._committed: list[BatchIntent] = []
        self._scanner: SegmentScanner | None = None
        self._scan_from = -1
        self._first_live_segment = pipeline.appender.segment_no
        self._last_fsync = time.monotonic()
        self._tick = min(0.25, self.config.batch_max_age_s / 4)
        old = [n for n in pipeline.journal.segment_numbers() if n < self._first_live_segment]
        if old:
            # Replay: everything in older segments is journal-only until scanned.
            pipeline.spill_from = max(recovered.checkpoint, position(old[0], 0))
        self.thread = threading.Thread(target=self._run, name="strata-ingest-writer", daemon=True)

    # -- loop -----------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                did_work = self._step()
                if self.stop.is_set() and (self.abandon or self._idle()):
                    break
                if not did_work:
                    self.p.wake.wait(self._tick)
                    self.p.wake.clear()
        except _Abandoned:
            log.warning("writer stopped with records left in the journal", extra=fields(journal=str(self.p.journal.path)))
        except BaseException as exc:  # surfaced to flush()/close() callers, never swallowed
            self.p.fatal = exc
            log.exception("ingest writer failed", extra=fields(journal=str(self.p.journal.path)))
        finally:
            if self._scanner is not None:
                self._scanner.close()
            with self.p.progress:
                self.p.progress.notify_all()

    def _idle(self) -> bool:
        with self.p.lock:
            return not self.p.buffers and self.p.spill_from is None and not self._pending

    def _step(self) -> bool:
        did_work = False
        if self.p.spill_from is not None:
            did_work |= self._scan()
        if self._pending:
            self._finish_rebuilds(self._scanner.pos if self._scanner is not None else 1 << 63)
        for buf in self._seal():
            self._commit(buf)
            did_work = True
        self._housekeeping()
        return did_work

    # -- catching up from the journal -------------------------------------------------------

    def _scan(self) -> bool:
        p = self.p
        spill_from = p.spill_from
        assert spill_from is not None  # noqa: S101 - only called while spilling
        if self._scanner is None:
            numbers = [n for n in p.journal.segment_numbers() if n >= segment_of(spill_from)]
            self._scanner = SegmentScanner(p.journal.segment_path(numbers[0]))
            self._scan_from = spill_from
        scanner = self._scanner
        with p.lock:
            active, head_offset = p.appender.segment_no, p.appender.offset
        limit = head_offset if scanner.segment_no == active else None
        added = 0
        routed = 0
        for frame in scanner.read(limit, SCAN_CHUNK):
            routed += 1
            if frame.pos >= self._scan_from:
                added += self._route(frame)
            if p.buffered_bytes + added >= self.config.memory_limit_bytes:
                break
        with p.lock:
            p.buffered_bytes += added
            if routed == 0:
                if scanner.segment_no == p.appender.segment_no and scanner.offset == p.appender.offset:
                    p.spill_from = None  # caught up: callers buffer in memory again
                    scanner.close()
                    self._scanner = None
                    log.info("journal caught up", extra=fields(journal=str(p.journal.path)))
                    return True
                if scanner.exhausted and scanner.segment_no < p.appender.segment_no:
                    later = [n for n in p.journal.segment_numbers() if n > scanner.segment_no]
                    scanner.close()
                    self._scanner = SegmentScanner(p.journal.segment_path(later[0]))
                    return True
        return routed > 0

    def _route(self, frame: JournalFrame) -> int:
        """Put one journal frame where it belongs; returns the bytes it adds to memory."""
        table, tenant, quarantined = frame.stream
        key: BatchKey = (table, tenant, frame.ingested_us // US_PER_DAY, quarantined)
        if self._recovered.committed and self._recovered.is_committed(key, frame.pos):
            return 0
        if segment_of(frame.pos) < self._first_live_segment:
            self.p.counters.replayed += 1
        for intent in self._pending.get(key, ()):
            if intent.first <= frame.pos <= intent.last:
                rebuild = self._rebuilds.get(intent.path)
                if rebuild is None:
                    rebuild = self._rebuilds[intent.path] = PartitionBuffer(key, frame.pos, time.monotonic(), intent.path)
                rebuild.add(frame.pos, frame.ingested_us, frame.payload, frame.reason)
                return 0
        buf = self.p.buffers.get(key)
        if buf is None:
            buf = self.p.buffers[key] = PartitionBuffer(key, frame.pos, time.monotonic())
        buf.add(frame.pos, frame.ingested_us, frame.payload, frame.reason)
        return len(frame.payload) + 8

    def _finish_rebuilds(self, scanned_upto: int) -> None:
        """Seal rebuilt batches whose whole range has been scanned (or the journal has ended)."""
        for key, intents in list(self._pending.items()):
            for intent in list(intents):
                if intent.last >= scanned_upto and self.p.spill_from is not None:
                    continue
                buf = self._rebuilds.pop(intent.path, None)
                intents.remove(intent)
                if buf is None:
                    continue
                if buf.count != intent.count:
                    log.warning("rebuilt batch differs from its intent", extra=fields(path=intent.path, expected=intent.count, found=buf.count))
                self._commit(buf)
            if not intents:
                del self._pending[key]

    # -- sealing and committing -----------------------------------------------------------

    def _seal(self) -> list[PartitionBuffer]:
        p, cfg = self.p, self.config
        now = time.monotonic()
        with p.lock:
            force = self.stop.is_set() or (p.flush_target >= 0 and p.low_water < p.flush_target)
            due = [
                b
                for b in p.buffers.values()
                if force
                or now - b.opened >= cfg.batch_max_age_s
                or b.count >= cfg.batch_max_records
                or len(b.lines) >= cfg.batch_max_bytes
            ]
            if not due and p.buffered_bytes >= cfg.memory_limit_bytes:
                # Memory pressure: write the largest batches early rather than grow.
                target = cfg.memory_limit_bytes // 2
                freed = 0
                for b in sorted(p.buffers.values(), key=lambda b: b.nbytes, reverse=True):
                    if p.buffered_bytes - freed <= target:
                        break
                    due.append(b)
                    freed += b.nbytes
            for b in due:
                del p.buffers[b.key]
            self._in_flight.extend(due)
        return due

    def _encode(self, buf: PartitionBuffer) -> tuple[EncodedBatch, bool]:
        table, _, _, quarantined = buf.key
        if quarantined:
            return to_parquet(quarantine_table(buf, self.source_service), self.config.compression), True
        with self.p.lock:
            shape = dict(self.p.shapes.get(table, {}))
        try:
            return to_parquet(records_table(buf, shape, self.source_service), self.config.compression), False
        except BatchEncodingError as exc:
            # Should not happen (records were classified on the way in); if it does, keep them.
            log.error("batch did not match its table's shape; quarantining it", extra=fields(table=table, error=str(exc)))
            reasons = [f"batch could not be encoded: {exc}"] * buf.count
            return to_parquet(quarantine_table(buf, self.source_service, reasons), self.config.compression), True

    def _commit(self, buf: PartitionBuffer) -> None:
        table, tenant, day, _ = buf.key
        encoded, quarantined = self._encode(buf)
        if buf.path is not None:
            path = buf.path  # an intent from before a crash: same records, same name
        else:
            partition = BronzePartition(self.namespace, table, tenant, date_of_day(day), quarantined)
            file_id = batch_file_id(self.p.journal.journal_id, self.session, buf.key, buf.first, buf.last)
            path = partition.file(file_id).path
            self._fsync_journal()
            self.state_log.intent(BatchIntent(buf.key, buf.first, buf.last, buf.count, path))
        self._upload(path, encoded)
        self.state_log.commit(path)
        self._committed.append(BatchIntent(buf.key, buf.first, buf.last, buf.count, path))
        with self.p.lock:
            if buf in self._in_flight:
                self._in_flight.remove(buf)
                self.p.buffered_bytes -= buf.nbytes
            self.p.counters.written += buf.count
            self.p.counters.files_written += 1
        log.debug("batch committed", extra=fields(path=path, rows=buf.count))

    def _upload(self, path: str, encoded: EncodedBatch) -> None:
        cfg = self.config
        attempt = 0
        while True:
            try:
                self.storage.write_atomic(path, encoded.parquet)
                if attempt:
                    log.info("lake write recovered", extra=fields(path=path, attempts=attempt + 1))
                    self.p.last_error = None
                return
            except Exception as exc:  # any backend failure is retried; records are safe in the journal
                self.p.counters.retried += 1
                self.p.last_error = str(exc)
                delay = min(cfg.retry_max_s, cfg.retry_initial_s * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
                attempt += 1
                log.warning("lake write failed; retrying", extra=fields(path=path, attempt=attempt, delay_s=round(delay, 3), error=str(exc)))
                self.stop.wait(delay)
                if self.abandon:
                    raise _Abandoned from exc

    # -- durability and clean-up ------------------------------------------------------------

    def _fsync_journal(self) -> None:
        if self.config.fsync_interval_s is None:
            return
        with self.p.lock:
            fd = os.dup(self.p.appender.fd)
            written = self.p.appender.offset
        try:
            sync_range(fd, written)
        finally:
            os.close(fd)
        self._last_fsync = time.monotonic()

    def _prepare_spare_segment(self) -> None:
        p = self.p
        with p.lock:
            if not p.appender.needs_spare():
                return
            number = p.appender.take_spare_number()
        fd, mm = create_segment(p.journal, number, self.config.segment_bytes, prefault=True)
        with p.lock:
            if number > p.appender.segment_no:
                p.appender.install_spare(number, fd, mm)
                return
        # A caller rolled past it meanwhile; using it now would move positions backwards.
        mm.close()
        os.close(fd)
        p.journal.delete_segment(number)

    def _housekeeping(self) -> None:
        p = self.p
        self._prepare_spare_segment()
        interval = self.config.fsync_interval_s
        if interval is not None and time.monotonic() - self._last_fsync >= interval:
            self._fsync_journal()
        with p.lock:
            starts = [b.first for b in p.buffers.values()]
            starts += [b.first for b in self._in_flight]
            starts += [b.first for b in self._rebuilds.values()]
            starts += [i.first for intents in self._pending.values() for i in intents]
            if p.spill_from is not None:
                starts.append(self._scanner.pos if self._scanner is not None else p.spill_from)
            low = min(starts, default=p.appender.head)
            low = min(low, p.appender.head)
            active = p.appender.segment_no
        old = [n for n in p.journal.segment_numbers() if n < min(segment_of(low), active)]
        if old:
            with p.lock:
                p.save_shapes()
            self._committed = [c for c in self._committed if c.last >= low]
            pending = [i for intents in self._pending.values() for i in intents]
            self.state_log.rewrite(low, pending, self._committed)
            self._recovered.committed = {
                k: kept for k, ranges in self._recovered.committed.items() if (kept := [r for r in ranges if r[1] >= low])
            }
            for number in old:
                p.journal.delete_segment(number)
        with p.progress:
            p.low_water = low
            p.progress.notify_all()
