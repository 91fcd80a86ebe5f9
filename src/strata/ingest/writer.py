"""The writer: follows the journal, seals per-partition batches and commits them to the lake.

It runs in its own process (see ``writerproc``), so its Python work never takes the GIL
from the producer's ``ingest`` calls. It owns all batching state: the producer only
appends to the journal.

Per batch: encode, record the intent (range + file name), write the file atomically with
retries and backoff, record the commit. Replay after a crash is the same loop started at
the last checkpoint: ranges already committed are skipped and uncommitted intents are
rebuilt from exactly the same records under exactly the same name.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass

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
from strata.ingest.config import IngestConfig
from strata.ingest.durability import sync_range
from strata.ingest.journal import JournalDir, JournalFrame, SegmentScanner, position, segment_of
from strata.ingest.shape import Kind
from strata.ingest.statelog import BatchIntent, BatchKey, RecoveredState, StateLog
from strata.lake.paths import BronzePartition
from strata.lake.storage import LakeStorage

log = get_logger(__name__)

SCAN_CHUNK = 50_000  # frames routed per step, so sealing and flushes interleave with a long replay


class Abandoned(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Told to stop while the lake refuses writes; what is left stays in the journal."""


@dataclass(slots=True)
class WriterStatus:
    """What the producer sees of the writer (sent over the status pipe)."""

    low_water: int = 0  # every position below it is committed to the lake
    written: int = 0
    files_written: int = 0
    retried: int = 0
    replayed: int = 0
    buffered_bytes: int = 0
    last_error: str | None = None


