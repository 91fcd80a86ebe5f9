"""The NATS JetStream sink: domain events from a durable pull consumer into bronze.

Per batch (closed by ``batch_max_records`` or ``batch_max_age_s``, or on stop):

1. parse every message (``events.parse_event``); invalid ones become dead letters;
   duplicates are dropped by ``event_id`` within the batch and against the state index;
2. encode one Parquet file per (table, tenant, day) plus dead-letter files, named by
   ``uuid5(stream, durable, key, first_seq, last_seq)`` of the batch's stream sequences;
3. **one SQLite transaction** in ``state_dir/sink.sqlite``: add the landed event ids (and
   ``seq:<stream>:<seq>`` for dead letters) to the index, and store the encoded files as a
   pending write-ahead entry;
4. write the files atomically to the lake; then delete the pending entry;
5. ack every message of the batch (valid, duplicate and dead), then flush.

Crash windows (SIGKILL anywhere):

- before step 3 commits: nothing recorded, nothing acked -> JetStream redelivers after
  ``ack_wait`` and the batch is processed afresh. No file was written (files are only
  written after step 3).
- after step 3, before step 4 finished: on restart, before consuming, the pending entry is
  replayed: the same bytes are written to the same paths (atomic overwrite, so a file that
  was already written is replaced by an identical one). Redelivered messages are found in
  the index and only acked.
- after step 4, before/during step 5: redeliveries are in the index -> acked, not landed.

So every valid event lands exactly once as long as the state dir survives. The index is
pruned of entries older than ``dedupe_window_s`` (default 7 days); a redelivery older than
that would land again. A batch older than the consumer's ``ack_wait`` may see its own
messages redelivered while still open; the within-batch dedupe drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import nats
import nats.errors
import nats.js.errors
import pyarrow as pa
import pyarrow.parquet as pq
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from strata.core.errors import ConfigError, Transient
from strata.core.identifiers import validate_name
from strata.core.logging import get_logger
from strata.ingest.events import Event, InvalidEventError, parse_event
from strata.lake.paths import BronzePartition
from strata.lake.storage import LakeStorage

log = get_logger(__name__)

DEADLETTER_DIR: Final = "_deadletter"
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS landed (id TEXT PRIMARY KEY, landed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS pending (path TEXT PRIMARY KEY, data BLOB NOT NULL);
"""

EVENT_SCHEMA: Final = pa.schema(
    [
        ("event_id", pa.string()),
        ("type", pa.string()),
        ("tenant_id", pa.string()),
        ("occurred_at", pa.timestamp("us", tz="UTC")),
        ("payload", pa.string()),
        ("subject", pa.string()),
        ("stream_seq", pa.int64()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("source_service", pa.string()),
    ]
)
DEADLETTER_SCHEMA: Final = pa.schema(
    [
        ("subject", pa.string()),
        ("stream_seq", pa.int64()),
        ("raw", pa.binary()),
        ("reason", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("source_service", pa.string()),
    ]
)


class NatsUnavailableError(Transient):
    def __init__(self, server: str, cause: BaseException) -> None:
        detail = str(cause).strip() or type(cause).__name__
        super().__init__(f"NATS is not reachable at {server}: {detail}")


@dataclass(slots=True)
class SinkConfig:
    subject: str
    durable: str
    server: str = "nats://127.0.0.1:4222"
    stream: str | None = None  # the stream to create (if missing) with the subject
    create_stream: bool = False
    namespace: str = "events"
    source_service: str | None = None  # default: the event type's first segment
    batch_max_records: int = 500
    batch_max_age_s: float = 5.0
    ack_wait_s: float = 30.0
    idle_exit_s: float | None = None  # stop after this long without a message
    dedupe_window_s: float = 7 * 86400
    connect_timeout_s: float = 2.0

    def __post_init__(self) -> None:
        validate_name(self.namespace, "namespace")
        if self.batch_max_records < 1 or self.batch_max_age_s <= 0:
            raise ConfigError("batch limits must be positive")


@dataclass(slots=True)
class SinkStats:
    received: int = 0
    landed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    files_written: int = 0
    batches: int = 0
    replayed_files: int = 0


@dataclass(slots=True)
class _Open:
    msgs: list[Msg] = field(default_factory=list)
    opened: float = 0.0


class StateIndex:
    """The durable dedupe index plus the pending-files write-ahead log (one SQLite file)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)

    def seen(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(f"SELECT id FROM landed WHERE id IN ({marks})", chunk)  # noqa: S608
            found.update(r[0] for r in rows)
        return found

    def record(self, ids: list[str], files: dict[str, bytes], now: float) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO landed (id, landed_at) VALUES (?, ?)",
                [(i, now) for i in ids],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO pending (path, data) VALUES (?, ?)",
                list(files.items()),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def pending(self) -> list[tuple[str, bytes]]:
        return [(r[0], bytes(r[1])) for r in self.db.execute("SELECT path, data FROM pending")]

    def done(self, paths: list[str]) -> None:
        self.db.executemany("DELETE FROM pending WHERE path = ?", [(p,) for p in paths])

    def prune(self, older_than: float) -> None:
        self.db.execute("DELETE FROM landed WHERE landed_at < ?", (older_than,))

    def close(self) -> None:
        self.db.close()


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())


def _file_id(stream: str, durable: str, key: str, first: int, last: int) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"strata:nats:{stream}:{durable}:{key}:{first}:{last}")


async def _quiet(exc: Exception) -> None:
    log.debug("nats: %s", exc)


def deadletter_dir(namespace: str, tenant: str | None, day: dt.date) -> str:
    where = f"tenant={tenant}" if tenant else "unknown"
    return (
        f"{namespace}/{DEADLETTER_DIR}/{where}"
        f"/year={day.year:04d}/month={day.month:02d}/day={day.day:02d}"
    )


class NatsSink:
    def __init__(
        self,
        config: SinkConfig,
        storage: LakeStorage,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.storage = storage
        self.index = StateIndex(state_dir / "sink.sqlite")
        self.clock = clock
        self.stats = SinkStats()
        self._stop = asyncio.Event()
        self._stream = config.stream or ""

    def request_stop(self) -> None:
        self._stop.set()

    # -- landing --------------------------------------------------------------------------

    def replay_pending(self) -> None:
        """Finish a batch a crash interrupted between its state commit and its file writes."""
        pending = self.index.pending()
        for path, data in pending:
            self.storage.write_atomic(path, data)
        self.index.done([p for p, _ in pending])
        self.stats.replayed_files += len(pending)

    def build_batch(self, msgs: list[Msg]) -> tuple[list[str], dict[str, bytes]]:
        """Dedupe and encode one batch: returns the index ids to record and files to write."""
        now = self.clock()
        ingested = dt.datetime.fromtimestamp(now, dt.UTC)
        seqs = [m.metadata.sequence.stream for m in msgs]
        first, last = min(seqs), max(seqs)
        valid: dict[str, tuple[Event, Msg]] = {}
        dead: list[tuple[Msg, InvalidEventError]] = []
        for m in msgs:
            try:
                ev = parse_event(m.data)
            except InvalidEventError as exc:
                dead.append((m, exc))
                continue
            if ev.event_id in valid:
                self.stats.duplicates += 1
            else:
                valid[ev.event_id] = (ev, m)
        already = self.index.seen(list(valid))
        self.stats.duplicates += len(already)
        dead_ids = [f"seq:{self._stream}:{m.metadata.sequence.stream}" for m, _ in dead]
        dead_seen = self.index.seen(dead_ids)
        ids: list[str] = []
        groups: dict[tuple[str, str, dt.date], list[tuple[Event, Msg]]] = {}
        for eid, (ev, m) in valid.items():
            if eid in already:
                continue
            ids.append(eid)
            groups.setdefault(ev.key, []).append((ev, m))
        files: dict[str, bytes] = {}
        for (table, tenant, day), rows in sorted(groups.items()):
            part = BronzePartition(self.config.namespace, table, tenant, day)
            fid = _file_id(self._stream, self.config.durable, part.directory, first, last)
            tbl = pa.Table.from_pydict(
                {
                    "event_id": [e.event_id for e, _ in rows],
                    "type": [e.type for e, _ in rows],
                    "tenant_id": [e.tenant_id for e, _ in rows],
                    "occurred_at": [e.occurred_at for e, _ in rows],
                    "payload": [e.payload_json for e, _ in rows],
                    "subject": [m.subject for _, m in rows],
                    "stream_seq": [m.metadata.sequence.stream for _, m in rows],
                    "ingested_at": [ingested] * len(rows),
                    "source_service": [
                        self.config.source_service or e.type.split(".")[0] for e, _ in rows
                    ],
                },
                schema=EVENT_SCHEMA,
            )
            files[part.file(fid).path] = _parquet(tbl)
            self.stats.landed += len(rows)
        dgroups: dict[str | None, list[tuple[Msg, InvalidEventError]]] = {}
        for (dm, err), did in zip(dead, dead_ids, strict=True):
            if did in dead_seen:
                continue
            ids.append(did)
            dgroups.setdefault(err.tenant, []).append((dm, err))
        for dtenant, drows in sorted(dgroups.items(), key=lambda kv: kv[0] or ""):
            directory = deadletter_dir(self.config.namespace, dtenant, ingested.date())
            fid = _file_id(self._stream, self.config.durable, directory, first, last)
            tbl = pa.Table.from_pydict(
                {
                    "subject": [m.subject for m, _ in drows],
                    "stream_seq": [m.metadata.sequence.stream for m, _ in drows],
                    "raw": [bytes(m.data) for m, _ in drows],
                    "reason": [e.reason for _, e in drows],
                    "ingested_at": [ingested] * len(drows),
                    "source_service": [self.config.source_service or "nats"] * len(drows),
                },
                schema=DEADLETTER_SCHEMA,
            )
            files[f"{directory}/{fid}.parquet"] = _parquet(tbl)
            self.stats.dead_letters += len(drows)
        return ids, files

    async def commit(self, nc: Any, msgs: list[Msg]) -> None:
        if not msgs:
            return
        ids, files = self.build_batch(msgs)
        now = self.clock()
        if ids or files:
            self.index.record(ids, files, now)  # the commit point (see module docstring)
            for path, data in files.items():
                self.storage.write_atomic(path, data)
            self.index.done(list(files))
        self.stats.files_written += len(files)
        self.stats.batches += 1
        for m in msgs:
            await m.ack()
        await nc.flush()
        self.index.prune(now - self.config.dedupe_window_s)
        log.info("batch committed: %d messages, %d files", len(msgs), len(files))

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> SinkStats:
        cfg = self.config
        self.replay_pending()
        try:
            nc = await nats.connect(
                servers=[cfg.server],
                connect_timeout=cfg.connect_timeout_s,
                max_reconnect_attempts=1,  # nats-py: 0 means retry the first connect forever
                reconnect_time_wait=0.5,
                error_cb=_quiet,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            raise NatsUnavailableError(cfg.server, exc) from None
        try:
            js = nc.jetstream()
            if cfg.create_stream:
                if not cfg.stream:
                    raise ConfigError("--create-stream needs a stream name")
                try:
                    await js.add_stream(name=cfg.stream, subjects=[cfg.subject])
                except nats.js.errors.BadRequestError:
                    await js.stream_info(cfg.stream)  # exists with another config: use it
            stream = cfg.stream or await js.find_stream_name_by_subject(cfg.subject)
            self._stream = stream
            consumer = ConsumerConfig(
                durable_name=cfg.durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=cfg.ack_wait_s,
                filter_subject=cfg.subject,
                max_ack_pending=max(1000, cfg.batch_max_records * 2),
            )
            sub = await js.pull_subscribe(
                cfg.subject, durable=cfg.durable, stream=stream, config=consumer
            )
            await self._consume(nc, sub)
        except nats.js.errors.NotFoundError as exc:
            raise ConfigError(f"no JetStream stream covers {cfg.subject!r}: {exc}") from None
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
            self.index.close()
        return self.stats

    async def _consume(self, nc: Any, sub: Any) -> None:
        cfg = self.config
        batch = _Open()
        last_msg = time.monotonic()
        while True:
            stopping = self._stop.is_set()
            age = time.monotonic() - batch.opened if batch.msgs else 0.0
            if batch.msgs and (
                stopping or len(batch.msgs) >= cfg.batch_max_records or age >= cfg.batch_max_age_s
            ):
                await self.commit(nc, batch.msgs)
                batch = _Open()
            if stopping:
                return
            if cfg.idle_exit_s is not None and time.monotonic() - last_msg >= cfg.idle_exit_s:
                await self.commit(nc, batch.msgs)
                return
            want = cfg.batch_max_records - len(batch.msgs)
            wait = cfg.batch_max_age_s - age if batch.msgs else 1.0
            try:
                msgs = await sub.fetch(batch=want, timeout=max(0.1, min(1.0, wait)))
            except nats.errors.TimeoutError:
                msgs = []
            if msgs:
                if not batch.msgs:
                    batch.opened = time.monotonic()
                batch.msgs.extend(msgs)
                self.stats.received += len(msgs)
                last_msg = time.monotonic()


def run_sink(config: SinkConfig, storage: LakeStorage, state_dir: Path) -> SinkStats:
    """Run until SIGTERM/SIGINT (or ``idle_exit_s``); the open batch is committed first."""

    async def main() -> SinkStats:
        sink = NatsSink(config, storage, state_dir)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, sink.request_stop)
        try:
            return await sink.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    return asyncio.run(main())


def stats_json(stats: SinkStats) -> str:
    return json.dumps({k: getattr(stats, k) for k in SinkStats.__slots__})