class Writer:
    def __init__(
        self,
        journal: JournalDir,
        storage: LakeStorage,
        config: IngestConfig,
        *,
        namespace: str,
        source_service: str,
        session: str,
        live_from: int,
    ) -> None:
        self.journal = journal
        self.storage = storage
        self.config = config
        self.namespace = namespace
        self.source_service = source_service
        self.session = session
        self.live_from = live_from  # segments from here on belong to the running producer
        self.stop = threading.Event()
        self.abandon = False
        self.flush_target = -1
        self.status = WriterStatus()
        state_path = journal.path / "state.log"
        self._recovered: RecoveredState = StateLog.recover(state_path)
        self.state_log = StateLog(state_path, fsync=config.fsync_interval_s is not None)
        self._shapes: dict[str, dict[str, str]] = journal.shapes.read()
        self._pending: dict[BatchKey, list[BatchIntent]] = {}
        for intent in self._recovered.pending:
            self._pending.setdefault(intent.key, []).append(intent)
        self._rebuilds: dict[str, PartitionBuffer] = {}
        self._buffers: dict[BatchKey, PartitionBuffer] = {}
        self._full: list[PartitionBuffer] = []
        self._replaying = True
        self._max_records = config.batch_max_records
        self._max_bytes = config.batch_max_bytes  # reached a size limit while scanning
        self._committed: list[BatchIntent] = []
        segments = journal.segment_numbers()
        start = max(self._recovered.checkpoint, position(segments[0], 0) if segments else 0)
        self._scan_from = start
        self._pending_segment = next((n for n in segments if n >= segment_of(start)), live_from)
        self._scanner = self._open_scanner(self._pending_segment)
        self._last_sync = time.monotonic()
        self._kept_from = -1  # segments below this one have been deleted

    # -- following the journal --------------------------------------------------------------

    def _open_scanner(self, number: int) -> SegmentScanner | None:
        path = self.journal.segment_path(number)
        if not path.exists():
            return None  # the producer has not created it yet
        return SegmentScanner(path, self._shapes, live=number >= self.live_from)

    def _next_segment(self, scanner: SegmentScanner) -> int:
        if scanner.next_segment is not None:
            return scanner.next_segment
        later = [n for n in self.journal.segment_numbers() if n > scanner.segment_no]
        return later[0] if later else max(scanner.segment_no + 1, self.live_from)

    def scan(self) -> int:
        """Route the next chunk of journal frames into buffers; returns frames read."""
        if self._scanner is None:
            self._scanner = self._open_scanner(self._pending_segment)
            if self._scanner is None:
                return 0
        scanner = self._scanner
        # Replay bookkeeping only while there is some: old segments, committed ranges to
        # skip or intents to rebuild. A live writer skips it per frame.
        self._replaying = bool(
            scanner.segment_no < self.live_from or self._recovered.committed or self._pending
        )
        routed = 0
        added = 0
        route, scan_from = self._route, self._scan_from
        room = self.config.memory_limit_bytes - self.status.buffered_bytes
        for frame in scanner.read(SCAN_CHUNK):
            routed += frame[4]  # records
            if frame[0] >= scan_from:  # pos
                added += route(frame)
                if added >= room:
                    break  # the lake is behind: stop reading, the journal holds the rest
        self.status.buffered_bytes += added
        if scanner.exhausted:
            self._pending_segment = self._next_segment(scanner)
            scanner.close()
            self._scanner = self._open_scanner(self._pending_segment)
            routed += 1  # moving on is progress too
        return routed

    def _route(self, frame: JournalFrame) -> int:
        """Put one journal frame where it belongs; returns the bytes it adds to memory."""
        pos, (table, tenant, quarantined), ingested_us, payload, records, reason = frame
        key: BatchKey = (table, tenant, ingested_us // US_PER_DAY, quarantined)
        if self._replaying and self._route_replayed(key, frame):
            return 0
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = PartitionBuffer(key, pos, time.monotonic())
        buf.add(pos, ingested_us, payload, records, reason)
        if buf.count >= self._max_records or len(buf.lines) >= self._max_bytes:
            self._full.append(self._buffers.pop(key))  # sealed now, not after the whole chunk
        return len(payload) + 8 * records

    def _route_replayed(self, key: BatchKey, frame: JournalFrame) -> bool:
        """Replay bookkeeping; True when the frame is already committed or is rebuilt."""
        if self._recovered.committed and self._recovered.is_committed(key, frame.pos):
            return True
        if segment_of(frame.pos) < self.live_from:
            self.status.replayed += frame.records
        for intent in self._pending.get(key, ()):
            if intent.first <= frame.pos <= intent.last:
                rebuild = self._rebuilds.get(intent.path)
                if rebuild is None:
                    rebuild = self._rebuilds[intent.path] = PartitionBuffer(
                        key, frame.pos, time.monotonic(), intent.path
                    )
                rebuild.add(
                    frame.pos, frame.ingested_us, frame.payload, frame.records, frame.reason
                )
                return True
        return False

    @property
    def scan_pos(self) -> int:
        if self._scanner is not None:
            return self._scanner.pos
        return position(self._pending_segment, 0)

    def _finish_rebuilds(self) -> None:
        """Commit rebuilt batches whose whole range has been scanned."""
        scanned = self.scan_pos
        for key, intents in list(self._pending.items()):
            for intent in list(intents):
                if intent.last >= scanned:
                    continue
                buf = self._rebuilds.pop(intent.path, None)
                intents.remove(intent)
                if buf is None:
                    continue
                if buf.count != intent.count:
                    log.warning(
                        "rebuilt batch differs from its intent",
                        extra=fields(path=intent.path, expected=intent.count, found=buf.count),
                    )
                self._commit(buf)
            if not intents:
                del self._pending[key]

    # -- one step of the loop ---------------------------------------------------------------

    def step(self) -> bool:
        """Scan, seal and commit what is due; returns whether anything happened."""
        routed = self.scan()
        if self._pending:
            self._finish_rebuilds()
        sealed = self._seal()
        for buf in sealed:
            self._commit(buf)
        self._housekeeping()
        return routed > 0 or bool(sealed)

    def _seal(self) -> list[PartitionBuffer]:
        cfg = self.config
        now = time.monotonic()
        full, self._full = self._full, []
        force = self.stop.is_set() or 0 <= self.status.low_water <= self.flush_target
        due = [
            b
            for b in self._buffers.values()
            if force
            or now - b.opened >= cfg.batch_max_age_s
            or b.count >= cfg.batch_max_records
            or len(b.lines) >= cfg.batch_max_bytes
        ]
        if not due and self.status.buffered_bytes >= cfg.memory_limit_bytes:
            # Memory pressure: write the largest batches early rather than grow.
            target = cfg.memory_limit_bytes // 2
            freed = 0
            for b in sorted(self._buffers.values(), key=lambda b: b.nbytes, reverse=True):
                if self.status.buffered_bytes - freed <= target:
                    break
                due.append(b)
                freed += b.nbytes
        for b in due:
            del self._buffers[b.key]
        return full + due

    def _encode(self, buf: PartitionBuffer) -> tuple[EncodedBatch, bool]:
        table, _, _, quarantined = buf.key
        if quarantined:
            return to_parquet(
                quarantine_table(buf, self.source_service), self.config.compression
            ), True
        shape: dict[str, Kind] = dict(self._shapes.get(table, {}))  # type: ignore[arg-type]
        try:
            return to_parquet(
                records_table(buf, shape, self.source_service), self.config.compression
            ), False
        except BatchEncodingError as exc:
            # Should not happen (records were classified on the way in); if it does, keep them.
            log.error(
                "batch did not match its table's shape; quarantining it",
                extra=fields(table=table, error=str(exc)),
            )
            reasons = [f"batch could not be encoded: {exc}"] * buf.count
            return to_parquet(
                quarantine_table(buf, self.source_service, reasons), self.config.compression
            ), True

    def _commit(self, buf: PartitionBuffer) -> None:
        table, tenant, day, _ = buf.key
        encoded, quarantined = self._encode(buf)
        if buf.path is not None:
            path = buf.path  # an intent from before a crash: same records, same name
        else:
            partition = BronzePartition(
                self.namespace, table, tenant, date_of_day(day), quarantined
            )
            file_id = batch_file_id(
                self.journal.journal_id, self.session, buf.key, buf.first, buf.last
            )
            path = partition.file(file_id).path
            self._sync_journal(segment_of(buf.last))
            self.state_log.intent(BatchIntent(buf.key, buf.first, buf.last, buf.count, path))
        self._upload(path, encoded)
        self.state_log.commit(path)
        self._committed.append(BatchIntent(buf.key, buf.first, buf.last, buf.count, path))
        if buf.path is None:
            self.status.buffered_bytes -= buf.nbytes
        self.status.written += buf.count
        self.status.files_written += 1
        log.debug("batch committed", extra=fields(path=path, rows=buf.count))

    def _upload(self, path: str, encoded: EncodedBatch) -> None:
        cfg = self.config
        attempt = 0
        while True:
            try:
                self.storage.write_atomic(path, encoded.parquet)
                if attempt:
                    log.info("lake write recovered", extra=fields(path=path, attempts=attempt + 1))
                    self.status.last_error = None
                return
            except (
                Exception
            ) as exc:  # any backend failure is retried; records are safe in the journal
                self.status.retried += 1
                self.status.last_error = str(exc)
                backoff = min(cfg.retry_max_s, cfg.retry_initial_s * 2**attempt)
                delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
                attempt += 1
                log.warning(
                    "lake write failed; retrying",
                    extra=fields(
                        path=path, attempt=attempt, delay_s=round(delay, 3), error=str(exc)
                    ),
                )
                self.on_retry()
                self.stop.wait(delay)
                if self.abandon:
                    raise Abandoned from exc

    def on_retry(self) -> None:
        """Hook for the process loop to publish status while a write is being retried."""

    # -- durability and clean-up ------------------------------------------------------------

    def _sync_journal(self, segment_no: int) -> None:
        """Make the journal durable up to what is about to be committed (power-loss safety)."""
        if self.config.fsync_interval_s is None:
            return
        scanner = self._scanner
        if scanner is None or scanner.segment_no != segment_no:
            return  # older segments were synced when they were left behind
        sync_range(scanner.fd, scanner.offset)
        self._last_sync = time.monotonic()

    def _housekeeping(self) -> None:
        interval = self.config.fsync_interval_s
        if (
            interval is not None
            and time.monotonic() - self._last_sync >= interval
            and self._scanner is not None
        ):
            self._sync_journal(self._scanner.segment_no)
        starts = [b.first for b in self._buffers.values()]
        starts += [b.first for b in self._full]
        starts += [b.first for b in self._rebuilds.values()]
        starts += [i.first for intents in self._pending.values() for i in intents]
        low = min([*starts, self.scan_pos])
        keep_from = min(segment_of(low), segment_of(self.scan_pos))
        if keep_from <= self._kept_from:
            self.status.low_water = low
            return  # no segment became deletable: spare the directory listing
        self._kept_from = keep_from
        old = [n for n in self.journal.segment_numbers() if n < keep_from]
        if old:
            self._committed = [c for c in self._committed if c.last >= low]
            pending = [i for intents in self._pending.values() for i in intents]
            self.state_log.rewrite(low, pending, self._committed)
            self._recovered.committed = {
                k: kept
                for k, ranges in self._recovered.committed.items()
                if (kept := [r for r in ranges if r[1] >= low])
            }
            for number in old:
                self.journal.delete_segment(number)
        self.status.low_water = low

    def idle(self) -> bool:
        return not self._buffers and not self._pending and not self._full

    def close(self) -> None:
        if self._scanner is not None:
            self._scanner.close()
        self.state_log.close()
